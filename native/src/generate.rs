//! `prime generate`: sample a sequence, print its text (or ids) and the sampling figures.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prime_core::schedule::expected_idle_ratio;
use prime_core::{Conditioning, Model, Sampler, SamplerSettings, SamplerShape};
use serde::Serialize;

use crate::device_args::DeviceArgs;
use crate::model_arg::ModelArg;
use crate::sampler_args::{SamplerArgs, sample};

/// Arguments of `prime generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Text the sequence starts with (needs tokenizer.json).
    #[arg(long)]
    prompt: Option<String>,
    /// Text the sequence ends with (needs tokenizer.json).
    #[arg(long)]
    suffix: Option<String>,
    /// Token ids the sequence starts with, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "prompt")]
    prompt_ids: Vec<u32>,
    /// Token ids the sequence ends with, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "suffix")]
    suffix_ids: Vec<u32>,
    /// Fix a token anywhere: POSITION=ID (repeatable).
    #[arg(long, value_parser = parse_pin)]
    pin: Vec<(usize, u32)>,
    /// Sampling steps T.
    #[arg(long, default_value_t = 256)]
    steps: usize,
    /// Seed of the random stream.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Nucleus mass (official rule); 1 disables it.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Temperature.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Sample without the carry-over consistency filter (as the official non-`_co_` models);
    /// the final digits may then decode to an id outside the vocabulary, which is an error.
    #[arg(long)]
    no_carry_over: bool,
    #[command(flatten)]
    sampler: SamplerArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Write every step's event as one JSON line to this file.
    #[arg(long)]
    trajectory: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
}

fn parse_pin(s: &str) -> Result<(usize, u32), String> {
    let (p, t) = s.split_once('=').ok_or_else(|| format!("expected POSITION=ID, got `{s}`"))?;
    let p = p.trim().parse().map_err(|_| format!("bad position in `{s}`"))?;
    let t = t.trim().parse().map_err(|_| format!("bad token id in `{s}`"))?;
    Ok((p, t))
}

#[derive(Serialize)]
struct Report {
    text: String,
    tokens: Vec<u32>,
    steps: usize,
    nfe: usize,
    idle_steps: usize,
    idle_ratio: f64,
    expected_idle_ratio: f64,
    seconds: f64,
    backend: String,
    sampler: String,
}

fn tokens_of(model: &Model, text: &Option<String>, ids: &[u32], what: &str) -> anyhow::Result<Vec<u32>> {
    match text {
        None => Ok(ids.to_vec()),
        Some(t) => Ok(model.encode_text(t, what)?),
    }
}

/// Runs the command.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let device = args.device.open()?;
    let mut model = args.model.load(&device.device)?;
    device.check_logits_fit(model.config())?;
    let conditioning = Conditioning {
        prefix: tokens_of(&model, &args.prompt, &args.prompt_ids, "prompt")?,
        suffix: tokens_of(&model, &args.suffix, &args.suffix_ids, "suffix")?,
        pinned: args.pin.clone(),
    };
    let settings = SamplerSettings {
        steps: args.steps,
        seed: args.seed,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        carry_over: model.config().carry_over && !args.no_carry_over,
        record_guesses: args.trajectory.is_some(),
        mode: args.sampler.mode.into(),
    };
    let shape = SamplerShape::from_config(model.config())?;
    let mut sampler = Sampler::new(shape, settings, &conditioning)?;
    let masked = sampler.masked_at_start();

    let mut trajectory = match &args.trajectory {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => None,
    };
    let bar = ProgressBar::new(args.steps as u64 + 1);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:32} {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut write_error = None;
    let kernels = args.sampler.kernels(&model)?;
    let sampler_name = kernels.map_or("host".to_string(), |k| format!("{k:?}").to_lowercase());
    let sync = args.trajectory.is_some();
    let outcome = sample(&mut sampler, &mut model, kernels, sync, |event| {
        bar.set_position(event.step as u64 + 1);
        bar.set_message(format!("NFE {} · idle {}", event.nfe, event.idle_steps));
        if let Some(out) = trajectory.as_mut() {
            let line = serde_json::to_string(event).map_err(std::io::Error::other);
            if let Err(e) = line.and_then(|l| writeln!(out, "{l}")) {
                write_error = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    bar.finish_and_clear();
    if let Some(e) = write_error {
        bail!("cannot write the trajectory: {e}");
    }
    let (outcome, _) = outcome?.context("generation was aborted")?;
    if let Some(mut out) = trajectory {
        out.flush().context("cannot write the trajectory")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let text = match model.text() {
        Some(codec) => codec.decode(&outcome.tokens)?,
        None => outcome.tokens.iter().map(u32::to_string).collect::<Vec<_>>().join(" "),
    };
    if args.json {
        let report = Report {
            text,
            idle_ratio: outcome.idle_steps as f64 / outcome.steps as f64,
            expected_idle_ratio: expected_idle_ratio(outcome.steps, masked),
            tokens: outcome.tokens,
            steps: outcome.steps,
            nfe: outcome.nfe,
            idle_steps: outcome.idle_steps,
            seconds,
            backend: DeviceArgs::describe(&device),
            sampler: sampler_name,
        };
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{text}");
        eprintln!(
            "{} steps · NFE {} · idle steps {} ({:.1} %, closed form {:.1} %) · {:.2} s on {} ({} sampler)",
            outcome.steps,
            outcome.nfe,
            outcome.idle_steps,
            100.0 * outcome.idle_steps as f64 / outcome.steps as f64,
            100.0 * expected_idle_ratio(outcome.steps, masked),
            seconds,
            DeviceArgs::describe(&device),
            sampler_name
        );
    }
    Ok(())
}
