//! `prime bench`: time network calls and sampler steps; report NFE and idle steps.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::ProgressBar;
use prime_core::sampler::run as run_sampler;
use prime_core::schedule::{expected_idle_ratio, expected_nfe};
use prime_core::{Conditioning, Denoiser, Model, Sampler, SamplerSettings, SamplerShape};
use serde::Serialize;

use crate::device_args::DeviceArgs;
use crate::mode_arg::ModeName;
use crate::model_arg::ModelArg;

/// Arguments of `prime bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Sampling steps T per run.
    #[arg(long, default_value_t = 64)]
    steps: usize,
    /// Number of generations to time (seeds 0..runs).
    #[arg(long, default_value_t = 3)]
    runs: u64,
    /// How reveal times are drawn.
    #[arg(long, value_enum, default_value_t = ModeName::Ancestral)]
    mode: ModeName,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Wraps a model and accumulates the time spent in network calls.
struct Timed<'a> {
    model: &'a mut Model,
    spent: Duration,
    calls: usize,
}

impl Denoiser for Timed<'_> {
    fn logits(&mut self, state: &[u32]) -> prime_core::Result<Vec<f32>> {
        let start = Instant::now();
        let out = Denoiser::logits(self.model, state);
        self.spent += start.elapsed();
        self.calls += 1;
        out
    }
}

#[derive(Serialize)]
struct Figures {
    backend: String,
    model_class: String,
    subtokens: usize,
    length: usize,
    vocab: u32,
    mode: String,
    steps: usize,
    runs: u64,
    ms_per_network_call: f64,
    ms_per_step: f64,
    sampler_ms_per_step: f64,
    sampler_share_of_step: f64,
    nfe: f64,
    expected_nfe: f64,
    idle_step_ratio: f64,
    expected_idle_step_ratio: f64,
}

/// Runs the command.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let device = args.device.open()?;
    let mut model = args.model.load(&device.device)?;
    let shape = SamplerShape::from_config(model.config())?;
    let config = model.config().clone();
    // Warm-up: the first call compiles kernels and fills caches.
    let warm = vec![i64::from(shape.codec.mask_id()); config.sequence_subtokens()];
    model.forward(&warm, 1).context("warm-up network call")?;

    let bar = ProgressBar::new(args.runs);
    let mut timed = Timed { model: &mut model, spent: Duration::ZERO, calls: 0 };
    let (mut total, mut idle, mut masked) = (Duration::ZERO, 0usize, 0usize);
    for seed in 0..args.runs {
        let settings = SamplerSettings { steps: args.steps, seed, mode: args.mode.into(), ..Default::default() };
        let mut sampler = Sampler::new(shape.clone(), settings, &Conditioning::default())?;
        masked = sampler.masked_at_start();
        let start = Instant::now();
        let outcome =
            run_sampler(&mut sampler, &mut timed, |_| ControlFlow::Continue(()))?.context("benchmark run aborted")?;
        total += start.elapsed();
        idle += outcome.idle_steps;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let runs = args.runs.max(1) as f64;
    let steps_total = runs * (args.steps as f64 + 1.0);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let sampler_ms = ms(total.saturating_sub(timed.spent)) / steps_total;
    let figures = Figures {
        backend: DeviceArgs::describe(&device),
        model_class: format!("{:?}", config.model_class),
        subtokens: config.subtokens,
        length: config.length,
        vocab: config.vocab_size,
        mode: format!("{:?}", args.mode),
        steps: args.steps,
        runs: args.runs,
        ms_per_network_call: ms(timed.spent) / timed.calls.max(1) as f64,
        ms_per_step: ms(total) / steps_total,
        sampler_ms_per_step: sampler_ms,
        sampler_share_of_step: sampler_ms / (ms(total) / steps_total).max(f64::MIN_POSITIVE),
        nfe: timed.calls as f64 / runs,
        expected_nfe: expected_nfe(args.steps, masked),
        idle_step_ratio: idle as f64 / (runs * args.steps as f64),
        expected_idle_step_ratio: expected_idle_ratio(args.steps, masked),
    };
    if args.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!("backend                 {}", figures.backend);
        println!(
            "model                   {} ℓ={} L={} V={}",
            figures.model_class, figures.subtokens, figures.length, figures.vocab
        );
        println!("sampler mode            {}", figures.mode);
        println!("steps × runs            {} × {}", figures.steps, figures.runs);
        println!("ms per network call     {:.3}", figures.ms_per_network_call);
        println!("ms per step             {:.3}", figures.ms_per_step);
        println!(
            "sampler ms per step     {:.3} ({:.1} % of a step)",
            figures.sampler_ms_per_step,
            100.0 * figures.sampler_share_of_step
        );
        println!("NFE per run             {:.1} (closed form {:.1})", figures.nfe, figures.expected_nfe);
        println!(
            "idle-step ratio         {:.4} (closed form (1−dt)^(ℓL) = {:.4})",
            figures.idle_step_ratio, figures.expected_idle_step_ratio
        );
    }
    Ok(())
}
