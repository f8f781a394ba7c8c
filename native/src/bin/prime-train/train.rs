//! `prime-train train`: trains a demo model on a corpus split and exports a model folder.
//!
//! The run lives in `--out`: `checkpoint/` (resumed automatically), `run.json` (wall time and
//! loss log across resumes) and, once every planned step is done, `model/` — a folder that
//! `prime generate` loads — with `training.json` holding the measured figures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use burn::module::Module;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prime_core::binding::Blocking;
use prime_core::image::{GREY_LEVELS, ImageShape};
use prime_core::model::{CONFIG_FILE, WEIGHTS_FILE, write_dir};
use prime_core::network::CLASS_EMBEDDING;
use prime_core::output::{DirOutput, FileOutput};
use prime_core::text::TextCodec;
use prime_core::train::{
    BoundEstimate, LearningRateSchedule, TokenCorpus, TrainSettings, Trainer, initial_weights, validation_bound,
};
use prime_core::weights::{WeightFile, to_safetensors};
use prime_core::{ModelClass, ModelConfig};
use serde::{Deserialize, Serialize};

use prime_native::device_args::DeviceArgs;

use crate::images::{CLASS_NAMES, CLASSES, ImageSet};

/// Arguments of `prime-train train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Folder with `train.txt` and `valid.txt` (from `prime-train corpus`).
    #[arg(long, default_value = "data/austen")]
    corpus: PathBuf,
    /// Train an image model instead: the folder `prime-train images` wrote (each pixel a token,
    /// V = 256, L = width × height; no tokenizer).
    #[arg(long)]
    images: Option<PathBuf>,
    /// Image models: held-out images the validation bound is computed on (the first ones).
    #[arg(long, default_value_t = 1000)]
    valid_images: usize,
    /// Image models: condition the network on the images' classes (a learned class
    /// embedding; a tenth of the training images are shown without their class, so that the
    /// model also draws without one).
    #[arg(long, requires = "images")]
    classes: bool,
    /// Start a new run from this model folder's weights instead of a seeded init: its network
    /// must be the one the other flags describe, except that a class embedding it lacks starts
    /// at zero (so a model without classes can be taught them). A resumed run ignores it.
    #[arg(long)]
    init: Option<PathBuf>,
    /// The tokenizer (from `prime-train tokenizer`); copied into the exported model.
    #[arg(long, default_value = "data/austen/tokenizer.json")]
    tokenizer: PathBuf,
    /// Run folder: checkpoints, log and the exported model.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    shape: ShapeArgs,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Planned optimiser steps (the learning-rate schedule spans them).
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// EMA decay per step.
    #[arg(long, default_value_t = 0.998)]
    ema: f64,
    /// Seed of the weights and of every training draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write a checkpoint every this many steps.
    #[arg(long, default_value_t = 100)]
    checkpoint_every: usize,
    /// Stop (with a checkpoint) after this many minutes; Ctrl-C stops the same way. Run the
    /// same command again to resume.
    #[arg(long)]
    minutes: Option<f64>,
    #[command(flatten)]
    device: DeviceArgs,
}

/// The network's shape: what `train` trains and `bench` times.
#[derive(Debug, Args)]
pub struct ShapeArgs {
    /// Sub-tokens per token ℓ; 1 trains the MDLM (`DIT`) twin.
    #[arg(long, default_value_t = 2)]
    subtokens: usize,
    /// Hidden size D.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// DDiT blocks.
    #[arg(long, default_value_t = 4)]
    blocks: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Conditioning width.
    #[arg(long, default_value_t = 64)]
    cond: usize,
    /// Sequence length L in tokens (image models: set by the images).
    #[arg(long, default_value_t = 128)]
    length: usize,
}

impl ShapeArgs {
    /// The model of this shape for a vocabulary of `vocab` tokens, or an image model of `image`
    /// (grey levels for a vocabulary, a token per pixel).
    pub fn config(&self, vocab: usize, image: Option<ImageShape>) -> Result<ModelConfig> {
        ensure!(self.subtokens >= 1, "--subtokens must be at least 1");
        let mut config = ModelConfig {
            model_class: if self.subtokens == 1 { ModelClass::DIT } else { ModelClass::PerceiverDIT },
            vocab_size: u32::try_from(vocab).context("vocabulary too large")?,
            subtokens: self.subtokens,
            base: None,
            hidden_size: self.hidden,
            n_blocks: self.blocks,
            n_heads: self.heads,
            cond_dim: self.cond,
            length: self.length,
            mlp_ratio: 4,
            layer_norm_eps: 1e-5,
            rope_base: 10000.0,
            frequency_embedding_size: 256,
            carry_over: true,
            image: None,
            position_embedding: false,
            classes: Vec::new(),
            sampling: Default::default(),
        };
        if let Some(shape) = image {
            config = config.into_image(shape);
        }
        config.validate()?;
        Ok(config)
    }
}

/// Wall time and losses of a run, kept across resumes.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RunLog {
    seconds: f64,
    /// (step, mean loss over the steps since the previous entry).
    losses: Vec<(usize, f64)>,
    /// Fingerprint of the tokenizer a text run trains with (see [`prime_native::fingerprint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokenizer: Option<String>,
    /// The model folder a run started from (`--init`), with its own `training.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    init: Option<InitRecord>,
}

/// Where a run's weights came from when it did not start from a seeded init.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InitRecord {
    /// The `--init` folder.
    path: PathBuf,
    /// That folder's `training.json` (how its weights were trained), where it has one.
    training: Option<serde_json::Value>,
}

impl InitRecord {
    /// The record of starting from the model folder `dir`.
    fn of(dir: &Path) -> Result<Self> {
        let path = dir.join("training.json");
        let training = match std::fs::read_to_string(&path) {
            Ok(text) => Some(serde_json::from_str(&text).with_context(|| format!("{} is corrupt", path.display()))?),
            Err(_) => None,
        };
        Ok(Self { path: dir.to_path_buf(), training })
    }
}

/// Arguments of `prime-train snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The run folder (`prime-train train --out`).
    #[arg(long)]
    run: PathBuf,
    /// The model folder to write (replaced whole); default RUN/snapshot.
    #[arg(long)]
    to: Option<PathBuf>,
    /// The run's tokenizer (text runs; checked against the run's fingerprint).
    #[arg(long, default_value = "data/austen/tokenizer.json")]
    tokenizer: PathBuf,
}

/// What a snapshot's `training.json` records.
#[derive(Debug, Serialize)]
struct SnapshotReport<'a> {
    snapshot_step: usize,
    planned_steps: usize,
    training_seconds: f64,
    settings: &'a TrainSettings,
    note: &'static str,
}

/// Runs `prime-train snapshot`: the EMA weights of a run's last checkpoint as a model folder,
/// while the run goes on (or after it stopped).
pub fn snapshot(args: &SnapshotArgs) -> Result<()> {
    let checkpoint = args.run.join(CHECKPOINT);
    ensure!(
        checkpoint.join("trainer.json").is_file(),
        "{} holds no checkpoint (start the run with `prime-train train --out`)",
        args.run.display()
    );
    let trainer = Trainer::resume(&checkpoint, &burn::tensor::Device::flex())?;
    let log = RunLog::load(&args.run.join(RUN_LOG))?;
    let tokenizer = match trainer.config().image {
        Some(_) => None,
        None => {
            let bytes = std::fs::read(&args.tokenizer)
                .with_context(|| format!("cannot read {} (pass the run's --tokenizer)", args.tokenizer.display()))?;
            if let Some(was) = &log.tokenizer {
                ensure!(
                    *was == prime_native::fingerprint(&bytes),
                    "{} is not the tokenizer {} was trained with (pass the run's --tokenizer)",
                    args.tokenizer.display(),
                    args.run.display()
                );
            }
            Some(bytes)
        }
    };
    let dir = args.to.clone().unwrap_or_else(|| args.run.join("snapshot"));
    let out = DirOutput::create(&dir, true)?;
    write_dir(&out, trainer.config(), &to_safetensors(&trainer.ema().export()?)?, tokenizer.as_deref())?;
    let report = SnapshotReport {
        snapshot_step: trainer.step(),
        planned_steps: trainer.settings().schedule.total,
        training_seconds: log.seconds,
        settings: trainer.settings(),
        note: "EMA weights of the run's last checkpoint, not validated (a finished run exports model/ with its bound)",
    };
    out.write("training.json", &serde_json::to_vec_pretty(&report)?)?;
    out.commit()?;
    prime_native::say!(
        "step {} of {}: EMA weights written to {}",
        trainer.step(),
        trainer.settings().schedule.total,
        dir.display()
    )?;
    Ok(())
}

impl RunLog {
    /// The log at `path`; an empty one where there is none yet.
    fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(s) => serde_json::from_str(&s).with_context(|| format!("{} is corrupt", path.display())),
            Err(_) => Ok(Self::default()),
        }
    }
}

/// Each field where `checkpoint` and `requested` differ, as `name = checkpoint's value (these
/// flags: requested value)`.
fn differences<T: Serialize>(checkpoint: &T, requested: &T) -> Vec<String> {
    let (Ok(serde_json::Value::Object(was)), Ok(serde_json::Value::Object(now))) =
        (serde_json::to_value(checkpoint), serde_json::to_value(requested))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value) in &was {
        let other = now.get(name).unwrap_or(&serde_json::Value::Null);
        match (value, other) {
            (serde_json::Value::Object(_), serde_json::Value::Object(_)) => {
                out.extend(differences(value, other).into_iter().map(|d| format!("{name}.{d}")))
            }
            _ if value != other => out.push(format!("{name} = {value} (these flags: {other})")),
            _ => {}
        }
    }
    out
}

/// What `model/training.json` records.
#[derive(Debug, Serialize)]
struct TrainingReport<'a> {
    parameters: usize,
    steps: usize,
    batch_size: usize,
    length: usize,
    training_tokens: usize,
    corpus_tokens: usize,
    training_seconds: f64,
    device: String,
    settings: &'a TrainSettings,
    validation: BoundEstimate,
    validation_note: &'static str,
    final_losses: &'a [(usize, f64)],
    /// The model folder the run started from, and how that was trained.
    #[serde(skip_serializing_if = "Option::is_none")]
    initialised_from: Option<&'a InitRecord>,
}

const CHECKPOINT: &str = "checkpoint";
const RUN_LOG: &str = "run.json";

/// Set by the first Ctrl-C: the run stops after the step in progress, with a checkpoint.
static STOP: AtomicBool = AtomicBool::new(false);

/// Ctrl-C once stops the run after the current step and writes a checkpoint; twice exits at
/// once (every checkpoint file is renamed into place whole, so none is left half-written).
fn stop_on_ctrl_c() -> Result<()> {
    ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting without a new checkpoint");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: stopping after this step and writing a checkpoint (Ctrl-C again to quit now)");
    })
    .context("cannot install the Ctrl-C handler")
}

/// Runs `prime-train train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    stop_on_ctrl_c()?;
    let compute = args.device.open()?;
    let device = compute.device.clone();
    let data = match &args.images {
        Some(dir) => Data::Images { train: ImageSet::load(dir, "train")?, valid: ImageSet::load(dir, "valid")? },
        None => Data::Text(
            std::fs::read(&args.tokenizer).with_context(|| format!("cannot read {}", args.tokenizer.display()))?,
        ),
    };
    let checkpoint = args.out.join(CHECKPOINT);
    let log_path = args.out.join(RUN_LOG);
    let mut log = RunLog::load(&log_path)?;
    let fingerprint = data.fingerprint();
    if let (Some(was), Some(now)) = (&log.tokenizer, &fingerprint) {
        ensure!(
            was == now,
            "{} was trained with another tokenizer than {} (fingerprint {was}, this one {now}): pass the run's \
             own --tokenizer, or start a new run in another --out",
            args.out.display(),
            args.tokenizer.display()
        );
    }
    log.tokenizer = fingerprint;
    let mut trainer = if checkpoint.join("trainer.json").is_file() {
        let mut t = Trainer::resume(&checkpoint, &device)?;
        let differences = differences(t.config(), &model_config(args, &data)?)
            .into_iter()
            .chain(differences(
                t.settings(),
                &TrainSettings {
                    schedule: LearningRateSchedule { total: t.settings().schedule.total, ..settings(args).schedule },
                    ..settings(args)
                },
            ))
            .collect::<Vec<_>>();
        ensure!(
            differences.is_empty(),
            "{} holds a run of another model or settings ({}): resume with the run's own flags (a larger --steps \
             extends it), or start a new run in another --out",
            checkpoint.display(),
            differences.join("; ")
        );
        t.extend_to(args.steps);
        eprintln!(
            "resuming {} at step {} of {} (a larger --steps extends the run)",
            checkpoint.display(),
            t.step(),
            t.settings().schedule.total
        );
        t
    } else {
        let config = model_config(args, &data)?;
        match &args.init {
            Some(dir) => {
                log.init = Some(InitRecord::of(dir)?);
                Trainer::starting_from(config.clone(), settings(args), &device, init_weights(dir, &config, args.seed)?)?
            }
            None => Trainer::new(config, settings(args), &device)?,
        }
    };
    let config = trainer.config().clone();
    // A batch whose intermediates exceed the adapter's largest binding fails deep inside the
    // GPU runtime; say so first.
    Blocking::new(&config, compute.max_binding())
        .and_then(|b| b.check_batch(&config, trainer.settings().batch_size))
        .with_context(|| format!("training on {}", DeviceArgs::describe(&compute)))?;
    let (train, valid) = data.splits(args, &config)?;
    let total = trainer.settings().schedule.total;
    let parameters = trainer.ema().num_params();
    eprintln!(
        "{} ℓ={} · {parameters} parameters · {} training / {} validation tokens · {total} steps of {}×{} on {}",
        if config.model_class == ModelClass::DIT { "MDLM" } else { "MDM-Prime" },
        config.subtokens,
        train.len(),
        valid.len(),
        trainer.settings().batch_size,
        config.length,
        DeviceArgs::describe(&compute)
    );

    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps · ETA {eta} · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(trainer.step() as u64);
    let budget = match args.minutes {
        Some(m) if !(m > 0.0 && m < 1e9) => bail!("--minutes must be a positive number of minutes, got {m}"),
        m => m.map(|m| Duration::from_secs_f64(m * 60.0)),
    };
    let started = Instant::now();
    let mut since_save = Instant::now();
    let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
    let tokens_per_step = trainer.settings().batch_size.saturating_mul(config.length);
    while trainer.step() < total {
        if budget.is_some_and(|b| started.elapsed() >= b) || STOP.load(Ordering::SeqCst) {
            break;
        }
        let loss = trainer.train_step(&train)?;
        loss_sum += f64::from(loss);
        loss_n += 1;
        let rate = loss_n as f64 * tokens_per_step as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(trainer.step() as u64);
        bar.set_message(format!("loss {:.3} · {rate:.0} tok/s", loss_sum / loss_n as f64));
        if trainer.step().is_multiple_of(args.checkpoint_every) || trainer.step() == total {
            log.losses.push((trainer.step(), loss_sum / loss_n.max(1) as f64));
            (loss_sum, loss_n) = (0.0, 0);
            log.seconds += since_save.elapsed().as_secs_f64();
            since_save = Instant::now();
            save(&trainer, &checkpoint, &log, &log_path)?;
        }
    }
    bar.finish_and_clear();
    log.seconds += since_save.elapsed().as_secs_f64();
    save(&trainer, &checkpoint, &log, &log_path)?;
    if trainer.step() < total {
        eprintln!("stopped at step {}/{total}; run the same command again to resume", trainer.step());
        return Ok(());
    }
    eprintln!("validating the EMA weights with the marginalised bound…");
    let validation = validation_bound(trainer.ema(), &config, &valid, 16, 0x5EED)?;
    let report = TrainingReport {
        parameters,
        steps: total,
        batch_size: trainer.settings().batch_size,
        length: config.length,
        training_tokens: total.saturating_mul(tokens_per_step),
        corpus_tokens: train.len(),
        training_seconds: log.seconds,
        device: DeviceArgs::describe(&compute),
        settings: trainer.settings(),
        validation,
        validation_note: data.validation_note(),
        final_losses: &log.losses[log.losses.len().saturating_sub(5)..],
        initialised_from: log.init.as_ref(),
    };
    let dir = args.out.join("model");
    export(&trainer, data.tokenizer(), &report, &dir)?;
    prime_native::say!(
        "validation bound {:.4} ± {:.4} nats/token (PPL ≤ {:.1}) · exported to {}",
        validation.nll_per_token,
        validation.std_error,
        validation.nll_per_token.exp(),
        dir.display()
    )?;
    Ok(())
}

fn save(trainer: &Trainer, checkpoint: &Path, log: &RunLog, log_path: &Path) -> Result<()> {
    trainer.save(checkpoint)?;
    Ok(FileOutput::write_all_to(log_path, &serde_json::to_vec_pretty(log)?)?)
}

/// What a model is trained on.
enum Data {
    /// Running text; the tokenizer's bytes.
    Text(Vec<u8>),
    /// Images, one sequence each.
    Images { train: ImageSet, valid: ImageSet },
}

impl Data {
    /// The training and validation corpora.
    fn splits(&self, args: &TrainArgs, config: &ModelConfig) -> Result<(TokenCorpus, TokenCorpus)> {
        match self {
            Self::Text(tokenizer) => {
                if let Some(shape) = config.image {
                    bail!("this run trains an image model ({} × {} pixels): pass --images", shape.width, shape.height);
                }
                let text = TextCodec::from_bytes(tokenizer, config.vocab_size)?;
                let split = |name: &str| load_split(&text, &args.corpus.join(name), config);
                Ok((split("train.txt")?, split("valid.txt")?))
            }
            Self::Images { train, valid } => {
                ensure!(args.valid_images > 0, "--valid-images must be positive");
                let pixels = |set: &ImageSet, count: usize| -> Result<TokenCorpus> {
                    // A resumed run keeps its checkpoint's config: the images must be its grid
                    // (and a text run cannot go on with images).
                    let shape = ImageShape { width: set.width, height: set.height };
                    ensure!(
                        config.image == Some(shape),
                        "the images are {} × {} but this run's model is {}",
                        shape.width,
                        shape.height,
                        match config.image {
                            Some(grid) => format!("{} × {} pixels", grid.width, grid.height),
                            None => "a text model".to_string(),
                        }
                    );
                    let images = count.min(set.len());
                    let n = images.saturating_mul(config.length).min(set.pixels.len());
                    let tokens = set.pixels[..n].iter().map(|&p| u32::from(p)).collect();
                    let labels = set.labels[..n / config.length].iter().map(|&l| u32::from(l)).collect();
                    Ok(TokenCorpus::records(tokens, config.length, config.vocab_size)?.with_labels(labels, CLASSES)?)
                };
                Ok((pixels(train, train.len())?, pixels(valid, args.valid_images)?))
            }
        }
    }

    /// The tokenizer's [`prime_native::fingerprint`]; `None` for images, whose grid is checked instead.
    fn fingerprint(&self) -> Option<String> {
        let Self::Text(bytes) = self else { return None };
        Some(prime_native::fingerprint(bytes))
    }

    /// The tokenizer the exported model carries.
    fn tokenizer(&self) -> Option<&[u8]> {
        match self {
            Self::Text(tokenizer) => Some(tokenizer),
            Self::Images { .. } => None,
        }
    }

    /// How the validation bound was computed.
    fn validation_note(&self) -> &'static str {
        match self {
            Self::Text(_) => {
                "marginalised sub-token ELBO (spec §5.3), alpha_t = 1 - t, one antithetic t per sequence, \
                 EMA weights, every non-overlapping window of valid.txt; a valid upper bound on NLL"
            }
            Self::Images { .. } => {
                "marginalised sub-token ELBO (spec §5.3), alpha_t = 1 - t, one antithetic t per sequence, \
                 EMA weights, the first --valid-images held-out images (Fashion-MNIST t10k); a valid upper bound \
                 on NLL in nats per pixel"
            }
        }
    }
}

fn model_config(args: &TrainArgs, data: &Data) -> Result<ModelConfig> {
    match data {
        Data::Text(tokenizer) => args.shape.config(TextCodec::from_bytes(tokenizer, u32::MAX)?.vocab_size(), None),
        Data::Images { train, .. } => {
            let mut config = args
                .shape
                .config(GREY_LEVELS as usize, Some(ImageShape { width: train.width, height: train.height }))?;
            if args.classes {
                config.classes = CLASS_NAMES.iter().map(|c| c.to_string()).collect();
            }
            Ok(config)
        }
    }
}

/// The weights of the model folder `dir` as the start of a run of `config`: the folder's
/// network must be `config`'s (its sampling recommendation aside), and where `config` has
/// classes the folder's model lacks, their embedding starts as a fresh run's does (at zero; see
/// `initial_weights`), seeded with `seed`.
fn init_weights(dir: &Path, config: &ModelConfig, seed: u64) -> Result<WeightFile> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {} (--init)", path.display()))?;
    let was = ModelConfig::from_json(&text).with_context(|| format!("{} (--init)", path.display()))?;
    let taught_classes = was.classes.is_empty() && !config.classes.is_empty();
    let comparable = ModelConfig {
        classes: if taught_classes { config.classes.clone() } else { was.classes.clone() },
        sampling: config.sampling.clone(),
        ..was
    };
    let differences = differences(&comparable, config);
    ensure!(
        differences.is_empty(),
        "--init {} holds another network than these flags describe ({})",
        dir.display(),
        differences.join("; ")
    );
    let path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {} (--init)", path.display()))?;
    let mut weights = WeightFile::from_bytes(&bytes).with_context(|| format!("{} (--init)", path.display()))?;
    if taught_classes {
        let shape = [config.class_rows(), config.hidden_size];
        let fresh = initial_weights(config, seed)?.take(CLASS_EMBEDDING, &shape)?.into_host();
        weights.or_insert(CLASS_EMBEDDING, fresh);
    }
    Ok(weights)
}

fn settings(args: &TrainArgs) -> TrainSettings {
    TrainSettings {
        batch_size: args.batch,
        schedule: LearningRateSchedule { peak: args.lr, warmup: args.warmup, total: args.steps, floor: 0.1 },
        weight_decay: 0.0,
        grad_clip: 1.0,
        ema_decay: args.ema,
        seed: args.seed,
    }
}

fn load_split(text: &TextCodec, path: &Path, config: &ModelConfig) -> Result<TokenCorpus> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} (run `prime-train corpus` first)", path.display()))?;
    if s.trim().is_empty() {
        bail!("{} is empty", path.display());
    }
    let tokens = text.encode(&s)?;
    Ok(TokenCorpus::new(tokens, config.length, config.vocab_size)?)
}

fn export(trainer: &Trainer, tokenizer: Option<&[u8]>, report: &TrainingReport, dir: &Path) -> Result<()> {
    let weights = to_safetensors(&trainer.ema().export()?)?;
    // The exported folder belongs to the run: a finished run replaces it as a whole.
    let out = DirOutput::create(dir, true)?;
    write_dir(&out, trainer.config(), &weights, tokenizer)?;
    out.write("training.json", &serde_json::to_vec_pretty(report)?)?;
    Ok(out.commit()?)
}
