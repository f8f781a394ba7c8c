//! `--model` handling shared by the commands that load a model folder.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use clap::Args;
use prime_core::Model;

/// Which model to load.
#[derive(Args, Debug, Clone)]
pub struct ModelArg {
    /// Model folder (config.json, model.safetensors, optional tokenizer.json).
    #[arg(long)]
    model: PathBuf,
}

impl ModelArg {
    /// Loads the model onto `device`.
    pub fn load(&self, device: &Device) -> Result<Model> {
        Ok(Model::load_dir(&self.model, device)?)
    }

    /// How the model is named in reports.
    pub fn describe(&self) -> String {
        self.model.display().to_string()
    }
}
