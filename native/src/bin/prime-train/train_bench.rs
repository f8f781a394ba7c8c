//! `prime-train bench`: the time of a training step at a given shape — milliseconds per step,
//! tokens per second, the cores it keeps busy, and where the time goes (data, forward, backward,
//! optimiser, EMA) — on random tokens, so that it needs no corpus and can be set beside the
//! official training step (`bench_torch_train.py` of the perf harness) shape for shape.

use anyhow::{Result, ensure};
use burn::module::Module;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prime_core::rng::{CounterRng, Stream};
use prime_core::train::{LearningRateSchedule, StepTimes, TokenCorpus, TrainSettings, Trainer};
use serde::Serialize;

use prime_native::device_args::DeviceArgs;

use crate::train::ShapeArgs;

/// Most steps one bench times.
const MAX_STEPS: usize = 100_000;

/// Arguments of `prime-train bench`.
#[derive(Debug, Args)]
pub struct TrainBenchArgs {
    #[command(flatten)]
    shape: ShapeArgs,
    /// Vocabulary size V (the text demo's tokenizer has 4096).
    #[arg(long, default_value_t = 4096)]
    vocab: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Steps timed.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Steps run first and not timed (allocator and thread-pool warm-up).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// The measured figures.
#[derive(Debug, Serialize)]
struct Figures {
    backend: String,
    subtokens: usize,
    vocab: usize,
    length: usize,
    hidden: usize,
    blocks: usize,
    heads: usize,
    batch: usize,
    parameters: usize,
    steps: usize,
    ms_per_step_median: f64,
    ms_per_step_min: f64,
    ms_per_step_max: f64,
    tokens_per_second: f64,
    /// Process CPU time over wall time during the timed steps (`None` where it cannot be read).
    cores_used: Option<f64>,
    /// Mean seconds per phase over the timed steps.
    phases: StepTimes,
}

/// Runs `prime-train bench`.
pub fn run(args: &TrainBenchArgs) -> Result<()> {
    ensure!((1..=MAX_STEPS).contains(&args.steps), "--steps must be between 1 and {MAX_STEPS}");
    ensure!(args.warmup <= MAX_STEPS, "--warmup must be at most {MAX_STEPS}");
    let config = args.shape.config(args.vocab, None)?;
    let compute = args.device.open()?;
    let settings = TrainSettings {
        batch_size: args.batch,
        schedule: LearningRateSchedule { peak: 1e-3, warmup: 1, total: args.warmup + args.steps, floor: 0.1 },
        weight_decay: 0.0,
        grad_clip: 1.0,
        ema_decay: 0.998,
        seed: 0,
    };
    let mut trainer = Trainer::new(config.clone(), settings, &compute.device)?;
    // Random tokens: the step's cost does not depend on what the tokens say.
    let rng = CounterRng::new(1);
    let tokens = (0..(config.length * 64) as u32)
        .map(|i| rng.word(Stream::TrainSample, u32::MAX, 0, i) % config.vocab_size)
        .collect();
    let corpus = TokenCorpus::new(tokens, config.length, config.vocab_size)?;
    let bar = ProgressBar::new((args.warmup + args.steps) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for _ in 0..args.warmup {
        trainer.train_step(&corpus)?;
        bar.inc(1);
    }
    let cpu_before = process_cpu_seconds();
    let started = std::time::Instant::now();
    let mut ms = Vec::with_capacity(args.steps);
    let mut phases = Vec::with_capacity(args.steps);
    for _ in 0..args.steps {
        let step = std::time::Instant::now();
        trainer.train_step(&corpus)?;
        ms.push(step.elapsed().as_secs_f64() * 1e3);
        phases.push(trainer.last_step_times());
        bar.inc(1);
        bar.set_message(format!("{:.0} ms/step", ms[ms.len() - 1]));
    }
    let wall = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let cores_used = cpu_before.zip(process_cpu_seconds()).map(|(before, after)| (after - before) / wall);
    ms.sort_by(f64::total_cmp);
    let n = args.steps as f64;
    let figures = Figures {
        backend: DeviceArgs::describe(&compute),
        subtokens: config.subtokens,
        vocab: args.vocab,
        length: config.length,
        hidden: config.hidden_size,
        blocks: config.n_blocks,
        heads: config.n_heads,
        batch: args.batch,
        parameters: trainer.ema().num_params(),
        steps: args.steps,
        ms_per_step_median: ms[ms.len() / 2],
        ms_per_step_min: ms[0],
        ms_per_step_max: ms[ms.len() - 1],
        tokens_per_second: (args.batch * config.length) as f64 * n / wall,
        cores_used,
        phases: StepTimes::mean(&phases),
    };
    report(&figures);
    if args.json {
        prime_native::say!("{}", serde_json::to_string(&figures)?)?;
    }
    Ok(())
}

/// The figures in words, to stderr (standard output carries the JSON object).
fn report(f: &Figures) {
    let cores = f.cores_used.map_or("unknown".to_string(), |c| format!("{c:.2}"));
    let p = &f.phases;
    let lines = [
        format!(
            "ℓ = {}, V = {}, L = {}, {}×{} ({} heads), batch {} · {} parameters · {}",
            f.subtokens, f.vocab, f.length, f.hidden, f.blocks, f.heads, f.batch, f.parameters, f.backend
        ),
        format!(
            "{:.1} ms/step (median of {}; {:.1}–{:.1}) · {:.0} tokens/s · {cores} cores used",
            f.ms_per_step_median, f.steps, f.ms_per_step_min, f.ms_per_step_max, f.tokens_per_second
        ),
        format!(
            "per step: data {:.1} ms · forward + loss {:.1} · backward {:.1} · clip + AdamW {:.1} · EMA {:.1}",
            p.data * 1e3,
            p.forward * 1e3,
            p.backward * 1e3,
            p.optimizer * 1e3,
            p.ema * 1e3
        ),
    ];
    for line in lines {
        eprintln!("{line}");
    }
}

/// CPU seconds this process has used (user + system, all threads).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn process_cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn process_cpu_seconds() -> Option<f64> {
    None
}
