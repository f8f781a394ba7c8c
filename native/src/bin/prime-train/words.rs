//! `prime-train words`: how much of a model's output is dictionary English, and how much of it
//! strings words together the way the training text does.
//!
//! Generates unconditional samples, splits them into words (letter runs, inner apostrophes
//! kept) and counts those found in a word list such as Debian's `wamerican`. With a corpus
//! folder (from `prime-train corpus`), it also counts the samples' adjacent word pairs that occur
//! in `train.txt`, and the same share for real held-out windows of `valid.txt` of the model's
//! length in tokens: the reference a model's share is set beside.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use prime_core::{GenerationRequest, Model};
use serde::Serialize;

use prime_native::device_args::DeviceArgs;
use prime_native::model_arg::ModelArg;
use prime_native::sampling_args::SamplingArgs;

/// Arguments of `prime-train words`.
#[derive(Debug, Args)]
#[command(mut_arg("steps", |a| a.default_value("128")))]
pub struct WordsArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Samples to generate (seeds --seed … --seed + n − 1).
    #[arg(long, default_value_t = 8)]
    samples: u64,
    /// Word list, one word per line.
    #[arg(long, default_value = "/usr/share/dict/words")]
    dict: PathBuf,
    /// Corpus folder with `train.txt` and `valid.txt` for the word-pair figures (default:
    /// `data/austen` where it exists).
    #[arg(long)]
    corpus: Option<PathBuf>,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// The measured figures.
#[derive(Debug, Serialize)]
struct WordsReport {
    model: String,
    samples: u64,
    steps: usize,
    top_p: f32,
    words: usize,
    dictionary_words: usize,
    fraction: f64,
    mean_nfe: f64,
    mean_idle_steps: f64,
    /// The word-pair figures, where a corpus was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pairs: Option<PairReport>,
    first_sample: String,
}

/// Adjacent word pairs of the samples and of real held-out text that occur in the training text.
#[derive(Debug, Serialize)]
struct PairReport {
    corpus: String,
    /// The samples' pairs, and how many occur in `train.txt`.
    sample_pairs: usize,
    sample_pairs_in_training: usize,
    sample_share: f64,
    /// Held-out windows of `valid.txt` (the model's length in tokens, the first and last word
    /// of each dropped as possibly cut), their pairs, and the share in `train.txt`.
    real_windows: usize,
    real_pairs: usize,
    real_share: f64,
    /// The share of dictionary words in those windows.
    real_dictionary_fraction: f64,
    /// sample_share / real_share.
    ratio: f64,
}

/// Runs `prime-train words`.
pub fn run(args: &WordsArgs) -> Result<()> {
    ensure!(args.samples > 0, "--samples must be positive");
    let dict = load_dictionary(&args.dict)?;
    let device = args.device.open()?;
    let model = args.model.load(&device)?;
    let Some(text) = model.text().cloned() else { bail!("the model folder has no tokenizer.json") };
    let (mut words, mut known, mut nfe, mut idle) = (0, 0, 0, 0);
    let mut first_sample = String::new();
    let mut samples = Vec::new();
    let request = args.sampling.request(model.config());
    for i in 0..args.samples {
        let outcome = sample(&model, &request, i)?;
        let sample = text.decode(&outcome.0)?;
        let (w, k) = count_words(&words_of(&sample), &dict);
        (words, known, nfe, idle) = (words + w, known + k, nfe + outcome.1, idle + outcome.2);
        if i == 0 {
            first_sample = sample.clone();
        }
        samples.push(sample);
    }
    ensure!(words > 0, "the samples contain no words");
    let pairs = match corpus_folder(args.corpus.as_deref())? {
        Some(dir) => Some(pair_report(&dir, &samples, &text, model.config().length, &dict)?),
        None => None,
    };
    let report = WordsReport {
        model: args.model.describe(),
        samples: args.samples,
        steps: request.settings.steps,
        top_p: request.settings.top_p,
        words,
        dictionary_words: known,
        fraction: known as f64 / words as f64,
        mean_nfe: nfe as f64 / args.samples as f64,
        mean_idle_steps: idle as f64 / args.samples as f64,
        pairs,
        first_sample,
    };
    if args.json {
        prime_native::say!("{}", serde_json::to_string(&report)?)?;
    } else {
        prime_native::say!(
            "{}: {known}/{words} words in the dictionary ({:.1} %) over {} samples of T = {}, top-p {} · mean NFE {:.1} · mean idle steps {:.1}",
            report.model,
            100.0 * report.fraction,
            args.samples,
            report.steps,
            report.top_p,
            report.mean_nfe,
            report.mean_idle_steps,
        )?;
        if let Some(p) = &report.pairs {
            prime_native::say!(
                "word pairs found in {}/train.txt: samples {:.1} % of {}, real held-out text {:.1} % of {} ({} windows, {:.1} % dictionary words) · ratio {:.2}",
                p.corpus,
                100.0 * p.sample_share,
                p.sample_pairs,
                100.0 * p.real_share,
                p.real_pairs,
                p.real_windows,
                100.0 * p.real_dictionary_fraction,
                p.ratio
            )?;
        }
        prime_native::say!("\n{}", report.first_sample)?;
    }
    Ok(())
}

/// Sample `i` of `request` (seed + i): (tokens, NFE, idle steps).
fn sample(model: &Model, request: &GenerationRequest, i: u64) -> Result<(Vec<u32>, usize, usize)> {
    let i = usize::try_from(i)?;
    let mut run = request.start_offset(model, i)?;
    let outcome = run.run(model, |_| std::ops::ControlFlow::Continue(()))?.context("sampling stopped early")?;
    Ok((outcome.tokens, outcome.nfe, outcome.idle_steps))
}

/// The lower-cased entries of a word list.
fn load_dictionary(path: &Path) -> Result<HashSet<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the word list {} (Debian: apt install wamerican)", path.display()))?;
    let dict: HashSet<String> = text.lines().map(|l| l.trim().to_lowercase()).filter(|l| !l.is_empty()).collect();
    ensure!(!dict.is_empty(), "the word list {} is empty", path.display());
    Ok(dict)
}

/// The words of `text`, lower-cased: runs of letters with inner apostrophes (’ as ').
fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphabetic() || c == '\'' || c == '’'))
        .map(|raw| raw.trim_matches(|c| c == '\'' || c == '’').replace('’', "'").to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// (words, words in `dict`); a possessive `'s` is accepted when the stem is a word.
fn count_words(words: &[String], dict: &HashSet<String>) -> (usize, usize) {
    let known = words
        .iter()
        .filter(|w| dict.contains(*w) || w.strip_suffix("'s").is_some_and(|stem| dict.contains(stem)))
        .count();
    (words.len(), known)
}

/// (pairs, pairs in `known`) of adjacent words.
fn count_pairs(words: &[String], known: &HashSet<(String, String)>) -> (usize, usize) {
    let found = words.windows(2).filter(|p| known.contains(&(p[0].clone(), p[1].clone()))).count();
    (words.len().saturating_sub(1), found)
}

/// The corpus folder for the pair figures: the one given (which must hold both files), else
/// `data/austen` where it holds them.
fn corpus_folder(given: Option<&Path>) -> Result<Option<PathBuf>> {
    let complete = |dir: &Path| ["train.txt", "valid.txt"].iter().all(|f| dir.join(f).is_file());
    match given {
        Some(dir) => {
            ensure!(complete(dir), "{} has no train.txt and valid.txt (run `prime-train corpus`)", dir.display());
            Ok(Some(dir.to_path_buf()))
        }
        None => Ok(Some(PathBuf::from("data/austen")).filter(|d| complete(d))),
    }
}

/// Real held-out windows per sample at least, so the reference share is not noisier than the
/// samples' own.
const MIN_REAL_WINDOWS: usize = 64;

/// The word-pair figures of `samples` against `dir`'s training text, and the same for
/// held-out windows of `length` tokens (encoded and decoded with the model's tokenizer).
fn pair_report(
    dir: &Path,
    samples: &[String],
    text: &prime_core::text::TextCodec,
    length: usize,
    dict: &HashSet<String>,
) -> Result<PairReport> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let train = words_of(&read("train.txt")?);
    let known: HashSet<(String, String)> = train.windows(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    let (mut sample_pairs, mut sample_found) = (0, 0);
    for sample in samples {
        let (n, found) = count_pairs(&words_of(sample), &known);
        (sample_pairs, sample_found) = (sample_pairs + n, sample_found + found);
    }
    let held_out = text.encode(&read("valid.txt")?)?;
    let available = held_out.len() / length.max(1);
    ensure!(available > 0, "{}/valid.txt is shorter than one window of {length} tokens", dir.display());
    let windows = available.min(MIN_REAL_WINDOWS.max(samples.len()));
    let (mut real_pairs, mut real_found, mut real_words, mut real_known) = (0, 0, 0, 0);
    for w in 0..windows {
        // Evenly spaced over the held-out text.
        let start = w * available / windows * length;
        let words = words_of(&text.decode(&held_out[start..start + length])?);
        let inner = words.get(1..words.len().saturating_sub(1)).unwrap_or(&[]);
        let (n, found) = count_pairs(inner, &known);
        let (w, k) = count_words(inner, dict);
        (real_pairs, real_found, real_words, real_known) =
            (real_pairs + n, real_found + found, real_words + w, real_known + k);
    }
    ensure!(sample_pairs > 0 && real_pairs > 0, "too few words for word pairs");
    let (sample_share, real_share) = (sample_found as f64 / sample_pairs as f64, real_found as f64 / real_pairs as f64);
    Ok(PairReport {
        corpus: dir.display().to_string(),
        sample_pairs,
        sample_pairs_in_training: sample_found,
        sample_share,
        real_windows: windows,
        real_pairs,
        real_share,
        real_dictionary_fraction: real_known as f64 / real_words.max(1) as f64,
        ratio: sample_share / real_share.max(f64::MIN_POSITIVE),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words_possessives_and_non_words() {
        let dict: HashSet<String> = ["it", "is", "a", "truth", "emma", "mr"].iter().map(|s| s.to_string()).collect();
        assert_eq!(count_words(&words_of("It is a truth, Mr. Emma’s 'truth' xqzt-ish 1813!"), &dict), (9, 7));
        assert_eq!(count_words(&words_of("  ... 42 "), &dict), (0, 0));
    }

    #[test]
    fn counts_adjacent_word_pairs_seen_in_training() {
        let train = words_of("It is a truth universally acknowledged.");
        let known: HashSet<(String, String)> = train.windows(2).map(|p| (p[0].clone(), p[1].clone())).collect();
        // (it is) (is a) (a truth) are known; (truth truth) and (truth it) are not.
        assert_eq!(count_pairs(&words_of("It is a truth truth, it"), &known), (5, 3));
        assert_eq!(count_pairs(&words_of("word"), &known), (0, 0));
    }
}
