//! `config.json` of a model folder: the network's hyper-parameters.

use serde::{Deserialize, Serialize};

use crate::codec::SubTokenCodec;
use crate::error::{PrimeError, Result};

/// Which official network class the folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum ModelClass {
    /// MDM-Prime: sub-token embedding concatenated per token, output over V tokens.
    PerceiverDIT,
    /// MDLM baseline (ℓ = 1): token embedding of V+1 rows, output over V+1 classes.
    DIT,
}

/// The hyper-parameters read from `config.json`; unknown keys are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ModelConfig {
    /// Network class.
    pub model_class: ModelClass,
    /// Vocabulary size V (without the mask).
    pub vocab_size: u32,
    /// Sub-tokens per token ℓ (1 for DIT).
    pub subtokens: usize,
    /// Base b; `null` or absent means the smallest b with b^ℓ ≥ V (DIT: V).
    #[serde(default)]
    pub base: Option<u32>,
    /// Hidden size D.
    pub hidden_size: usize,
    /// Number of DDiT blocks.
    pub n_blocks: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Conditioning width.
    pub cond_dim: usize,
    /// Sequence length L in tokens.
    pub length: usize,
    /// MLP expansion ratio.
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: usize,
    /// Layer-norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// RoPE base (only used to check the stored `inv_freq`).
    #[serde(default = "default_rope_base")]
    pub rope_base: f64,
    /// Width of the sinusoidal time embedding.
    #[serde(default = "default_freq_size")]
    pub frequency_embedding_size: usize,
    /// Whether sampling uses the carry-over consistency filter by default.
    #[serde(default = "default_carry_over")]
    pub carry_over: bool,
}

fn default_mlp_ratio() -> usize {
    4
}
fn default_eps() -> f64 {
    1e-5
}
fn default_rope_base() -> f64 {
    10000.0
}
fn default_freq_size() -> usize {
    256
}
fn default_carry_over() -> bool {
    true
}

impl ModelConfig {
    /// Parses and validates `config.json` text.
    pub fn from_json(text: &str) -> Result<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        let config: Self = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                PrimeError::Config(inner.to_string())
            } else {
                PrimeError::Config(format!("{path}: {inner}"))
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every hyper-parameter for consistency.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(PrimeError::Config(m));
        for (name, v) in [
            ("hidden_size", self.hidden_size),
            ("n_blocks", self.n_blocks),
            ("n_heads", self.n_heads),
            ("cond_dim", self.cond_dim),
            ("length", self.length),
            ("mlp_ratio", self.mlp_ratio),
            ("subtokens", self.subtokens),
        ] {
            if v == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if self.model_class == ModelClass::DIT && self.subtokens != 1 {
            return bad(format!("DIT has one sub-token per token, config says {}", self.subtokens));
        }
        if !self.hidden_size.is_multiple_of(self.n_heads) || !(self.hidden_size / self.n_heads).is_multiple_of(2) {
            return bad(format!(
                "hidden_size {} must split into {} heads of even width",
                self.hidden_size, self.n_heads
            ));
        }
        if !self.hidden_size.is_multiple_of(self.subtokens) {
            return bad(format!("hidden_size {} is not divisible by ℓ = {}", self.hidden_size, self.subtokens));
        }
        if !self.frequency_embedding_size.is_multiple_of(2) {
            return bad("frequency_embedding_size must be even".into());
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return bad(format!("layer_norm_eps {} must be positive", self.layer_norm_eps));
        }
        if self.length > u32::MAX as usize / self.subtokens {
            return bad(format!("length {} is too large", self.length));
        }
        self.codec().map(|_| ()).map_err(|e| PrimeError::Config(e.to_string()))
    }

    /// The sub-token codec: the stated base, or the smallest one (DIT: base V, mask id V).
    pub fn codec(&self) -> Result<SubTokenCodec> {
        match (self.model_class, self.base) {
            (ModelClass::DIT, _) => SubTokenCodec::with_base(self.vocab_size, 1, self.vocab_size),
            (ModelClass::PerceiverDIT, Some(b)) => SubTokenCodec::with_base(self.vocab_size, self.subtokens, b),
            (ModelClass::PerceiverDIT, None) => SubTokenCodec::new(self.vocab_size, self.subtokens),
        }
    }

    /// Rows of the embedding table: b + 1 (DIT: V + 1).
    pub fn embedding_rows(&self) -> Result<usize> {
        Ok(self.codec()?.base() as usize + 1)
    }

    /// Width of one sub-token embedding, D/ℓ.
    pub fn embedding_dim(&self) -> usize {
        self.hidden_size / self.subtokens
    }

    /// Attention head width D/H.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.n_heads
    }

    /// Number of output classes: V (DIT: V + 1, the mask class included).
    pub fn output_width(&self) -> usize {
        match self.model_class {
            ModelClass::PerceiverDIT => self.vocab_size as usize,
            ModelClass::DIT => self.vocab_size as usize + 1,
        }
    }

    /// Sub-tokens per sequence, ℓ·L.
    pub fn sequence_subtokens(&self) -> usize {
        self.length * self.subtokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"model_class":"PerceiverDIT","vocab_size":300,"subtokens":2,"base":18,"hidden_size":64,
        "n_blocks":2,"n_heads":4,"cond_dim":32,"length":16,"extra":"ignored"}"#;

    #[test]
    fn parses_and_ignores_unknown_keys() {
        let c = ModelConfig::from_json(OK).unwrap();
        assert_eq!(c.codec().unwrap().mask_id(), 18);
        assert_eq!(c.output_width(), 300);
    }

    #[test]
    fn rejects_inconsistent_configs() {
        for (from, to) in [
            ("\"base\":18", "\"base\":17"),
            ("\"n_heads\":4", "\"n_heads\":5"),
            ("\"length\":16", "\"length\":0"),
            ("\"subtokens\":2", "\"subtokens\":3"),
            ("PerceiverDIT", "Transformer"),
        ] {
            let text = OK.replace(from, to);
            assert!(ModelConfig::from_json(&text).is_err(), "{to}");
        }
        assert!(ModelConfig::from_json("{").is_err());
        assert!(ModelConfig::from_json(&OK.replace("\"vocab_size\":300,", "")).is_err());
    }
}
