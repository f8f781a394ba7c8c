//! `prime-train judge`: how much an image model's samples look like the data. A classifier
//! trained on the training split labels N generated samples; the report gives the share it
//! labels with confidence ≥ 0.9 and the class histogram, beside the same figures for held-out
//! real images (the ceiling) and the classifier's held-out accuracy.

use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use clap::Args;
use prime_core::sampler::run_together;
use prime_core::{GenerationRequest, SamplerSettings};
use serde::Serialize;

use prime_native::device_args::DeviceArgs;
use prime_native::model_arg::ModelArg;
use prime_native::sampler_args::SamplerArgs;

use super::classifier::{Classifier, label};
use super::{CLASS_NAMES, CLASSES, ImageSet};

/// Confidence above which a label counts as confident.
const CONFIDENT: f32 = 0.9;

/// Most samples (and sequences per call) one judgement draws.
const MAX_SAMPLES: usize = 1 << 16;

/// Arguments of `prime-train judge`.
#[derive(Debug, Args)]
pub struct JudgeArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The folder `prime-train images` wrote, at the model's image size.
    #[arg(long, default_value = "data/fashion14")]
    images: PathBuf,
    /// Samples to generate (seeds 0..n).
    #[arg(long, default_value_t = 256)]
    samples: usize,
    /// Sequences per network call.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Sampling steps T.
    #[arg(long, default_value_t = 256)]
    steps: usize,
    /// Nucleus mass (official rule); 1 disables it.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Passes of the classifier's training over the training split.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    #[command(flatten)]
    sampler: SamplerArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Labels of a set of images.
#[derive(Debug, Serialize)]
struct Labelling {
    images: usize,
    /// Share labelled with confidence ≥ 0.9.
    confident: f64,
    /// Mean confidence of the top label.
    mean_confidence: f64,
    /// Share of each class among the top labels.
    classes: [f64; CLASSES],
}

impl Labelling {
    /// The figures of images' top labels (class, probability).
    fn of(top_labels: impl Iterator<Item = (usize, f32)>) -> Self {
        let (mut n, mut confident, mut confidence, mut counts) = (0, 0, 0.0, [0usize; CLASSES]);
        for (class, p) in top_labels {
            n += 1;
            confident += usize::from(p >= CONFIDENT);
            confidence += f64::from(p);
            counts[class] += 1;
        }
        let n_f = n.max(1) as f64;
        Self {
            images: n,
            confident: confident as f64 / n_f,
            mean_confidence: confidence / n_f,
            classes: counts.map(|c| c as f64 / n_f),
        }
    }
}

/// The measured figures.
#[derive(Debug, Serialize)]
struct JudgeReport {
    model: String,
    steps: usize,
    top_p: f32,
    classifier_epochs: usize,
    classifier_valid_accuracy: f64,
    held_out: Labelling,
    samples: Labelling,
    data_classes: [f64; CLASSES],
    class_names: [&'static str; CLASSES],
    mean_nfe: f64,
    seconds_sampling: f64,
}

/// Runs `prime-train judge`.
pub fn run(args: &JudgeArgs) -> Result<()> {
    ensure!(
        (1..=MAX_SAMPLES).contains(&args.samples) && (1..=MAX_SAMPLES).contains(&args.batch),
        "--samples and --batch must be between 1 and {MAX_SAMPLES}"
    );
    let train = ImageSet::load(&args.images, "train")?;
    let valid = ImageSet::load(&args.images, "valid")?;
    let device = args.device.open()?;
    let model = args.model.load(&device)?;
    let shape = model.config().image.context("the model has no `image` in its config.json: not an image model")?;
    ensure!(
        (shape.width, shape.height) == (train.width, train.height),
        "the model draws {} × {} images but {} holds {} × {}",
        shape.width,
        shape.height,
        args.images.display(),
        train.width,
        train.height
    );
    eprintln!("training the classifier ({} epochs over {} images)…", args.epochs, train.len());
    let classifier = Classifier::train(&train, args.epochs, 0xC1A55);
    let held_labels: Vec<(usize, f32)> =
        (0..valid.len()).map(|i| label(&classifier.probabilities(valid.image(i)))).collect();
    let correct =
        held_labels.iter().zip(&valid.labels).filter(|&(&(class, _), &truth)| class == usize::from(truth)).count();
    let held_out = Labelling::of(held_labels.into_iter());

    eprintln!("sampling {} images with T = {}…", args.samples, args.steps);
    let request = GenerationRequest {
        settings: SamplerSettings {
            steps: args.steps,
            top_p: args.top_p,
            mode: args.sampler.mode.into(),
            ..SamplerSettings::default()
        },
        executor: args.sampler.sampler.into(),
        ..GenerationRequest::default()
    };
    let started = std::time::Instant::now();
    let (mut images, mut nfe) = (Vec::with_capacity(args.samples), 0);
    for first in (0..args.samples).step_by(args.batch) {
        let mut runs = request.start_seeds(&model, first..first.saturating_add(args.batch).min(args.samples))?;
        let outcomes =
            run_together(&mut runs, &model, |_, _, _| ControlFlow::Continue(()))?.context("sampling stopped early")?;
        for outcome in outcomes {
            nfe += outcome.nfe;
            images.push(outcome.tokens.iter().map(|&t| u8::try_from(t)).collect::<Result<Vec<u8>, _>>()?);
        }
    }
    let seconds_sampling = started.elapsed().as_secs_f64();
    let samples = Labelling::of(images.iter().map(|image| label(&classifier.probabilities(image))));
    let counts = valid.class_counts().map(|c| c as f64 / valid.len() as f64);
    let report = JudgeReport {
        model: args.model.describe(),
        steps: args.steps,
        top_p: args.top_p,
        classifier_epochs: args.epochs,
        classifier_valid_accuracy: correct as f64 / valid.len() as f64,
        held_out,
        samples,
        data_classes: counts,
        class_names: CLASS_NAMES,
        mean_nfe: nfe as f64 / args.samples as f64,
        seconds_sampling,
    };
    if args.json {
        prime_native::say!("{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    prime_native::say!(
        "classifier: {:.1} % accurate on {} held-out images; labels {:.1} % of them with confidence ≥ {CONFIDENT}",
        100.0 * report.classifier_valid_accuracy,
        valid.len(),
        100.0 * report.held_out.confident
    )?;
    prime_native::say!(
        "{}: {:.1} % of {} samples (T = {}, top-p {}, mean NFE {:.1}) labelled with confidence ≥ {CONFIDENT}; mean confidence {:.3} (held-out: {:.3})",
        report.model,
        100.0 * report.samples.confident,
        args.samples,
        args.steps,
        args.top_p,
        report.mean_nfe,
        report.samples.mean_confidence,
        report.held_out.mean_confidence
    )?;
    prime_native::say!("{:<12} {:>8} {:>8}", "class", "samples", "data")?;
    for c in 0..CLASSES {
        prime_native::say!(
            "{:<12} {:>7.1}% {:>7.1}%",
            CLASS_NAMES[c],
            100.0 * report.samples.classes[c],
            100.0 * counts[c]
        )?;
    }
    Ok(())
}
