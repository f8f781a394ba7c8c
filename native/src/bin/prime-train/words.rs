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

use std::ops::ControlFlow;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use prime_core::sampler::run_together;
use prime_core::text::TextCodec;
use prime_core::{GenerationRequest, Model, Outcome};
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
    samples: usize,
    /// Sequences per network call (the samples are the same at any batch size).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[command(flatten)]
    reference: TextReferenceArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// What a text model's samples are measured against (`words`, and `sweep` for text models).
#[derive(Debug, Args)]
pub struct TextReferenceArgs {
    /// Text models: the word list, one word per line.
    #[arg(long, default_value = "/usr/share/dict/words")]
    dict: PathBuf,
    /// Text models: the corpus folder with `train.txt` and `valid.txt` for the word-pair
    /// figures (default: `data/austen` where it exists).
    #[arg(long)]
    corpus: Option<PathBuf>,
}

impl TextReferenceArgs {
    /// The reference for `model`, with at least `samples` real held-out windows.
    pub fn judge(&self, model: &Model, samples: usize) -> Result<TextJudge> {
        TextJudge::new(model, &self.dict, self.corpus.as_deref(), samples)
    }
}

/// The measured figures.
#[derive(Debug, Serialize)]
struct WordsReport {
    model: String,
    samples: usize,
    steps: usize,
    top_p: f32,
    #[serde(flatten)]
    text: TextFigures,
    mean_nfe: f64,
    mean_idle_steps: f64,
    first_sample: String,
}

/// What a set of text samples is measured by: words in the dictionary, and, with a corpus,
/// word pairs seen in its training text beside real held-out text.
#[derive(Debug, Clone, Serialize)]
pub struct TextFigures {
    /// Words (letter runs) in the samples.
    pub words: usize,
    /// Of them, in the word list.
    pub dictionary_words: usize,
    /// dictionary_words / words.
    pub fraction: f64,
    /// The word-pair figures, where a corpus was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pairs: Option<PairReport>,
}

/// Adjacent word pairs of the samples and of real held-out text that occur in the training text.
#[derive(Debug, Clone, Serialize)]
pub struct PairReport {
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
    pub ratio: f64,
}

/// Runs `prime-train words`.
pub fn run(args: &WordsArgs) -> Result<()> {
    ensure!((1..=MAX_SAMPLES).contains(&args.samples), "--samples must be between 1 and {MAX_SAMPLES}");
    ensure!((1..=MAX_SAMPLES).contains(&args.batch), "--batch must be between 1 and {MAX_SAMPLES}");
    let device = args.device.open()?;
    let model = args.model.load(&device)?;
    let judge = args.reference.judge(&model, args.samples)?;
    let request = args.sampling.request(model.config());
    let outcomes = draw(&model, &request, args.samples, args.batch)?;
    let samples = judge.decode(&outcomes)?;
    let report = WordsReport {
        model: args.model.describe(),
        samples: args.samples,
        steps: request.settings.steps,
        top_p: request.settings.top_p,
        text: judge.measure(&samples)?,
        mean_nfe: mean(outcomes.iter().map(|o| o.nfe)),
        mean_idle_steps: mean(outcomes.iter().map(|o| o.idle_steps)),
        first_sample: samples.first().cloned().unwrap_or_default(),
    };
    if args.json {
        prime_native::say!("{}", serde_json::to_string(&report)?)?;
    } else {
        let text = &report.text;
        prime_native::say!(
            "{}: {}/{} words in the dictionary ({:.1} %) over {} samples of T = {}, top-p {} · mean NFE {:.1} · mean idle steps {:.1}",
            report.model,
            text.dictionary_words,
            text.words,
            100.0 * text.fraction,
            args.samples,
            report.steps,
            report.top_p,
            report.mean_nfe,
            report.mean_idle_steps,
        )?;
        if let Some(p) = &text.pairs {
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

/// Most samples one measurement draws.
pub const MAX_SAMPLES: usize = 1 << 16;

/// The mean of counts (0 for none).
pub fn mean(values: impl ExactSizeIterator<Item = usize>) -> f64 {
    let n = values.len().max(1) as f64;
    values.sum::<usize>() as f64 / n
}

/// The word list, the model's tokenizer and length, and (with a corpus) the training text's
/// word pairs and the real held-out reference, read once for any number of sample sets.
pub struct TextJudge {
    dict: HashSet<String>,
    text: TextCodec,
    pairs: Option<PairReference>,
}

/// A corpus's training pairs and its held-out windows' figures.
struct PairReference {
    corpus: String,
    known: HashSet<(String, String)>,
    windows: usize,
    pairs: usize,
    found: usize,
    dictionary_fraction: f64,
}

impl TextJudge {
    /// Reads the word list `dict` and the corpus folder (`corpus`, else `data/austen` where it
    /// exists) for `model`, with at least `samples` real held-out windows.
    fn new(model: &Model, dict: &Path, corpus: Option<&Path>, samples: usize) -> Result<Self> {
        let dict = load_dictionary(dict)?;
        let Some(text) = model.text().cloned() else { bail!("the model folder has no tokenizer.json") };
        let pairs = match corpus_folder(corpus)? {
            Some(dir) => Some(PairReference::read(&dir, &text, model.config().length, &dict, samples)?),
            None => None,
        };
        Ok(Self { dict, text, pairs })
    }

    /// The texts of generated samples.
    pub fn decode(&self, outcomes: &[Outcome]) -> Result<Vec<String>> {
        outcomes.iter().map(|o| Ok(self.text.decode(&o.tokens)?)).collect()
    }

    /// The figures of `samples`.
    pub fn measure(&self, samples: &[String]) -> Result<TextFigures> {
        let (mut words, mut known) = (0, 0);
        for sample in samples {
            let (w, k) = count_words(&words_of(sample), &self.dict);
            (words, known) = (words + w, known + k);
        }
        ensure!(words > 0, "the samples contain no words");
        let pairs = self.pairs.as_ref().map(|r| r.report(samples)).transpose()?;
        Ok(TextFigures { words, dictionary_words: known, fraction: known as f64 / words as f64, pairs })
    }
}

/// Draws `n` samples of `request` (seeds seed … seed + n − 1), `batch` per network call.
pub fn draw(model: &Model, request: &GenerationRequest, n: usize, batch: usize) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(n);
    for first in (0..n).step_by(batch.max(1)) {
        let mut runs = request.start_seeds(model, first..first.saturating_add(batch.max(1)).min(n))?;
        let done = run_together(&mut runs, model, |_, _, _| ControlFlow::Continue(()))?;
        outcomes.extend(done.context("sampling stopped early")?);
    }
    Ok(outcomes)
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

impl PairReference {
    /// `dir`'s training pairs, and the figures of held-out windows of `length` tokens
    /// (encoded and decoded with the model's tokenizer): at least [`MIN_REAL_WINDOWS`], and at
    /// least `samples`.
    fn read(dir: &Path, text: &TextCodec, length: usize, dict: &HashSet<String>, samples: usize) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
        };
        let train = words_of(&read("train.txt")?);
        let known: HashSet<(String, String)> = train.windows(2).map(|p| (p[0].clone(), p[1].clone())).collect();
        let held_out = text.encode(&read("valid.txt")?)?;
        let available = held_out.len() / length.max(1);
        ensure!(available > 0, "{}/valid.txt is shorter than one window of {length} tokens", dir.display());
        let windows = available.min(MIN_REAL_WINDOWS.max(samples));
        let (mut pairs, mut found, mut words, mut in_dict) = (0, 0, 0, 0);
        for w in 0..windows {
            // Evenly spaced over the held-out text.
            let start = w * available / windows * length;
            let window = words_of(&text.decode(&held_out[start..start + length])?);
            let inner = window.get(1..window.len().saturating_sub(1)).unwrap_or(&[]);
            let (n, f) = count_pairs(inner, &known);
            let (w, k) = count_words(inner, dict);
            (pairs, found, words, in_dict) = (pairs + n, found + f, words + w, in_dict + k);
        }
        ensure!(pairs > 0, "too few words in {}/valid.txt for word pairs", dir.display());
        Ok(Self {
            corpus: dir.display().to_string(),
            known,
            windows,
            pairs,
            found,
            dictionary_fraction: in_dict as f64 / words.max(1) as f64,
        })
    }

    /// The word-pair figures of `samples` beside the real held-out text's.
    fn report(&self, samples: &[String]) -> Result<PairReport> {
        let (mut sample_pairs, mut sample_found) = (0, 0);
        for sample in samples {
            let (n, found) = count_pairs(&words_of(sample), &self.known);
            (sample_pairs, sample_found) = (sample_pairs + n, sample_found + found);
        }
        ensure!(sample_pairs > 0, "too few words in the samples for word pairs");
        let (sample_share, real_share) =
            (sample_found as f64 / sample_pairs as f64, self.found as f64 / self.pairs as f64);
        Ok(PairReport {
            corpus: self.corpus.clone(),
            sample_pairs,
            sample_pairs_in_training: sample_found,
            sample_share,
            real_windows: self.windows,
            real_pairs: self.pairs,
            real_share,
            real_dictionary_fraction: self.dictionary_fraction,
            ratio: sample_share / real_share.max(f64::MIN_POSITIVE),
        })
    }
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
