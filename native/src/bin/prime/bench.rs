//! `prime bench`: per-step cost of each sampler path, with NFE, idle steps and host readbacks.
//!
//! Each path runs twice per seed: with the model (the step time, NFE, idle steps, readbacks),
//! and against one fixed logits tensor held on the device, which times the sampler's own work
//! alone (on the host path that includes reading the logits back at every network call).

use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::{Int, Tensor, TensorData};
use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use prime_core::device::{ComputeDevice, ModelSource};
use prime_core::kernels::KernelPath;
use prime_core::sampler::run_together;
use prime_core::schedule::{expected_idle_ratio, expected_nfe};
use prime_core::train::initial_weights;
use prime_core::{
    Denoiser, ExecutorChoice, GenerationRequest, Logits, Model, ModelClass, ModelConfig, NetworkInput, SamplerSettings,
};
use serde::Serialize;

use prime_core::sampler::SamplingMode;
use prime_native::device_args::DeviceArgs;
use prime_native::model_arg::ModelArg;
use prime_native::sampling_args::SamplingArgs;

/// Arguments of `prime bench`.
#[derive(Args, Debug)]
#[command(mut_arg("steps", |a| a.default_value("64")))]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Benchmark a randomly initialised MDM-Prime model of OpenWebText's shape (ℓ = 4,
    /// V = 50257, L = --length) with a small network (hidden 64, one block) instead.
    #[arg(long, conflicts_with = "model")]
    random: bool,
    /// Sequence length of the --random model. Its logits take L × 50257 × 4 bytes (206 MB
    /// at L = 1024), written in row blocks where the adapter binds less (lavapipe: 128 MiB).
    /// [default: 1024]
    #[arg(long)]
    length: Option<usize>,
    /// Number of generations per path (seeds --seed … --seed + runs − 1).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    runs: u64,
    /// Paths to time, comma-separated (default: all the device supports).
    #[arg(long, value_enum, value_delimiter = ',')]
    paths: Vec<BenchPath>,
    /// Batch sizes B to time, comma-separated: the network call with B sequences and B
    /// generations run together (seeds 0..B, the default executor), reported as samples/s.
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u32).range(1..=256))]
    batch: Vec<u32>,
    /// The sampler settings of every run (`--paths` chooses the executors and modes).
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// A sampler configuration to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchPath {
    /// Host loop, ancestral.
    Host,
    /// WGSL kernels on the device, ancestral.
    Shader,
    /// Burn-ops twins on the device, ancestral.
    Twin,
    /// Event-driven mode: on the kernels on a GPU, on the host loop on the CPU.
    EventDriven,
}

impl BenchPath {
    fn setup(self) -> (ExecutorChoice, SamplingMode) {
        match self {
            Self::Host => (ExecutorChoice::Host, SamplingMode::Ancestral),
            Self::Shader => (ExecutorChoice::Shader, SamplingMode::Ancestral),
            Self::Twin => (ExecutorChoice::Twin, SamplingMode::Ancestral),
            Self::EventDriven => (ExecutorChoice::Auto, SamplingMode::EventDriven),
        }
    }
}

/// One path's figures.
#[derive(Debug, Serialize)]
struct Row {
    path: BenchPath,
    ms_per_step: f64,
    sampler_ms_per_step: f64,
    sampler_share_of_step: f64,
    nfe: f64,
    idle_step_ratio: f64,
    readbacks_per_step: f64,
    bytes_read_per_step: f64,
    samples_per_second: f64,
}

/// Figures of one batch size B.
#[derive(Debug, Serialize)]
struct BatchRow {
    batch: usize,
    ms_per_network_call: f64,
    ms_per_sequence: f64,
    samples_per_second: f64,
    nfe: f64,
    idle_step_ratio: f64,
}

#[derive(Debug, Serialize)]
struct Figures {
    backend: String,
    model: String,
    model_class: String,
    subtokens: usize,
    length: usize,
    vocab: u32,
    steps: usize,
    runs: u64,
    ms_per_network_call: f64,
    expected_nfe: f64,
    expected_idle_step_ratio: f64,
    rows: Vec<Row>,
    batches: Vec<BatchRow>,
}

/// The random model of `--random`.
fn random_model(length: usize, device: &ComputeDevice) -> Result<Model> {
    let config = ModelConfig {
        model_class: ModelClass::PerceiverDIT,
        vocab_size: 50257,
        subtokens: 4,
        base: None,
        hidden_size: 64,
        n_blocks: 1,
        n_heads: 2,
        cond_dim: 32,
        length,
        mlp_ratio: 2,
        layer_norm_eps: 1e-5,
        rope_base: 10000.0,
        frequency_embedding_size: 256,
        carry_over: true,
        image: None,
        position_embedding: false,
        classes: Vec::new(),
        sampling: Default::default(),
    };
    let weights = initial_weights(&config, 0)?;
    Ok(device.load(ModelSource::Weights(config, weights))?)
}

/// A stand-in network that returns one logits tensor kept on the device, so that a run times
/// the sampler's own work.
struct Fixed {
    logits: Logits,
    device: burn::tensor::Device,
}

impl Denoiser for Fixed {
    fn device(&self) -> &burn::tensor::Device {
        &self.device
    }

    fn logits(&self, _input: NetworkInput) -> prime_core::Result<Logits> {
        Ok(self.logits.clone())
    }
}

/// Milliseconds of one network call with `batch` all-masked sequences, synchronised by a
/// one-number readback per sequence; also returns the first sequence's logits.
fn network_pass(model: &Model, batch: usize) -> Result<(f64, Logits)> {
    let n = model.config().sequence_subtokens();
    let mask = model.codec().mask_id() as i32;
    let rows: Vec<u32> = (0..model.config().length as u32).collect();
    let ids = || NetworkInput {
        state: Tensor::<1, Int>::from_data(TensorData::new(vec![mask; n], [n]), model.device()),
        rows: rows.clone(),
        class: None,
        guidance: 0.0,
    };
    let call = || -> Result<Vec<Logits>> {
        let logits = model.logits_batch((0..batch).map(|_| ids()).collect())?;
        for block in logits.iter().flat_map(Logits::blocks) {
            block.rows.clone().sum().try_into_data().map_err(|e| anyhow::anyhow!("the network pass failed: {e:?}"))?;
        }
        Ok(logits)
    };
    let first = call()?.into_iter().next().context("the network returned no logits")?; // warm-up: compiles kernels
    let passes = 3;
    let start = Instant::now();
    for _ in 0..passes {
        call()?;
    }
    Ok((start.elapsed().as_secs_f64() * 1e3 / f64::from(passes), first))
}

/// Times `batch` generations (seeds 0..batch) run together, their network calls batched.
fn batch_row(model: &Model, args: &BenchArgs, batch: usize) -> Result<BatchRow> {
    let (call_ms, _) = network_pass(model, batch)?;
    let request = args.sampling.request(model.config());
    let mut runs = request.start_seeds(model, 0..batch)?;
    let start = Instant::now();
    let outcomes = run_together(&mut runs, model, |_, _, _| ControlFlow::Continue(()))?.context("benchmark aborted")?;
    let seconds = start.elapsed().as_secs_f64();
    let b = batch as f64;
    Ok(BatchRow {
        batch,
        ms_per_network_call: call_ms,
        ms_per_sequence: call_ms / b,
        samples_per_second: b / seconds,
        nfe: outcomes.iter().map(|o| o.nfe as f64).sum::<f64>() / b,
        idle_step_ratio: outcomes.iter().map(|o| o.idle_steps as f64).sum::<f64>()
            / (b * request.settings.steps as f64),
    })
}

/// Runs `prime bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    anyhow::ensure!(args.runs > 0, "--runs must be positive");
    anyhow::ensure!(
        args.sampling.mode.is_none() && args.sampling.executor.is_none(),
        "prime bench times the executors and modes that --paths lists (host, shader, twin, event-driven): \
         leave out --mode and --executor"
    );
    anyhow::ensure!(
        args.random || args.length.is_none(),
        "--length applies only to --random; a model folder has its own length"
    );
    let device = args.device.open()?;
    let model =
        if args.random { random_model(args.length.unwrap_or(1024), &device)? } else { args.model.load(&device)? };
    let config = model.config().clone();
    let settings = args.sampling.settings(&config);
    let on_gpu = KernelPath::for_device(model.device()) == KernelPath::Shader;
    let paths = if args.paths.is_empty() {
        let mut all = vec![BenchPath::Host, BenchPath::Twin, BenchPath::EventDriven];
        if on_gpu {
            all.insert(1, BenchPath::Shader);
        }
        all
    } else {
        args.paths.clone()
    };
    let (call_ms, logits) = network_pass(&model, 1).context("timing the network")?;
    let fixed = Fixed { device: model.device().clone(), logits };
    let bar = ProgressBar::new(args.runs.saturating_mul(paths.len() as u64).saturating_add(args.batch.len() as u64));
    let mut rows = Vec::new();
    let mut masked = 0;
    for &path in &paths {
        let (executor, mode) = path.setup();
        let (mut ms, mut own_ms, mut nfe, mut idle, mut readbacks, mut bytes) = (0.0, 0.0, 0, 0, 0, 0);
        let request = GenerationRequest {
            settings: SamplerSettings { mode, ..settings.clone() },
            executor,
            class: args.sampling.class.resolve(model.config()),
            ..GenerationRequest::default()
        };
        for i in 0..args.runs {
            let i = usize::try_from(i)?;
            let mut run = request.start_offset(&model, i)?;
            masked = run.sampler().masked_at_start();
            let start = Instant::now();
            let outcome = run.run(&model, |_| ControlFlow::Continue(()))?.context("benchmark run aborted")?;
            ms += start.elapsed().as_secs_f64() * 1e3;
            nfe += outcome.nfe;
            idle += outcome.idle_steps;
            readbacks += run.stats().readbacks;
            bytes += run.stats().bytes_read;
            let mut run = request.start_offset(&model, i)?;
            let start = Instant::now();
            run.run(&fixed, |_| ControlFlow::Continue(()))?.context("benchmark run aborted")?;
            own_ms += start.elapsed().as_secs_f64() * 1e3;
            bar.inc(1);
        }
        let runs = args.runs as f64;
        let steps = runs * (settings.steps as f64 + 1.0);
        let (per_step, sampler_ms) = (ms / steps, own_ms / steps);
        rows.push(Row {
            path,
            ms_per_step: per_step,
            sampler_ms_per_step: sampler_ms,
            sampler_share_of_step: sampler_ms / per_step.max(f64::MIN_POSITIVE),
            nfe: nfe as f64 / runs,
            idle_step_ratio: idle as f64 / (runs * settings.steps as f64),
            readbacks_per_step: readbacks as f64 / steps,
            bytes_read_per_step: bytes as f64 / steps,
            samples_per_second: runs * 1e3 / ms.max(f64::MIN_POSITIVE),
        });
    }
    let mut batches = Vec::new();
    for &b in &args.batch {
        batches.push(batch_row(&model, &args, b as usize).with_context(|| format!("timing batch size {b}"))?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let figures = Figures {
        backend: DeviceArgs::describe(&device),
        model: if args.random { "random (--random)".into() } else { args.model.describe() },
        model_class: format!("{:?}", config.model_class),
        subtokens: config.subtokens,
        length: config.length,
        vocab: config.vocab_size,
        steps: settings.steps,
        runs: args.runs,
        ms_per_network_call: call_ms,
        expected_nfe: expected_nfe(settings.steps, masked),
        expected_idle_step_ratio: expected_idle_ratio(settings.steps, masked),
        rows,
        batches,
    };
    if args.json {
        prime_native::say!("{}", serde_json::to_string(&figures)?)?;
        return Ok(());
    }
    prime_native::say!("backend        {}", figures.backend)?;
    prime_native::say!(
        "model          {} · {} ℓ={} L={} V={}",
        figures.model,
        figures.model_class,
        figures.subtokens,
        figures.length,
        figures.vocab
    )?;
    prime_native::say!("steps × runs   {} × {}", figures.steps, figures.runs)?;
    prime_native::say!("network pass   {:.3} ms", figures.ms_per_network_call)?;
    prime_native::say!(
        "closed form    NFE {:.1} · idle-step ratio {:.4}",
        figures.expected_nfe,
        figures.expected_idle_step_ratio
    )?;
    prime_native::say!(
        "{:<13} {:>10} {:>16} {:>9} {:>10} {:>8} {:>7} {:>15} {:>13}",
        "path",
        "ms/step",
        "sampler ms/step",
        "% step",
        "samples/s",
        "NFE",
        "idle",
        "readbacks/step",
        "kB read/step"
    )?;
    for r in &figures.rows {
        prime_native::say!(
            "{:<13} {:>10.3} {:>16.3} {:>8.1}% {:>10.4} {:>8.1} {:>7.3} {:>15.2} {:>13.1}",
            format!("{:?}", r.path).to_lowercase(),
            r.ms_per_step,
            r.sampler_ms_per_step,
            100.0 * r.sampler_share_of_step,
            r.samples_per_second,
            r.nfe,
            r.idle_step_ratio,
            r.readbacks_per_step,
            r.bytes_read_per_step / 1e3
        )?;
    }
    let (base_batch, base) = figures.batches.first().map_or((1, 0.0), |r| (r.batch, r.samples_per_second));
    prime_native::say!("")?;
    prime_native::say!(
        "{:<6} {:>12} {:>15} {:>10} {:>11} {:>8} {:>7}",
        "B",
        "ms/call",
        "ms/sequence",
        "samples/s",
        format!("vs B = {base_batch}"),
        "NFE",
        "idle"
    )?;
    for r in &figures.batches {
        prime_native::say!(
            "{:<6} {:>12.3} {:>15.3} {:>10.4} {:>10.2}× {:>8.1} {:>7.3}",
            r.batch,
            r.ms_per_network_call,
            r.ms_per_sequence,
            r.samples_per_second,
            r.samples_per_second / base.max(f64::MIN_POSITIVE),
            r.nfe,
            r.idle_step_ratio
        )?;
    }
    Ok(())
}
