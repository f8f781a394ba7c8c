//! `prime generate`: sample a sequence, print its text (or ids) and the sampling figures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prime_core::schedule::expected_idle_ratio;
use prime_core::trajectory::{Ending, Header, Recorder};
use prime_core::{GenerationRequest, SamplerSettings, Tokens};
use serde::Serialize;

use prime_native::device_args::DeviceArgs;
use prime_native::model_arg::ModelArg;
use prime_native::sampler_args::SamplerArgs;

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
    /// Write the trajectory (the `prime-trajectory` JSON Lines format, see the README) to this
    /// file; the page opens it and replays it.
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
    sampler: &'static str,
    bytes_read: usize,
}

fn tokens(text: &Option<String>, ids: &[u32]) -> Tokens {
    match text {
        Some(t) => Tokens::Text(t.clone()),
        None => Tokens::Ids(ids.to_vec()),
    }
}

/// Writes the trajectory file line by line.
struct TrajectoryFile {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    recorder: Recorder,
}

impl TrajectoryFile {
    fn create(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path: path.to_path_buf(), out: std::io::BufWriter::new(file), recorder: Recorder::default() })
    }

    fn line(&mut self, value: &impl Serialize) -> anyhow::Result<()> {
        let line = serde_json::to_string(value)?;
        writeln!(self.out, "{line}").with_context(|| format!("cannot write the trajectory {}", self.path.display()))
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.out.flush().with_context(|| format!("cannot write the trajectory {}", self.path.display()))
    }
}

/// Runs the command.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let device = args.device.open()?;
    let model = args.model.load(&device)?;
    let request = GenerationRequest {
        prompt: tokens(&args.prompt, &args.prompt_ids),
        suffix: tokens(&args.suffix, &args.suffix_ids),
        pins: args.pin.clone(),
        settings: SamplerSettings {
            steps: args.steps,
            seed: args.seed,
            temperature: args.temperature,
            top_p: args.top_p,
            top_k: args.top_k,
            carry_over: !args.no_carry_over,
            record_guesses: args.trajectory.is_some(),
            mode: args.sampler.mode.into(),
        },
        executor: args.sampler.sampler.into(),
        sync_states: false,
    };
    let executor = request.resolve_executor(&model)?.name();
    let mut run = request.start(&model)?;
    let masked = run.sampler().masked_at_start();
    let mut trajectory = match &args.trajectory {
        Some(path) => {
            let mut file = TrajectoryFile::create(path)?;
            file.line(&Header::new(&model, &request, &run, executor, &DeviceArgs::describe(&device)))?;
            Some(file)
        }
        None => None,
    };
    let bar = ProgressBar::new(args.steps as u64 + 1);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:32} {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    while !run.is_done() {
        let event = run.step(&model)?;
        bar.set_position(event.step as u64 + 1);
        bar.set_message(format!("NFE {} · idle {}", event.nfe, event.idle_steps));
        if let Some(file) = trajectory.as_mut() {
            let record = file.recorder.record(&model, &event, run.stats().last_step_bytes);
            file.line(&record)?;
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let ending = Ending::of(&model, &run)?;
    if let Some(mut file) = trajectory {
        file.line(&ending)?;
        file.finish()?;
    }
    let Ending { outcome, text } = ending;
    let text = text.unwrap_or_else(|| outcome.tokens.iter().map(u32::to_string).collect::<Vec<_>>().join(" "));
    let stats = run.stats();
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
            sampler: executor,
            bytes_read: stats.bytes_read,
        };
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{text}");
        eprintln!(
            "{} steps · NFE {} · idle steps {} ({:.1} %, closed form {:.1} %) · {:.2} s on {} ({} executor, {:.1} kB read back)",
            outcome.steps,
            outcome.nfe,
            outcome.idle_steps,
            100.0 * outcome.idle_steps as f64 / outcome.steps as f64,
            100.0 * expected_idle_ratio(outcome.steps, masked),
            seconds,
            DeviceArgs::describe(&device),
            executor,
            stats.bytes_read as f64 / 1e3
        );
    }
    Ok(())
}
