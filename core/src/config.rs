//! `config.json` of a model folder: the network's hyper-parameters.

use serde::{Deserialize, Serialize};

use crate::codec::SubTokenCodec;
use crate::error::{PrimeError, Result};
use crate::image::{GREY_LEVELS, ImageShape};
use crate::recommended::SamplingDefaults;

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
    /// Image models: the pixel grid the sequence is (raster order, one 8-bit grey level per
    /// token). Absent for text models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageShape>,
    /// Whether the network adds a learned absolute position embedding (tensor
    /// `position_embedding`, length × hidden_size) to the token embeddings before the first
    /// block. Not part of the official networks, whose RoPE attention sees only relative
    /// positions: on a fully masked input every position then computes the same output, so
    /// nothing tells a pixel where in the picture it is. The trainer turns it on for image
    /// models; absent means false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub position_embedding: bool,
    /// The classes the model is conditioned on, by name (absent: none). A conditioned network
    /// adds a learned class embedding (tensor `class_embedding`, (classes + 1) × hidden_size)
    /// to every position's token embedding; the last row stands for "no class", which
    /// training shows the network for a share of its samples, so the model also generates
    /// without one. Not part of the official networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// The sampler settings this model is meant to be sampled with, where a request or a flag
    /// leaves them out (absent: the official defaults); checked when the model loads.
    #[serde(default, skip_serializing_if = "SamplingDefaults::is_empty")]
    pub sampling: SamplingDefaults,
}

/// JSON text without a leading UTF-8 byte-order mark (editors on Windows write one).
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Text of a JSON file, without a byte-order mark.
pub(crate) fn json_text(bytes: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(bytes).map(without_bom).map_err(|e| format!("is not UTF-8 text ({e})"))
}

/// The most memory a model may need (weights plus one call's intermediates, estimated by
/// [`ModelConfig::footprint`]): 16 GiB. An official-size model needs about 1 GB.
pub const MAX_MODEL_BYTES: u64 = 16 << 30;

/// The largest vocabulary: 2²⁴ tokens (ids and the mask id stay exact in f32 and fit i32).
pub const MAX_VOCAB: u32 = 1 << 24;

/// The most classes a model may be conditioned on.
pub const MAX_CLASSES: usize = 1 << 16;

/// The most sub-tokens per token: b ≥ 2 and V < 2³² make more digits pointless.
pub const MAX_SUBTOKENS: usize = 32;

/// A model's estimated memory, by part: what every call shares (the weights) and what each
/// sequence of a batch adds (one network call's largest intermediates).
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    /// (what, bytes) of the weights, with the config keys that set each part's size in `what`.
    pub weights: Vec<(String, f64)>,
    /// (what, bytes) of one sequence's intermediates in a network call.
    pub per_sequence: Vec<(String, f64)>,
}

impl Footprint {
    /// Bytes of the weights plus one call on `batch` sequences.
    pub fn total(&self, batch: usize) -> f64 {
        let sum = |parts: &[(String, f64)]| parts.iter().map(|(_, b)| b).sum::<f64>();
        sum(&self.weights) + batch as f64 * sum(&self.per_sequence)
    }

    /// The largest part at `batch` sequences, and its bytes.
    pub fn largest(&self, batch: usize) -> (&str, f64) {
        let weights = self.weights.iter().map(|(w, b)| (w.as_str(), *b));
        let calls = self.per_sequence.iter().map(|(w, b)| (w.as_str(), batch as f64 * b));
        weights.chain(calls).max_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or(("nothing", 0.0))
    }

    /// Fails when the weights and one call on `batch` sequences exceed [`MAX_MODEL_BYTES`].
    pub fn check(&self, batch: usize) -> std::result::Result<(), String> {
        let total = self.total(batch);
        if total <= MAX_MODEL_BYTES as f64 {
            return Ok(());
        }
        let (what, bytes) = self.largest(batch);
        let rows = if batch > 1 { format!(" with {batch} sequences per call") } else { String::new() };
        Err(format!(
            "this model needs an estimated {}{rows}, above the limit of {}; the largest part is {what} ({})",
            human_bytes(total),
            human_bytes(MAX_MODEL_BYTES as f64),
            human_bytes(bytes)
        ))
    }
}

/// Bytes as a short human figure: "1.5 GB", "3.2e19 B".
pub fn human_bytes(bytes: f64) -> String {
    match bytes {
        b if b >= 1e15 => format!("{b:.1e} B"),
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b => format!("{:.0} kB", b / 1e3),
    }
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
        let text = without_bom(text);
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

    /// This configuration as an image model of `shape`: 8-bit grey levels for a vocabulary, a
    /// token per pixel, and the learned position embedding (RoPE alone sees only offsets, so
    /// nothing would tell a pixel where in the picture it is).
    pub fn into_image(self, shape: ImageShape) -> Self {
        Self { vocab_size: GREY_LEVELS, length: shape.pixels(), image: Some(shape), position_embedding: true, ..self }
    }

    /// Checks every hyper-parameter for consistency, and that the model fits
    /// [`MAX_MODEL_BYTES`] (see [`ModelConfig::footprint`]) before anything is allocated.
    /// Messages name the key.
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
            ("frequency_embedding_size", self.frequency_embedding_size),
        ] {
            if v == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if !(2..=MAX_VOCAB).contains(&self.vocab_size) {
            return bad(format!("vocab_size must be between 2 and {MAX_VOCAB}, got {}", self.vocab_size));
        }
        if let Some(base) = self.base.filter(|&b| b > self.vocab_size) {
            return bad(format!(
                "base = {base} is above vocab_size = {} (b = V already codes every token)",
                self.vocab_size
            ));
        }
        if self.model_class == ModelClass::DIT && self.subtokens != 1 {
            return bad(format!("subtokens: DIT has one sub-token per token, config says {}", self.subtokens));
        }
        if self.subtokens > MAX_SUBTOKENS {
            return bad(format!("subtokens = {} is above {MAX_SUBTOKENS}", self.subtokens));
        }
        if let Err(e) = self.codec() {
            let keys = if self.base.is_some() { "base, subtokens and vocab_size" } else { "subtokens and vocab_size" };
            let reason = match e {
                PrimeError::Input(m) => m,
                other => other.to_string(),
            };
            return bad(format!("{keys} do not make a sub-token code: {reason}"));
        }
        if !self.hidden_size.is_multiple_of(self.n_heads) || !(self.hidden_size / self.n_heads).is_multiple_of(2) {
            return bad(format!(
                "hidden_size {} must split into n_heads = {} heads of even width",
                self.hidden_size, self.n_heads
            ));
        }
        if !self.hidden_size.is_multiple_of(self.subtokens) {
            return bad(format!("hidden_size {} is not divisible by subtokens = {}", self.hidden_size, self.subtokens));
        }
        if !self.frequency_embedding_size.is_multiple_of(2) {
            return bad(format!("frequency_embedding_size must be even, got {}", self.frequency_embedding_size));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return bad(format!("layer_norm_eps must be a positive number, got {}", self.layer_norm_eps));
        }
        if !(self.rope_base > 1.0 && self.rope_base.is_finite()) {
            return bad(format!(
                "rope_base must be a finite number above 1 (officially 10000), got {}",
                self.rope_base
            ));
        }
        if self.length as u128 * self.subtokens as u128 >= u128::from(u32::MAX) {
            return bad(format!(
                "length × subtokens = {} × {} sub-tokens do not fit 32-bit positions",
                self.length, self.subtokens
            ));
        }
        if let Some(shape) = self.image {
            shape.check(self.length, self.vocab_size).map_err(PrimeError::Config)?;
        }
        self.check_classes()?;
        self.footprint().check(1).map_err(PrimeError::Config)
    }

    /// Class names must be distinct, non-empty, and not read as a class number.
    fn check_classes(&self) -> Result<()> {
        if self.classes.len() > MAX_CLASSES {
            return Err(PrimeError::Config(format!("classes: {} names, more than {MAX_CLASSES}", self.classes.len())));
        }
        for (i, name) in self.classes.iter().enumerate() {
            if name.trim().is_empty() || name.trim().parse::<u64>().is_ok() {
                return Err(PrimeError::Config(format!(
                    "classes[{i}] = {name:?}: a class name must be a word, not empty or a number"
                )));
            }
            if self.classes[..i].iter().any(|other| other.eq_ignore_ascii_case(name)) {
                return Err(PrimeError::Config(format!("classes[{i}] = {name:?} is named twice")));
            }
        }
        Ok(())
    }

    /// The class `name` stands for: a class name (any letter case) or a class number below
    /// the number of classes. Fails, listing the classes, for anything else or when the
    /// model is not conditioned on classes.
    pub fn class_id(&self, name: &str) -> Result<u32> {
        if self.classes.is_empty() {
            return Err(PrimeError::Input(format!(
                "class {name:?} asked for, but this model is not conditioned on classes"
            )));
        }
        let name = name.trim();
        let found = match name.parse::<usize>() {
            Ok(i) => (i < self.classes.len()).then_some(i),
            Err(_) => self.classes.iter().position(|c| c.eq_ignore_ascii_case(name)),
        };
        found.map(|i| i as u32).ok_or_else(|| {
            PrimeError::Input(format!(
                "no class {name:?}: this model has classes 0–{} ({})",
                self.classes.len() - 1,
                self.classes.join(", ")
            ))
        })
    }

    /// The name of class `id` (`None` for no class, or a class the model does not have).
    pub fn class_name(&self, id: Option<u32>) -> Option<&str> {
        id.and_then(|c| self.classes.get(c as usize)).map(String::as_str)
    }

    /// Rows of the class embedding: one per class and one for "no class" (0 where the model
    /// is not conditioned).
    pub fn class_rows(&self) -> usize {
        if self.classes.is_empty() { 0 } else { self.classes.len() + 1 }
    }

    /// The class-embedding row of "no class" (the last row).
    pub fn no_class(&self) -> u32 {
        self.classes.len() as u32
    }

    /// Estimated memory of the model: its f32 weights and the largest intermediates of one
    /// network call on one sequence. Computed in floating point, so absurd values cannot overflow.
    pub fn footprint(&self) -> Footprint {
        let f = |v: usize| v as f64;
        let (d, c, l) = (f(self.hidden_size), f(self.cond_dim), f(self.length));
        let mlp = f(self.mlp_ratio) * d;
        let out = f(self.vocab_size as usize) + 1.0;
        let block = 4.0 * d * d + 2.0 * mlp * d + 6.0 * d * c + 8.0 * d + mlp;
        let f32s = |what: String, values: f64| (what, 4.0 * values);
        let mut footprint = Footprint {
            weights: vec![
                f32s(
                    format!(
                        "the blocks' weights (n_blocks = {}, hidden_size = {}, mlp_ratio = {})",
                        self.n_blocks, self.hidden_size, self.mlp_ratio
                    ),
                    f(self.n_blocks) * block,
                ),
                f32s(
                    format!(
                        "the sub-token embedding (base + 1 rows × hidden_size / subtokens = {} / {})",
                        self.hidden_size, self.subtokens
                    ),
                    (f(self.base.unwrap_or(self.vocab_size) as usize) + 1.0) * d / f(self.subtokens),
                ),
                f32s(
                    format!("the output head (vocab_size = {} × hidden_size = {})", self.vocab_size, self.hidden_size),
                    out * (d + 1.0) + 2.0 * d * (c + 1.0),
                ),
                f32s(
                    format!(
                        "the time embedding (cond_dim = {} × frequency_embedding_size = {})",
                        self.cond_dim, self.frequency_embedding_size
                    ),
                    c * (f(self.frequency_embedding_size) + c + 2.0),
                ),
            ],
            per_sequence: vec![
                f32s(
                    format!("the attention scores (n_heads = {} × length², length = {})", self.n_heads, self.length),
                    f(self.n_heads) * l * l,
                ),
                f32s(format!("the logits (length = {} × vocab_size = {})", self.length, self.vocab_size), l * out),
                f32s(
                    format!(
                        "the MLP activations (length = {} × mlp_ratio = {} × hidden_size)",
                        self.length, self.mlp_ratio
                    ),
                    l * (mlp + 6.0 * d),
                ),
            ],
        };
        if self.position_embedding {
            let what =
                format!("the position embedding (length = {} × hidden_size = {})", self.length, self.hidden_size);
            footprint.weights.push(f32s(what, l * d));
        }
        if !self.classes.is_empty() {
            let what = format!("the class embedding ({} classes + 1 × hidden_size = {})", self.classes.len(), d);
            footprint.weights.push(f32s(what, f(self.class_rows()) * d));
        }
        footprint
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
    fn an_image_model_names_its_grid() {
        let text = OK
            .replace("300", "256")
            .replace("\"base\":18", "\"base\":16")
            .replace("\"extra\"", "\"image\":{\"width\":4,\"height\":4},\"extra\"");
        let c = ModelConfig::from_json(&text).unwrap();
        assert_eq!(c.image, Some(ImageShape { width: 4, height: 4 }));
        let back = serde_json::to_string(&c).unwrap();
        assert_eq!(ModelConfig::from_json(&back).unwrap(), c);
        // Text models write no `image` key, and models without a position embedding no
        // `position_embedding` key (official configs stay as they were).
        let plain = serde_json::to_string(&ModelConfig::from_json(OK).unwrap()).unwrap();
        assert!(!plain.contains("image") && !plain.contains("position_embedding"), "{plain}");
        let with = ModelConfig::from_json(&text.replace("\"extra\"", "\"position_embedding\":true,\"extra\"")).unwrap();
        assert!(with.position_embedding);
        assert_eq!(ModelConfig::from_json(&serde_json::to_string(&with).unwrap()).unwrap(), with);
        assert!(ModelConfig::from_json(&text.replace("\"height\":4", "\"height\":5")).is_err());
    }

    #[test]
    fn a_text_config_turned_into_an_image_model_is_a_valid_one() {
        let shape = ImageShape { width: 3, height: 5 };
        let c = ModelConfig::from_json(OK).unwrap().into_image(shape);
        assert_eq!((c.vocab_size, c.length, c.image), (GREY_LEVELS, 15, Some(shape)));
        assert!(c.position_embedding, "an image model needs to know where its pixels are");
        c.validate().unwrap();
    }

    #[test]
    fn classes_are_named_or_numbered_and_checked() {
        let text = OK.replace("\"extra\"", "\"classes\":[\"Coat\",\"Bag\"],\"extra\"");
        let c = ModelConfig::from_json(&text).unwrap();
        assert_eq!((c.class_rows(), c.no_class()), (3, 2));
        assert_eq!(c.class_id("bag").unwrap(), 1);
        assert_eq!(c.class_id(" 0 ").unwrap(), 0);
        assert_eq!((c.class_name(Some(1)), c.class_name(Some(2)), c.class_name(None)), (Some("Bag"), None, None));
        let missing = c.class_id("2").unwrap_err().to_string();
        assert!(missing.contains("Coat, Bag"), "{missing}");
        assert!(c.class_id("Shoe").is_err());
        assert_eq!(ModelConfig::from_json(&serde_json::to_string(&c).unwrap()).unwrap(), c);
        let plain = ModelConfig::from_json(OK).unwrap();
        assert_eq!(plain.class_rows(), 0);
        assert!(plain.class_id("0").unwrap_err().to_string().contains("not conditioned"));
        assert!(!serde_json::to_string(&plain).unwrap().contains("classes"));
        for bad in ["[\"Coat\",\"coat\"]", "[\"\"]", "[\"7\"]"] {
            let text = OK.replace("\"extra\"", &format!("\"classes\":{bad},\"extra\""));
            assert!(ModelConfig::from_json(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_inconsistent_configs() {
        for (from, to) in [
            ("\"base\":18", "\"base\":17"),
            ("\"n_heads\":4", "\"n_heads\":5"),
            ("\"length\":16", "\"length\":0"),
            ("\"subtokens\":2", "\"subtokens\":3"),
            ("PerceiverDIT", "Transformer"),
            ("\"extra\"", "\"image\":{\"width\":4,\"height\":4},\"extra\""),
        ] {
            let text = OK.replace(from, to);
            assert!(ModelConfig::from_json(&text).is_err(), "{to}");
        }
        assert!(ModelConfig::from_json("{").is_err());
        assert!(ModelConfig::from_json(&OK.replace("\"vocab_size\":300,", "")).is_err());
    }
}
