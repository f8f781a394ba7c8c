//! `--model` handling shared by the commands that load a model: a folder, or the demo model
//! built into the binary.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use prime_core::Model;
use prime_core::device::{ComputeDevice, ModelSource};

/// The shipped MDM-Prime demo model (`assets/prime`), embedded so the binary runs anywhere.
const DEMO_CONFIG: &str = include_str!("../../assets/prime/config.json");
const DEMO_WEIGHTS: &[u8] = include_bytes!("../../assets/prime/model.safetensors");
const DEMO_TOKENIZER: &[u8] = include_bytes!("../../assets/prime/tokenizer.json");

/// Which model to load.
#[derive(Args, Debug, Clone)]
pub struct ModelArg {
    /// Model folder (config.json, model.safetensors, optional tokenizer.json); without it, the
    /// built-in demo model (MDM-Prime, ℓ = 2, trained on Jane Austen).
    #[arg(long)]
    model: Option<PathBuf>,
}

impl ModelArg {
    /// Loads the model onto `device` (and checks that it runs there).
    pub fn load(&self, device: &ComputeDevice) -> Result<Model> {
        Ok(match &self.model {
            Some(dir) => device.load(ModelSource::Dir(dir))?,
            None => device.load(ModelSource::Parts {
                config: DEMO_CONFIG,
                weights: DEMO_WEIGHTS,
                tokenizer: Some(DEMO_TOKENIZER),
            })?,
        })
    }

    /// The [`crate::fingerprint`] of the weights file, which tells runs of two models apart.
    pub fn weights_fingerprint(&self) -> Result<String> {
        Ok(crate::fingerprint(&match &self.model {
            Some(dir) => {
                let path = dir.join("model.safetensors");
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?
            }
            None => DEMO_WEIGHTS.to_vec(),
        }))
    }

    /// How the model is named in reports.
    pub fn describe(&self) -> String {
        match &self.model {
            Some(dir) => dir.display().to_string(),
            None => "built-in demo (assets/prime)".to_string(),
        }
    }
}
