//! `prime-train words`: how much of a model's output is dictionary English.
//!
//! Generates unconditional samples, splits them into words (letter runs, inner apostrophes
//! kept) and counts those found in a word list such as Debian's `wamerican`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use prime_core::{GenerationRequest, Model, SamplerSettings};
use serde::Serialize;

use prime_native::device_args::DeviceArgs;
use prime_native::model_arg::ModelArg;
use prime_native::sampler_args::SamplerArgs;

/// Arguments of `prime-train words`.
#[derive(Debug, Args)]
pub struct WordsArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Samples to generate (seeds 0..n).
    #[arg(long, default_value_t = 8)]
    samples: u64,
    /// Sampling steps T.
    #[arg(long, default_value_t = 128)]
    steps: usize,
    /// Word list, one word per line.
    #[arg(long, default_value = "/usr/share/dict/words")]
    dict: PathBuf,
    #[command(flatten)]
    sampler: SamplerArgs,
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
    words: usize,
    dictionary_words: usize,
    fraction: f64,
    mean_nfe: f64,
    mean_idle_steps: f64,
    first_sample: String,
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
    for seed in 0..args.samples {
        let settings =
            SamplerSettings { steps: args.steps, seed, mode: args.sampler.mode.into(), ..SamplerSettings::default() };
        let outcome = sample(&model, settings, &args.sampler)?;
        let sample = text.decode(&outcome.0)?;
        let (w, k) = count_words(&sample, &dict);
        (words, known, nfe, idle) = (words + w, known + k, nfe + outcome.1, idle + outcome.2);
        if seed == 0 {
            first_sample = sample;
        }
    }
    ensure!(words > 0, "the samples contain no words");
    let report = WordsReport {
        model: args.model.describe(),
        samples: args.samples,
        steps: args.steps,
        words,
        dictionary_words: known,
        fraction: known as f64 / words as f64,
        mean_nfe: nfe as f64 / args.samples as f64,
        mean_idle_steps: idle as f64 / args.samples as f64,
        first_sample,
    };
    if args.json {
        prime_native::say!("{}", serde_json::to_string(&report)?)?;
    } else {
        prime_native::say!(
            "{}: {known}/{words} words in the dictionary ({:.1} %) over {} samples of T = {} · mean NFE {:.1} · mean idle steps {:.1}\n\n{}",
            report.model,
            100.0 * report.fraction,
            args.samples,
            args.steps,
            report.mean_nfe,
            report.mean_idle_steps,
            report.first_sample
        )?;
    }
    Ok(())
}

/// One unconditional sample: (tokens, NFE, idle steps).
fn sample(model: &Model, settings: SamplerSettings, how: &SamplerArgs) -> Result<(Vec<u32>, usize, usize)> {
    let request = GenerationRequest { settings, executor: how.sampler.into(), ..GenerationRequest::default() };
    let mut run = request.start(model)?;
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

/// (words, words in `dict`): a word is a run of letters with inner apostrophes; a possessive
/// `'s` is accepted when the stem is a word.
fn count_words(text: &str, dict: &HashSet<String>) -> (usize, usize) {
    let mut total = 0;
    let mut known = 0;
    for raw in text.split(|c: char| !(c.is_alphabetic() || c == '\'' || c == '’')) {
        let word = raw.trim_matches(|c| c == '\'' || c == '’').replace('’', "'").to_lowercase();
        if word.is_empty() {
            continue;
        }
        total += 1;
        let stem = word.strip_suffix("'s").unwrap_or(&word);
        if dict.contains(&word) || dict.contains(stem) {
            known += 1;
        }
    }
    (total, known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words_possessives_and_non_words() {
        let dict: HashSet<String> = ["it", "is", "a", "truth", "emma", "mr"].iter().map(|s| s.to_string()).collect();
        assert_eq!(count_words("It is a truth, Mr. Emma’s 'truth' xqzt-ish 1813!", &dict), (9, 7));
        assert_eq!(count_words("  ... 42 ", &dict), (0, 0));
    }
}
