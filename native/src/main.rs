//! `prime`: generate text with an MDM-Prime model, check parity, benchmark, inspect devices.

mod bench;
mod corpus;
mod device_args;
mod forward;
mod generate;
mod info;
mod model_arg;
mod sampler_args;
mod tokenizer;
mod train;
mod words;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// MDM-Prime runtime: masked discrete diffusion with partial (sub-token) masking.
#[derive(Parser, Debug)]
#[command(name = "prime", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a sequence with the ancestral sampler.
    Generate(generate::GenerateArgs),
    /// Run the network on `input_ids` from a safetensors file and write `logits`.
    Forward(forward::ForwardArgs),
    /// Time network calls and sampler steps; report NFE and idle steps.
    Bench(bench::BenchArgs),
    /// List GPU adapters and the backend that would be chosen.
    Info(info::InfoArgs),
    /// Download Jane Austen's novels and write clean training/validation text.
    Corpus(corpus::CorpusArgs),
    /// Train the byte-level BPE tokenizer of the demo models.
    Tokenizer(tokenizer::TokenizerArgs),
    /// Train a model (MDM-Prime or its MDLM twin) and export a model folder.
    Train(train::TrainArgs),
    /// Measure the share of dictionary words in a model's samples.
    Words(words::WordsArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PRIME_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Forward(args) => forward::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Info(args) => info::run(args),
        Command::Corpus(args) => corpus::run(&args),
        Command::Tokenizer(args) => tokenizer::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Words(args) => words::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
