//! `prime-native`: the two command-line programs of the runtime, and what they share.
//!
//! - `prime` (`src/main.rs`): the runtime — `generate`, `forward`, `bench`, `info`.
//! - `prime-train` (`src/prime_train.rs`): the demo-model pipeline — `corpus`, `tokenizer`,
//!   `train`, `words`.
//!
//! This library holds their shared command-line pieces: which device, which model, which
//! sampler.

pub mod device_args;
pub mod model_arg;
pub mod sampler_args;

/// Sets up logging (`PRIME_LOG`, warnings by default, to stderr).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PRIME_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
}

/// The exit code of a command's result, printing the error as one line.
pub fn exit(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
