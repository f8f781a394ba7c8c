//! `prime-train sweep`: NFE against quality for a model over sampler settings — loop steps T,
//! reveal policies and modes, and nucleus masses — measured as the demo models are judged: a text model by
//! its dictionary words and word pairs (`words`), an image model by the classifier's labels
//! and feature distance (`judge`). The references (word list, corpus, classifier) are made
//! once; every setting draws the same seeds.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, ensure};
use clap::Args;
use prime_core::output::FileOutput;
use prime_core::sampler::{RevealPolicy, SamplingMode};
use prime_core::{GenerationRequest, Model, SamplerSettings};
use serde::Serialize;

use prime_native::device_args::DeviceArgs;
use prime_native::model_arg::ModelArg;
use prime_native::sampling_args::ClassArg;

use crate::images::judge::{ImageFigures, ImageJudge, ImageReferenceArgs, asked_classes};
use crate::plot::{Series, line_chart};
use crate::words::{MAX_SAMPLES, TextFigures, TextJudge, TextReferenceArgs, draw, mean};

/// Arguments of `prime-train sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Loop steps T to try.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    steps: Vec<usize>,
    /// Reveal modes of the schedule policy to try.
    #[arg(long, value_delimiter = ',', value_enum, default_value = "ancestral")]
    modes: Vec<SamplingMode>,
    /// Reveal policies to try: `schedule` (in each of --modes), `confidence:τ`, `entropy:γ`.
    #[arg(long, value_delimiter = ',', default_value = "schedule")]
    policies: Vec<RevealPolicy>,
    /// Nucleus masses to try [default: the model's recommendation, else 1].
    #[arg(long, value_delimiter = ',')]
    top_p: Vec<f32>,
    /// Samples per setting (seeds --seed … --seed + n − 1).
    #[arg(long, default_value_t = 16)]
    samples: usize,
    /// Seed of the first sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sequences per network call.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[command(flatten)]
    class: ClassArg,
    /// Class-conditioned models: the classifier-free guidance scale of every setting
    /// [default: the model's recommendation, else 0].
    #[arg(long)]
    guidance: Option<f32>,
    #[command(flatten)]
    text: TextReferenceArgs,
    #[command(flatten)]
    images: ImageReferenceArgs,
    /// Print one JSON object per setting (JSON Lines).
    #[arg(long)]
    json: bool,
    /// Also draw the rows as a chart (SVG): network calls against the dictionary share (text)
    /// or the confident share (images), one line per policy and top-p.
    #[arg(long)]
    svg: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
}

/// One setting's figures.
#[derive(Debug, Serialize)]
struct Row {
    policy: String,
    mode: SamplingMode,
    steps: usize,
    top_p: f32,
    guidance: f32,
    samples: usize,
    mean_nfe: f64,
    mean_idle_steps: f64,
    seconds: f64,
    #[serde(flatten)]
    quality: Quality,
}

/// What the samples are measured by, by the model's kind.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Quality {
    Text(TextFigures),
    Image(ImageFigures),
}

/// The reference a kind of model is measured against.
enum Judge {
    Text(Box<TextJudge>),
    Image(Box<ImageJudge>),
}

/// Runs `prime-train sweep`.
pub fn run(args: &SweepArgs) -> Result<()> {
    ensure!((1..=MAX_SAMPLES).contains(&args.samples), "--samples must be between 1 and {MAX_SAMPLES}");
    ensure!((1..=MAX_SAMPLES).contains(&args.batch), "--batch must be between 1 and {MAX_SAMPLES}");
    ensure!(!args.steps.is_empty() && !args.modes.is_empty(), "--steps and --modes need at least one value");
    let device = args.device.open()?;
    let model = args.model.load(&device)?;
    let mut recommended = model.config().sampling.settings();
    recommended.guidance = args.guidance.unwrap_or(recommended.guidance);
    let top_ps = if args.top_p.is_empty() { vec![recommended.top_p] } else { args.top_p.clone() };
    let judge = if model.config().image.is_some() {
        Judge::Image(Box::new(args.images.judge(&model)?))
    } else {
        Judge::Text(Box::new(args.text.judge(&model, args.samples)?))
    };
    let mut settings = Vec::new();
    for &policy in &args.policies {
        // The modes draw the schedule's reveal times; an adaptive policy has none.
        let modes = if policy.is_adaptive() { &[SamplingMode::Ancestral][..] } else { &args.modes };
        for &mode in modes {
            for &top_p in &top_ps {
                for &steps in &args.steps {
                    let s = SamplerSettings { steps, top_p, mode, policy, seed: args.seed, ..recommended.clone() };
                    settings.push(s);
                }
            }
        }
    }
    for s in &settings {
        s.validate()?;
    }
    if !args.json {
        header(&args.model.describe(), &judge)?;
    }
    let mut rows = Vec::with_capacity(settings.len());
    for settings in settings {
        let row = measure(&model, &judge, settings, args)?;
        if args.json {
            prime_native::say!("{}", serde_json::to_string(&row)?)?;
        } else {
            print_row(&row, &judge)?;
        }
        rows.push(row);
    }
    if let Some(path) = &args.svg {
        let svg = chart(&args.model.describe(), &rows, top_ps.len() > 1);
        FileOutput::write_all_to(path, svg.as_bytes())?;
    }
    Ok(())
}

/// The rows as a chart: NFE against the headline quality, one line per policy (and top-p).
fn chart(model: &str, rows: &[Row], by_top_p: bool) -> String {
    let mut series: Vec<Series> = Vec::new();
    for row in rows {
        let name = if by_top_p { format!("{}, top-p {}", label(row), row.top_p) } else { label(row).to_string() };
        let quality = match &row.quality {
            Quality::Text(text) => 100.0 * text.fraction,
            Quality::Image(image) => 100.0 * image.samples.confident,
        };
        match series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push((row.mean_nfe, quality)),
            None => series.push(Series { name, points: vec![(row.mean_nfe, quality)] }),
        }
    }
    let y_label = match rows.first().map(|r| &r.quality) {
        Some(Quality::Image(_)) => "samples labelled with confidence (%)",
        _ => "dictionary words (%)",
    };
    line_chart(&format!("{model}: network calls against quality"), "mean NFE (log scale)", y_label, &series)
}

/// How the table and the chart name a row's policy: the schedule by its mode.
fn label(row: &Row) -> &str {
    match (row.policy.as_str(), row.mode) {
        ("schedule", SamplingMode::Ancestral) => "ancestral",
        ("schedule", SamplingMode::EventDriven) => "event-driven",
        (adaptive, _) => adaptive,
    }
}

/// Draws the samples of one setting and measures them.
fn measure(model: &Model, judge: &Judge, settings: SamplerSettings, args: &SweepArgs) -> Result<Row> {
    let request =
        GenerationRequest { settings, class: args.class.resolve(model.config()), ..GenerationRequest::default() };
    let started = Instant::now();
    let outcomes = draw(model, &request, args.samples, args.batch)?;
    let seconds = started.elapsed().as_secs_f64();
    let quality = match judge {
        Judge::Text(judge) => Quality::Text(judge.measure(&judge.decode(&outcomes)?)?),
        Judge::Image(judge) => {
            let asked = asked_classes(model, &request, args.samples)?;
            Quality::Image(judge.measure(&ImageJudge::images(&outcomes)?, &asked)?)
        }
    };
    let s = &request.settings;
    Ok(Row {
        policy: s.policy.to_string(),
        mode: s.mode,
        steps: s.steps,
        top_p: s.top_p,
        guidance: s.guidance,
        samples: args.samples,
        mean_nfe: mean(outcomes.iter().map(|o| o.nfe)),
        mean_idle_steps: mean(outcomes.iter().map(|o| o.idle_steps)),
        seconds,
        quality,
    })
}

/// The table's heading: what the columns are set beside.
fn header(model: &str, judge: &Judge) -> Result<()> {
    match judge {
        Judge::Text(_) => {
            prime_native::say!(
                "{model}: dictionary words and word pairs seen in training (ratio to real held-out text)"
            )?;
            prime_native::say!(
                "{:<16} {:>5} {:>6} {:>7} {:>11} {:>10}",
                "policy",
                "T",
                "top-p",
                "NFE",
                "dictionary",
                "pair ratio"
            )
        }
        Judge::Image(judge) => {
            prime_native::say!(
                "{model}: the classifier ({:.1} % accurate) labels {:.1} % of held-out images with confidence, class TV {:.3}",
                100.0 * judge.accuracy,
                100.0 * judge.held_out.confident,
                judge.held_out.class_tv_from_uniform
            )?;
            prime_native::say!(
                "{:<16} {:>5} {:>6} {:>7} {:>10} {:>9} {:>9} {:>13} {:>9}",
                "policy",
                "T",
                "top-p",
                "NFE",
                "confident",
                "×real",
                "class TV",
                "feature ratio",
                "as asked"
            )
        }
    }
}

/// One line of the table.
fn print_row(row: &Row, judge: &Judge) -> Result<()> {
    let lead = format!("{:<16} {:>5} {:>6} {:>7.1}", label(row), row.steps, row.top_p, row.mean_nfe);
    match &row.quality {
        Quality::Text(text) => {
            let pairs = text.pairs.as_ref().map_or("–".to_string(), |p| format!("{:.2}", p.ratio));
            prime_native::say!("{lead} {:>10.1}% {pairs:>10}", 100.0 * text.fraction)
        }
        Quality::Image(image) => {
            let real = match judge {
                Judge::Image(judge) => judge.held_out.confident,
                Judge::Text(_) => f64::NAN,
            };
            let agreement = image.class_agreement.map_or("–".to_string(), |a| format!("{:.1}%", 100.0 * a));
            prime_native::say!(
                "{lead} {:>9.1}% {:>9.2} {:>9.3} {:>13.2} {agreement:>9}",
                100.0 * image.samples.confident,
                image.samples.confident / real.max(f64::MIN_POSITIVE),
                image.samples.class_tv_from_uniform,
                image.features.ratio
            )
        }
    }
}
