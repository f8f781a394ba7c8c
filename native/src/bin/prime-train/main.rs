//! `prime-train`: the demo-model pipeline — corpus, tokenizer, training, and the dictionary-word
//! measure of a model's samples. The runtime itself is `prime`.

mod corpus;
mod deb;
mod images;
mod plot;
mod sweep;
mod tokenizer;
mod train;
mod train_bench;
mod words;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Build the MDM-Prime demo models: corpus, tokenizer, training, evaluation.
#[derive(Parser, Debug)]
#[command(name = "prime-train", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Download Jane Austen's novels and write clean training/validation text.
    Corpus(corpus::CorpusArgs),
    /// Read Fashion-MNIST (Debian's dataset-fashion-mnist) into training/held-out image splits.
    Images(images::ImagesArgs),
    /// Label an image model's samples with a classifier trained on the training split.
    Judge(images::judge::JudgeArgs),
    /// Train the byte-level BPE tokenizer of the demo models.
    Tokenizer(tokenizer::TokenizerArgs),
    /// Train a model (MDM-Prime or its MDLM twin) and export a model folder.
    Train(train::TrainArgs),
    /// Write the EMA weights of a run's last checkpoint as a model folder (while it trains).
    Snapshot(train::SnapshotArgs),
    /// Measure the share of dictionary words in a model's samples, and of word pairs seen in
    /// the training text (beside real held-out text).
    Words(words::WordsArgs),
    /// Time training steps at a given shape (ms/step, tokens/s, cores used, phases).
    Bench(train_bench::TrainBenchArgs),
    /// NFE against quality over sampler settings (steps, modes, top-p): the words measures for
    /// a text model, the judge's for an image model.
    Sweep(sweep::SweepArgs),
}

fn main() -> ExitCode {
    prime_native::init();
    let cli = Cli::parse();
    prime_native::exit(match cli.command {
        Command::Corpus(args) => corpus::run(&args),
        Command::Images(args) => images::run(&args),
        Command::Judge(args) => images::judge::run(&args),
        Command::Tokenizer(args) => tokenizer::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Snapshot(args) => train::snapshot(&args),
        Command::Words(args) => words::run(&args),
        Command::Bench(args) => train_bench::run(&args),
        Command::Sweep(args) => sweep::run(&args),
    })
}
