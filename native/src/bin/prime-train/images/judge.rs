//! `prime-train judge`: how much an image model's samples look like the data. A classifier
//! trained on the training split labels N generated samples; the report gives the share it
//! labels with confidence ≥ 0.9, the class histogram and its total-variation distance from
//! uniform, beside the same figures for held-out real images (the ceiling) and the
//! classifier's held-out accuracy; and a Fréchet distance between the samples' and held-out
//! images' features (the classifier's hidden layer), beside the same distance between two
//! equally sized sets of held-out images.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use clap::Args;
use prime_core::{GenerationRequest, Model, Outcome};
use serde::Serialize;

use prime_native::device_args::DeviceArgs;
use prime_native::model_arg::ModelArg;
use prime_native::sampling_args::SamplingArgs;

use super::classifier::{Classifier, label};
use super::{CLASS_NAMES, CLASSES, ImageSet};
use crate::words::{draw, mean};

/// Confidence above which a label counts as confident.
const CONFIDENT: f32 = 0.9;

/// Most samples (and sequences per call) one judgement draws.
const MAX_SAMPLES: usize = 1 << 16;

/// Arguments of `prime-train judge`.
#[derive(Debug, Args)]
pub struct JudgeArgs {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    reference: ImageReferenceArgs,
    /// Samples to generate (seeds --seed … --seed + n − 1).
    #[arg(long, default_value_t = 256)]
    samples: usize,
    /// Sequences per network call.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// What an image model's samples are measured against (`judge`, and `sweep` for image models).
#[derive(Debug, Args)]
pub struct ImageReferenceArgs {
    /// Image models: the folder `prime-train images` wrote, at the model's image size.
    #[arg(long, default_value = "data/fashion14")]
    images: PathBuf,
    /// Image models: passes of the classifier's training over the training split.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
}

impl ImageReferenceArgs {
    /// The classifier and held-out figures for `model`.
    pub fn judge(&self, model: &Model) -> Result<ImageJudge> {
        ImageJudge::new(model, &self.images, self.epochs)
    }
}

/// Labels of a set of images.
#[derive(Debug, Serialize)]
pub struct Labelling {
    images: usize,
    /// Share labelled with confidence ≥ 0.9.
    pub confident: f64,
    /// Mean confidence of the top label.
    mean_confidence: f64,
    /// Share of each class among the top labels.
    classes: [f64; CLASSES],
    /// Total-variation distance of that histogram from uniform: ½ Σ |share − 1/10|.
    pub class_tv_from_uniform: f64,
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
        let classes = counts.map(|c| c as f64 / n_f);
        Self {
            images: n,
            confident: confident as f64 / n_f,
            mean_confidence: confidence / n_f,
            classes,
            class_tv_from_uniform: classes.iter().map(|s| (s - 1.0 / CLASSES as f64).abs()).sum::<f64>() / 2.0,
        }
    }
}

/// Fréchet distances between Gaussians fitted to the classifier's features of image sets of
/// the same size n.
#[derive(Debug, Serialize)]
pub struct FeatureDistance {
    images_per_set: usize,
    /// Samples vs the first n held-out images.
    samples_to_held_out: f64,
    /// The next n held-out images vs the first n: what two real sets of this size differ by.
    held_out_to_held_out: f64,
    /// samples_to_held_out / held_out_to_held_out.
    pub ratio: f64,
}

/// The measured figures.
#[derive(Debug, Serialize)]
struct JudgeReport {
    model: String,
    steps: usize,
    top_p: f32,
    /// The `--class` the samples were drawn for (`each`: in turn).
    class: Option<String>,
    classifier_epochs: usize,
    classifier_valid_accuracy: f64,
    held_out: Labelling,
    #[serde(flatten)]
    figures: ImageFigures,
    data_classes: [f64; CLASSES],
    class_names: [&'static str; CLASSES],
    mean_nfe: f64,
    seconds_sampling: f64,
}

/// What a set of generated images is measured by.
#[derive(Debug, Serialize)]
pub struct ImageFigures {
    /// The classifier's labels of the samples.
    pub samples: Labelling,
    /// Of the samples drawn for a class, the share the classifier labels with that class
    /// (`None` where no sample was drawn for a class).
    pub class_agreement: Option<f64>,
    /// Feature distances, samples vs real.
    pub features: FeatureDistance,
}

/// A classifier trained on the training split and the held-out images' figures, made once for
/// any number of sample sets.
pub struct ImageJudge {
    classifier: Classifier,
    valid: ImageSet,
    /// The classifier's accuracy on the held-out split.
    pub accuracy: f64,
    /// Its labels of the held-out images: the ceiling a generator is set beside.
    pub held_out: Labelling,
}

impl ImageJudge {
    /// Reads the splits in `images` (which must be `model`'s image size) and trains the
    /// classifier for `epochs` passes.
    fn new(model: &Model, images: &Path, epochs: usize) -> Result<Self> {
        let train = ImageSet::load(images, "train")?;
        let valid = ImageSet::load(images, "valid")?;
        let shape = model.config().image.context("the model has no `image` in its config.json: not an image model")?;
        ensure!(
            (train.width, train.height) == (shape.width, shape.height),
            "the model draws {} × {} images but {} holds {} × {}",
            shape.width,
            shape.height,
            images.display(),
            train.width,
            train.height
        );
        eprintln!("training the classifier ({epochs} epochs over {} images)…", train.len());
        let classifier = Classifier::train(&train, epochs, 0xC1A55);
        let held_labels: Vec<(usize, f32)> =
            (0..valid.len()).map(|i| label(&classifier.probabilities(valid.image(i)))).collect();
        let correct =
            held_labels.iter().zip(&valid.labels).filter(|&(&(class, _), &truth)| class == usize::from(truth)).count();
        let accuracy = correct as f64 / valid.len().max(1) as f64;
        Ok(Self { classifier, accuracy, held_out: Labelling::of(held_labels.into_iter()), valid })
    }

    /// The images of generated samples (their tokens as grey levels).
    pub fn images(outcomes: &[Outcome]) -> Result<Vec<Vec<u8>>> {
        outcomes
            .iter()
            .map(|o| o.tokens.iter().map(|&t| u8::try_from(t).context("a token outside 0..=255")).collect())
            .collect()
    }

    /// The figures of `images`, each drawn for the class in `asked` (`None`: no class).
    pub fn measure(&self, images: &[Vec<u8>], asked: &[Option<u32>]) -> Result<ImageFigures> {
        ensure!(asked.len() == images.len(), "{} images but {} asked classes", images.len(), asked.len());
        let classifier = &self.classifier;
        let labels: Vec<(usize, f32)> = images.iter().map(|image| label(&classifier.probabilities(image))).collect();
        let conditioned: Vec<bool> =
            labels.iter().zip(asked).filter_map(|(&(class, _), asked)| asked.map(|a| a as usize == class)).collect();
        let class_agreement = (!conditioned.is_empty())
            .then(|| conditioned.iter().filter(|&&agree| agree).count() as f64 / conditioned.len() as f64);
        let samples = Labelling::of(labels.into_iter());
        let n = images.len().min(self.valid.len() / 2);
        ensure!(n >= 2, "feature distances need at least 2 samples and 4 held-out images");
        let features =
            |images: &mut dyn Iterator<Item = &[u8]>| images.map(|i| classifier.features(i)).collect::<Vec<_>>();
        let sampled = features(&mut images.iter().take(n).map(Vec::as_slice));
        let first = features(&mut (0..n).map(|i| self.valid.image(i)));
        let second = features(&mut (n..2 * n).map(|i| self.valid.image(i)));
        let (to_samples, to_real) = (frechet(&sampled, &first)?, frechet(&second, &first)?);
        let features = FeatureDistance {
            images_per_set: n,
            samples_to_held_out: to_samples,
            held_out_to_held_out: to_real,
            ratio: to_samples / to_real.max(f64::MIN_POSITIVE),
        };
        Ok(ImageFigures { samples, class_agreement, features })
    }

    /// Each class's share of the held-out split.
    fn data_classes(&self) -> [f64; CLASSES] {
        self.valid.class_counts().map(|c| c as f64 / self.valid.len().max(1) as f64)
    }
}

/// Runs `prime-train judge`.
pub fn run(args: &JudgeArgs) -> Result<()> {
    ensure!(
        (1..=MAX_SAMPLES).contains(&args.samples) && (1..=MAX_SAMPLES).contains(&args.batch),
        "--samples and --batch must be between 1 and {MAX_SAMPLES}"
    );
    let device = args.device.open()?;
    let model = args.model.load(&device)?;
    let judge = args.reference.judge(&model)?;
    let request = args.sampling.request(model.config());
    eprintln!("sampling {} images with T = {}…", args.samples, request.settings.steps);
    let started = std::time::Instant::now();
    let outcomes = draw(&model, &request, args.samples, args.batch)?;
    let asked = asked_classes(&model, &request, args.samples)?;
    let seconds_sampling = started.elapsed().as_secs_f64();
    let counts = judge.data_classes();
    let report = JudgeReport {
        model: args.model.describe(),
        steps: request.settings.steps,
        top_p: request.settings.top_p,
        classifier_epochs: args.reference.epochs,
        classifier_valid_accuracy: judge.accuracy,
        figures: judge.measure(&ImageJudge::images(&outcomes)?, &asked)?,
        class: request.class.clone(),
        held_out: judge.held_out,
        data_classes: counts,
        class_names: CLASS_NAMES,
        mean_nfe: mean(outcomes.iter().map(|o| o.nfe)),
        seconds_sampling,
    };
    if args.json {
        prime_native::say!("{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    prime_native::say!(
        "classifier: {:.1} % accurate on {} held-out images; labels {:.1} % of them with confidence ≥ {CONFIDENT}",
        100.0 * report.classifier_valid_accuracy,
        report.held_out.images,
        100.0 * report.held_out.confident
    )?;
    prime_native::say!(
        "{}: {:.1} % of {} samples (T = {}, top-p {}, mean NFE {:.1}) labelled with confidence ≥ {CONFIDENT}; mean confidence {:.3} (held-out: {:.3})",
        report.model,
        100.0 * report.figures.samples.confident,
        args.samples,
        report.steps,
        report.top_p,
        report.mean_nfe,
        report.figures.samples.mean_confidence,
        report.held_out.mean_confidence
    )?;
    prime_native::say!(
        "class histogram's distance from uniform (total variation): samples {:.3}, held-out {:.3} · feature distance (Fréchet, {} images a set): samples to held-out {:.2}, held-out to held-out {:.2}, ratio {:.2}",
        report.figures.samples.class_tv_from_uniform,
        report.held_out.class_tv_from_uniform,
        report.figures.features.images_per_set,
        report.figures.features.samples_to_held_out,
        report.figures.features.held_out_to_held_out,
        report.figures.features.ratio
    )?;
    if let (Some(agreement), Some(class)) = (report.figures.class_agreement, &report.class) {
        prime_native::say!(
            "class {class}: the classifier names the class a sample was drawn for in {:.1} % of samples",
            100.0 * agreement
        )?;
    }
    prime_native::say!("{:<12} {:>8} {:>8}", "class", "samples", "data")?;
    for c in 0..CLASSES {
        prime_native::say!(
            "{:<12} {:>7.1}% {:>7.1}%",
            CLASS_NAMES[c],
            100.0 * report.figures.samples.classes[c],
            100.0 * counts[c]
        )?;
    }
    Ok(())
}

/// The class each of the first `n` samples of `request` is drawn for.
pub fn asked_classes(model: &Model, request: &GenerationRequest, n: usize) -> Result<Vec<Option<u32>>> {
    (0..n).map(|i| Ok(request.class_of(model, i)?)).collect()
}

/// The Fréchet distance between Gaussians fitted to two sets of feature vectors:
/// `|μa − μb|² + tr Σa + tr Σb − 2 tr (Σa^½ Σb Σa^½)^½`, the last trace being the sum of the
/// singular values of `Σa^½ Σb^½`.
fn frechet(a: &[Vec<f32>], b: &[Vec<f32>]) -> Result<f64> {
    let (mean_a, cov_a) = moments(a)?;
    let (mean_b, cov_b) = moments(b)?;
    let d = mean_a.len();
    let device = burn::tensor::Device::flex();
    let matrix = |m: &[f64]| {
        burn::tensor::Tensor::<2>::from_data(
            burn::tensor::TensorData::new(m.iter().map(|&v| v as f32).collect::<Vec<f32>>(), [d, d]),
            &device,
        )
    };
    let root = |m: &[f64]| {
        // A covariance is symmetric positive semi-definite: its SVD is its eigendecomposition.
        let (u, s, _) = burn::linalg::svd::<2, 1>(matrix(m), SVD_SWEEPS);
        u.clone().mul(s.clamp_min(0.0).sqrt().unsqueeze_dim(0)).matmul(u.transpose())
    };
    let (_, singular, _) = burn::linalg::svd::<2, 1>(root(&cov_a).matmul(root(&cov_b)), SVD_SWEEPS);
    let cross: f64 = prime_core::readback::read_f32(singular, "singular values")?.iter().map(|&s| f64::from(s)).sum();
    let means: f64 = mean_a.iter().zip(&mean_b).map(|(x, y)| (x - y).powi(2)).sum();
    let trace = |c: &[f64]| (0..d).map(|i| c[i * d + i]).sum::<f64>();
    Ok(means + trace(&cov_a) + trace(&cov_b) - 2.0 * cross)
}

/// Jacobi sweeps of the SVDs (their off-diagonal mass falls far below f32 precision by then).
const SVD_SWEEPS: usize = 30;

/// The mean and the (unbiased) covariance, row-major d × d, of feature vectors of equal length.
fn moments(rows: &[Vec<f32>]) -> Result<(Vec<f64>, Vec<f64>)> {
    let d = rows.first().map_or(0, Vec::len);
    ensure!(rows.len() >= 2 && d > 0 && rows.iter().all(|r| r.len() == d), "need 2 or more feature vectors");
    let n = rows.len() as f64;
    let mut mean = vec![0.0f64; d];
    for r in rows {
        mean.iter_mut().zip(r).for_each(|(m, &v)| *m += f64::from(v) / n);
    }
    let mut cov = vec![0.0f64; d * d];
    for r in rows {
        let c: Vec<f64> = r.iter().zip(&mean).map(|(&v, m)| f64::from(v) - m).collect();
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] += c[i] * c[j] / (n - 1.0);
            }
        }
    }
    Ok((mean, cov))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points drawn around a mean, from a fixed counter stream.
    fn cloud(shift: f32, n: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
        let rng = prime_core::rng::CounterRng::new(seed);
        (0..n)
            .map(|i| {
                (0..d)
                    .map(|j| shift + 2.0 * rng.uniform(prime_core::rng::Stream::Init, 5, i as u32, j as u32) - 1.0)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn class_histograms_are_measured_against_uniform() {
        let even = Labelling::of((0..50).map(|i| (i % CLASSES, 0.95)));
        assert!(even.class_tv_from_uniform.abs() < 1e-12 && even.confident == 1.0);
        // All in one class: 0.9 of the mass sits where uniform puts 0.1.
        let one = Labelling::of((0..50).map(|_| (3, 0.5)));
        assert!((one.class_tv_from_uniform - 0.9).abs() < 1e-12 && one.confident == 0.0);
    }

    #[test]
    fn frechet_distance_is_zero_for_a_set_and_grows_with_a_shift() {
        let a = cloud(0.0, 200, 6, 1);
        assert!(frechet(&a, &a).unwrap().abs() < 1e-3, "{}", frechet(&a, &a).unwrap());
        // A shift by 1 in each of 6 features adds |Δμ|² = 6 to what two clouds differ by.
        let (same, shifted) =
            (frechet(&a, &cloud(0.0, 200, 6, 2)).unwrap(), frechet(&a, &cloud(1.0, 200, 6, 2)).unwrap());
        assert!(same < 0.2, "{same}");
        assert!((shifted - same - 6.0).abs() < 0.5, "{shifted} vs {same}");
        // Doubled features: Σ' = 4Σ, so the trace term is tr Σ + 4 tr Σ − 2·2 tr Σ = tr Σ (the
        // means, near 0, barely differ).
        let wide: Vec<Vec<f32>> = a.iter().map(|r| r.iter().map(|v| 2.0 * v).collect()).collect();
        let cov = moments(&a).unwrap().1;
        let want: f64 = (0..6).map(|i| cov[i * 6 + i]).sum();
        let got = frechet(&a, &wide).unwrap();
        assert!((got - want).abs() < 0.05 * want, "{got} vs {want}");
    }
}
