//! `prime`: generate text with an MDM-Prime model, convert official checkpoints, check parity,
//! benchmark, inspect devices.

mod bench;
mod convert;
mod forward;
mod generate;
mod info;
mod init;
mod picture;
mod serve;
mod shard;

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
    Generate(Box<generate::GenerateArgs>),
    /// Run the network on `input_ids` from a safetensors file and write `logits`.
    Forward(forward::ForwardArgs),
    /// Convert an official Lightning checkpoint (.ckpt) into a model folder.
    Convert(convert::ConvertArgs),
    /// Write a randomly initialised model folder of an official shape (for benchmarks).
    Init(init::InitArgs),
    /// Time network calls and sampler steps; report NFE, idle steps and bytes read back.
    Bench(bench::BenchArgs),
    /// List GPU adapters and the backend that would be chosen.
    Info(info::InfoArgs),
    /// Serve the model over HTTP: each generation streams its steps as server-sent events.
    Serve(Box<serve::ServeArgs>),
    /// Join the shards of a sharded `generate` (all present and complete) into one file.
    Merge(shard::MergeArgs),
}

fn main() -> ExitCode {
    prime_native::init();
    let cli = Cli::parse();
    prime_native::exit(match cli.command {
        Command::Generate(args) => generate::run(*args),
        Command::Forward(args) => forward::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Init(args) => init::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Info(args) => info::run(args),
        Command::Merge(args) => shard::merge(args),
        Command::Serve(args) => serve::run(*args),
    })
}
