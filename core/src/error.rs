//! The one error type of `prime-core`.

use std::path::PathBuf;

/// Everything that can go wrong in the core: bad model folders, bad inputs, failing devices.
///
/// Every message is one line that names the problem, so a CLI can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum PrimeError {
    /// A file could not be read or written. (The OS error is part of the message, not a
    /// `source`, so that printing the error chain does not repeat it.)
    #[error("cannot access {path}: {error}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        error: std::io::Error,
    },
    /// An output cannot be written where asked: a non-empty folder without `--force`, a
    /// symbolic link or a file where a folder is wanted.
    #[error("{path}: {reason}")]
    Output {
        /// The output path.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A model folder is not a folder, or a file in it fails; says which folder. (The inner
    /// error is part of the message, not a `source`, for the same reason as `Io`.)
    #[error("model folder {dir}: {error}")]
    Folder {
        /// The model folder.
        dir: PathBuf,
        /// What is wrong in it.
        error: Box<PrimeError>,
    },
    /// `config.json` is not valid JSON, misses a field, or describes an impossible model.
    #[error("config.json: {0}")]
    Config(String),
    /// The weight file is not a readable safetensors file.
    #[error("model.safetensors: {0}")]
    Weights(String),
    /// A training checkpoint (`.ckpt`) cannot be converted; the caller names the file.
    #[error("{0}")]
    Checkpoint(String),
    /// A tensor the network needs is absent from the weight file.
    #[error("model.safetensors lacks tensor `{0}`")]
    MissingTensor(String),
    /// A tensor has a shape other than the config implies.
    #[error("model.safetensors: tensor `{name}` has shape {found:?}, config.json implies {expected:?}")]
    TensorShape {
        /// Tensor name (without any `backbone.` prefix).
        name: String,
        /// Shape found in the file.
        found: Vec<usize>,
        /// Shape the config implies.
        expected: Vec<usize>,
    },
    /// An input (ids, prompt, settings) is invalid.
    #[error("invalid input: {0}")]
    Input(String),
    /// A digit string decodes to an id outside the vocabulary.
    #[error("digits {digits:?} decode to token {token}, outside the vocabulary of {vocab} tokens")]
    InvalidCode {
        /// The offending digits, most significant first.
        digits: Vec<u32>,
        /// The decoded id.
        token: u64,
        /// The vocabulary size V.
        vocab: u32,
    },
    /// A position has no vocabulary token consistent with its revealed digits.
    #[error("position {position} has no token consistent with its revealed digits {digits:?}")]
    NoConsistentToken {
        /// Token position.
        position: usize,
        /// Its sub-token state (mask id where masked).
        digits: Vec<u32>,
    },
    /// The network produced a non-finite value where a finite one is needed.
    #[error("network output at position {position} is not finite")]
    NonFinite {
        /// Token position.
        position: usize,
    },
    /// The tokenizer failed.
    #[error("tokenizer.json: {0}")]
    Tokenizer(String),
    /// The compute device failed (initialisation, execution or readback).
    #[error("device: {0}")]
    Device(String),
    /// Training diverged or its state is unusable.
    #[error("training: {0}")]
    Training(String),
}

impl PrimeError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, error: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), error }
    }

    /// The error itself, without the model folder it happened in.
    pub fn root(&self) -> &PrimeError {
        match self {
            Self::Folder { error, .. } => error.root(),
            other => other,
        }
    }
}

/// Result alias of `prime-core`.
pub type Result<T> = std::result::Result<T, PrimeError>;
