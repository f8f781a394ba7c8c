//! `prime generate`: sample a sequence, print its text (or ids) and the sampling figures.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prime_core::image::ImageShape;
use prime_core::output::FileOutput;
use prime_core::sampler::run_together;
use prime_core::schedule::expected_idle_ratio;
use prime_core::trajectory::{Ending, Header, Recorder};
use prime_core::{GenerationRequest, Model, SamplerSettings, Tokens};
use serde::Serialize;

use prime_native::device_args::DeviceArgs;
use prime_native::model_arg::ModelArg;
use prime_native::sampling_args::SamplingArgs;

use crate::picture::{Animation, Sheet};
use crate::shard::{self, ModelId, Shard, ShardManifest, ShardSpec, ShardState};

/// Most samples one command draws.
const MAX_SAMPLES: u32 = 4096;
/// Default sequences per network call when --batch is not given.
const DEFAULT_BATCH: u32 = 8;
/// Most bytes of states kept for a GIF.
const MAX_GIF_STATES: u64 = 1 << 30;
/// GIF frame time per step, in hundredths of a second.
const GIF_STEP_DELAY: u16 = 6;
/// How long the GIF holds the finished samples, in hundredths of a second.
const GIF_HOLD: u16 = 200;

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
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Number of samples; sample i uses seed --seed + i and draws what a single run with that
    /// seed draws.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_SAMPLES as i64))]
    samples: u32,
    /// Sequences per network call (default: all samples, at most 8). Larger batches use the
    /// cores (or the GPU) better and hold B sequences' activations at once.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_SAMPLES as i64))]
    batch: Option<u32>,
    /// Print one JSON object per sample (one line each) instead of text.
    #[arg(long)]
    json: bool,
    /// Write the trajectory (the `prime-trajectory` JSON Lines format, see the README) to this
    /// file; the page opens it and replays it.
    #[arg(long)]
    trajectory: Option<PathBuf>,
    /// Image models: write the samples as one PNG, a grid of them (default `samples.png`).
    #[arg(long)]
    png: Option<PathBuf>,
    /// Image models: write every sample's trajectory as an animated GIF, one frame per step
    /// (masked pixels blue, partly revealed ones at their coarse grey with an orange dot).
    #[arg(long)]
    gif: Option<PathBuf>,
    /// Image models: inpaint this PNG (the model's width × height, grey or RGB): every pixel
    /// outside the --erase rectangles is pinned, the model fills the rest.
    #[arg(long, requires = "erase")]
    inpaint: Option<PathBuf>,
    /// With --inpaint: a rectangle to regenerate, X0,Y0,X1,Y1 (pixels, X1 and Y1 excluded);
    /// repeatable.
    #[arg(long, value_parser = parse_rectangle, requires = "inpaint")]
    erase: Vec<[usize; 4]>,
    /// Draw only shard I of K of the --samples (I counted from 0; sample j keeps seed --seed + j),
    /// or `auto`: a Slurm array task's (SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT) or a
    /// Kubernetes Indexed Job's (JOB_COMPLETION_INDEX of --shards). Writes
    /// OUT/shard-I-of-K.jsonl (one line per sample, as --json prints) and its manifest; a
    /// complete shard of the same run is skipped. `prime merge OUT` joins the shards.
    #[arg(long, value_parser = shard::parse_spec, requires = "out",
          conflicts_with_all = ["trajectory", "png", "gif", "inpaint", "json"])]
    shard: Option<ShardSpec>,
    /// With --shard auto in a Kubernetes Indexed Job: the number of shards K.
    #[arg(long, requires = "shard")]
    shards: Option<usize>,
    /// With --shard: the folder every shard of the run writes to.
    #[arg(long, requires = "shard")]
    out: Option<PathBuf>,
    /// Image models: screen pixels per image pixel in the PNG and GIF.
    #[arg(long, default_value_t = 4)]
    scale: usize,
    #[command(flatten)]
    device: DeviceArgs,
}

fn parse_rectangle(s: &str) -> Result<[usize; 4], String> {
    let values: Vec<usize> = s
        .split(',')
        .map(|v| v.trim().parse().map_err(|_| format!("bad number `{v}` in `{s}`: expected X0,Y0,X1,Y1")))
        .collect::<Result<_, _>>()?;
    match values[..] {
        [x0, y0, x1, y1] if x0 < x1 && y0 < y1 => Ok([x0, y0, x1, y1]),
        [_, _, _, _] => Err(format!("`{s}` is empty: X0 < X1 and Y0 < Y1")),
        _ => Err(format!("expected X0,Y0,X1,Y1, got `{s}`")),
    }
}

fn parse_pin(s: &str) -> Result<(usize, u32), String> {
    let (p, t) = s.split_once('=').ok_or_else(|| format!("expected POSITION=ID, got `{s}`"))?;
    let p = p.trim().parse().map_err(|_| format!("bad position in `{s}`"))?;
    let t = t.trim().parse().map_err(|_| format!("bad token id in `{s}`"))?;
    Ok((p, t))
}

#[derive(Serialize)]
struct Report {
    seed: u64,
    /// The class the sample was drawn for (class-conditioned models).
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<String>,
    text: String,
    tokens: Vec<u32>,
    steps: usize,
    nfe: usize,
    idle_steps: usize,
    idle_ratio: f64,
    expected_idle_ratio: f64,
    seconds: f64,
    backend: String,
    executor: &'static str,
    bytes_read: usize,
    batch: usize,
}

fn tokens(text: &Option<String>, ids: &[u32]) -> Tokens {
    match text {
        Some(t) => Tokens::Text(t.clone()),
        None => Tokens::Ids(ids.to_vec()),
    }
}

/// Writes the trajectory file line by line.
/// (It appears at its path once whole: see [`FileOutput`].)
struct TrajectoryFile {
    out: FileOutput,
    recorder: Recorder,
}

impl TrajectoryFile {
    fn create(path: &Path) -> anyhow::Result<Self> {
        Ok(Self { out: FileOutput::create(path)?, recorder: Recorder::default() })
    }

    fn line(&mut self, value: &impl Serialize) -> anyhow::Result<()> {
        let line = serde_json::to_string(value)?;
        writeln!(self.out, "{line}")
            .with_context(|| format!("cannot write the trajectory {}", self.out.path().display()))
    }

    fn finish(self) -> anyhow::Result<()> {
        Ok(self.out.commit()?)
    }
}

/// Runs the command.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let samples = args.samples as usize;
    let batch = args.batch.unwrap_or(args.samples.min(DEFAULT_BATCH)) as usize;
    if args.trajectory.is_some() && samples > 1 {
        anyhow::bail!("--trajectory records one sample; leave out --samples or set it to 1");
    }
    let shard = args.shard.map(|spec| Shard::resolve(spec, args.shards, |k| std::env::var(k).ok())).transpose()?;
    // The sample indices this process draws (all of them unless sharded).
    let range = shard.map_or(0..samples, |s| s.range(samples));
    let device = args.device.open()?;
    let model = args.model.load(&device)?;
    let settings =
        SamplerSettings { record_guesses: args.trajectory.is_some(), ..args.sampling.settings(model.config()) };
    let pictures = if shard.is_some() { None } else { Pictures::new(&args, &model, settings.steps)? };
    let animate = pictures.as_ref().is_some_and(|p| p.gif.is_some());
    let request = GenerationRequest {
        prompt: tokens(&args.prompt, &args.prompt_ids),
        suffix: tokens(&args.suffix, &args.suffix_ids),
        pins: [args.pin.clone(), inpainting_pins(&args, &model)?].concat(),
        settings,
        executor: args.sampling.executor(),
        sync_states: animate,
        class: args.sampling.class.resolve(model.config()),
    };
    let executor = request.resolve_executor(&model)?.name();
    let sharded = match (shard, &args.out) {
        (Some(shard), Some(dir)) => {
            let manifest = ShardManifest {
                shard: shard.index,
                shards: shard.count,
                samples,
                range: [range.start, range.end],
                model: ModelId { name: args.model.describe(), weights: args.model.weights_fingerprint()? },
                request: request.clone(),
                seconds: 0.0,
            };
            if let ShardState::Complete = shard::state(dir, shard, &manifest)? {
                eprintln!("shard {}/{} is complete in {}: skipped", shard.index, shard.count, dir.display());
                return Ok(());
            }
            Some((shard, dir, manifest))
        }
        _ => None,
    };
    let backend = DeviceArgs::describe(&device);
    let mut trajectory = match &args.trajectory {
        Some(path) => Some(TrajectoryFile::create(path)?),
        None => None,
    };
    let bar = ProgressBar::new((range.len() as u64).saturating_mul((request.settings.steps as u64).saturating_add(1)));
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:32} {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut done = 0;
    let mut reports = Vec::with_capacity(range.len());
    // Every sample's state after each step, when a GIF is asked for.
    let mut states: Vec<Vec<Vec<u32>>> = vec![Vec::new(); if animate { samples } else { 0 }];
    for first in range.clone().step_by(batch) {
        let offsets = first..(first + batch).min(range.end);
        let count = offsets.len();
        let mut runs = request.start_seeds(&model, offsets)?;
        if let Some(file) = trajectory.as_mut() {
            // A trajectory records one sample (checked above): the request's own seed.
            file.line(&Header::new(&model, &request, &runs[0], executor, &backend))?;
        }
        let group_started = Instant::now();
        let mut failed = None;
        if !states.is_empty() {
            for (i, run) in runs.iter().enumerate() {
                states[first + i].push(run.sampler().initial_state().to_vec());
            }
        }
        run_together(&mut runs, &model, |i, run, event| {
            if !states.is_empty() {
                states[first + i].push(event.state.clone());
            }
            done += 1;
            bar.set_position(done);
            bar.set_message(format!("NFE {} · idle {}", event.nfe, event.idle_steps));
            if let Some(file) = trajectory.as_mut() {
                let written = file
                    .recorder
                    .record(&model, event, run.stats().last_step_bytes)
                    .map_err(anyhow::Error::from)
                    .and_then(|record| file.line(&record));
                if let Err(e) = written {
                    failed = Some(e);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        let seconds = group_started.elapsed().as_secs_f64();
        for run in &runs {
            let ending = Ending::of(&model, run)?;
            if let Some(mut file) = trajectory.take() {
                file.line(&ending)?;
                file.finish()?;
            }
            let masked = run.sampler().masked_at_start();
            let Ending { outcome, text } = ending;
            let text = text.unwrap_or_else(|| outcome.tokens.iter().map(u32::to_string).collect::<Vec<_>>().join(" "));
            reports.push(Report {
                seed: run.sampler().settings().seed,
                class: model.config().class_name(run.sampler().class()).map(str::to_string),
                text,
                idle_ratio: outcome.idle_steps as f64 / outcome.steps as f64,
                expected_idle_ratio: expected_idle_ratio(outcome.steps, masked),
                tokens: outcome.tokens,
                steps: outcome.steps,
                nfe: outcome.nfe,
                idle_steps: outcome.idle_steps,
                seconds,
                backend: backend.clone(),
                executor,
                bytes_read: run.stats().bytes_read,
                batch: count,
            });
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if let Some((shard, dir, manifest)) = sharded {
        let lines = reports.iter().map(serde_json::to_string).collect::<Result<Vec<_>, _>>()?;
        shard::write(dir, shard, &lines, &ShardManifest { seconds, ..manifest })?;
        eprintln!(
            "shard {}/{}: samples {}..{} of {samples} in {seconds:.2} s on {backend}, written to {}",
            shard.index,
            shard.count,
            range.start,
            range.end,
            shard.samples_path(dir).display()
        );
        return Ok(());
    }
    // Image models are drawn instead of printed.
    let drawn = pictures.as_ref().map(|p| p.write(&model, &reports, &states)).transpose()?;
    for r in &reports {
        if args.json {
            prime_native::say!("{}", serde_json::to_string(r)?)?;
            continue;
        }
        let seed = if drawn.is_some() {
            format!("seed {} · ", r.seed)
        } else {
            if samples > 1 {
                prime_native::say!("# sample seed {}", r.seed)?;
            }
            prime_native::say!("{}", r.text)?;
            String::new()
        };
        eprintln!(
            "{seed}{} steps · NFE {} · idle steps {} ({:.1} %, closed form {:.1} %) · {} executor, {:.1} kB read back",
            r.steps,
            r.nfe,
            r.idle_steps,
            100.0 * r.idle_ratio,
            100.0 * r.expected_idle_ratio,
            r.executor,
            r.bytes_read as f64 / 1e3
        );
    }
    if !args.json {
        eprintln!(
            "{samples} sample{} in {seconds:.2} s on {backend} ({:.3} samples/s, {batch} per network call)",
            if samples == 1 { "" } else { "s" },
            samples as f64 / seconds
        );
    }
    if let Some(written) = drawn {
        eprintln!("written to {written}");
    }
    Ok(())
}

/// The pins of `--inpaint`: every pixel of the image outside the `--erase` rectangles.
fn inpainting_pins(args: &GenerateArgs, model: &Model) -> anyhow::Result<Vec<(usize, u32)>> {
    let Some(path) = &args.inpaint else { return Ok(Vec::new()) };
    let shape =
        model.config().image.context("--inpaint needs an image model; this one has no `image` in its config.json")?;
    let pixels = read_grey_png(path, shape)?;
    for r in &args.erase {
        if r[2] > shape.width || r[3] > shape.height {
            anyhow::bail!(
                "--erase {},{},{},{} reaches outside the {} × {} image",
                r[0],
                r[1],
                r[2],
                r[3],
                shape.width,
                shape.height
            );
        }
    }
    let erased = |p: usize| {
        let (x, y) = (p % shape.width, p / shape.width);
        args.erase.iter().any(|r| (r[0]..r[2]).contains(&x) && (r[1]..r[3]).contains(&y))
    };
    Ok(pixels.into_iter().enumerate().filter(|&(p, _)| !erased(p)).map(|(p, v)| (p, u32::from(v))).collect())
}

/// The grey levels of a PNG that must be exactly `shape` (RGB is read as its mean).
fn read_grey_png(path: &Path, shape: ImageShape) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().with_context(|| format!("{} is not a PNG", path.display()))?;
    let (width, height) = (reader.info().width as usize, reader.info().height as usize);
    if (width, height) != (shape.width, shape.height) {
        anyhow::bail!("{} is {width} × {height}; the model draws {} × {}", path.display(), shape.width, shape.height);
    }
    let mut data = vec![0; reader.output_buffer_size().context("the PNG is too large")?];
    let info = reader.next_frame(&mut data).with_context(|| format!("{} is broken", path.display()))?;
    let channels = info.color_type.samples();
    Ok(data[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|px| match px {
            [g] | [g, _] => *g,
            [r, g, b, ..] => ((u16::from(*r) + u16::from(*g) + u16::from(*b) + 1) / 3) as u8,
            [] => 0,
        })
        .collect())
}

/// Where an image model's samples are drawn.
struct Pictures {
    sheet: Sheet,
    png: PathBuf,
    gif: Option<PathBuf>,
}

impl Pictures {
    /// The pictures `args` ask for: always for an image model (a PNG), an error for a text
    /// model given --png or --gif. `steps` is the sampler's loop length (it sizes a GIF).
    fn new(args: &GenerateArgs, model: &Model, steps: usize) -> anyhow::Result<Option<Self>> {
        let Some(shape) = model.config().image else {
            if args.png.is_some() || args.gif.is_some() {
                anyhow::bail!("--png and --gif draw image models; this model has no `image` in its config.json");
            }
            return Ok(None);
        };
        if args.gif.is_some() {
            let bytes = [u64::from(args.samples), (steps as u64).saturating_add(2), 4]
                .into_iter()
                .fold(model.config().sequence_subtokens() as u64, u64::saturating_mul);
            if bytes > MAX_GIF_STATES {
                anyhow::bail!(
                    "a GIF of {} samples × {} steps keeps {:.1} GB of states; draw fewer samples or steps",
                    args.samples,
                    steps,
                    bytes as f64 / 1e9
                );
            }
        }
        Ok(Some(Self {
            sheet: Sheet::new(shape, args.samples as usize, args.scale)?,
            png: args.png.clone().unwrap_or_else(|| PathBuf::from("samples.png")),
            gif: args.gif.clone(),
        }))
    }

    /// Writes the PNG (and GIF); returns where, in words.
    fn write(&self, model: &Model, reports: &[Report], states: &[Vec<Vec<u32>>]) -> anyhow::Result<String> {
        let codec = model.codec();
        let finals = reports.iter().map(|r| codec.encode(&r.tokens)).collect::<prime_core::Result<Vec<_>>>()?;
        let finals: Vec<&[u32]> = finals.iter().map(Vec::as_slice).collect();
        self.sheet.write_png(&self.png, codec, &finals)?;
        let mut written = format!("{}", self.png.display());
        if let Some(path) = &self.gif {
            let mut animation = Animation::create(self.sheet.clone(), path)?;
            let frames = states.iter().map(Vec::len).max().unwrap_or(0);
            for step in 0..frames {
                // A sample that finished early (fewer events) stays at its last state.
                let now: Vec<&[u32]> = states.iter().map(|s| s[step.min(s.len() - 1)].as_slice()).collect();
                animation.frame(codec, &now, GIF_STEP_DELAY)?;
            }
            let frames = animation.finish(GIF_HOLD)?;
            written.push_str(&format!(" and {} ({frames} frames)", path.display()));
        }
        Ok(written)
    }
}
