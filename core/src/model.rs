//! A loaded model folder: `config.json`, `model.safetensors` and optionally `tokenizer.json`.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::binding::Blocking;
use crate::codec::SubTokenCodec;
use crate::config::{ModelConfig, json_text};
use crate::denoiser::Denoiser;
use crate::error::{PrimeError, Result};
use crate::logits::{Logits, LogitsBlock, NetworkInput};
use crate::network::{Network, NetworkConstants, Trace};
use crate::readback::{read_f32, read_f32_async, with_f32};
use crate::text::TextCodec;
use crate::weights::{HostTensor, WeightFile};

/// File names inside a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Optional tokenizer file name.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Where a model comes from.
#[derive(Debug)]
pub enum ModelSource<'a> {
    /// A model folder: `config.json`, `model.safetensors`, optional `tokenizer.json`.
    Dir(&'a std::path::Path),
    /// The contents of those files (as a browser fetches them, or as embedded in a binary).
    Parts {
        /// `config.json`.
        config: &'a str,
        /// `model.safetensors`.
        weights: &'a [u8],
        /// `tokenizer.json`, if any.
        tokenizer: Option<&'a [u8]>,
    },
    /// A config and in-memory weights (e.g. freshly initialised ones), without a tokenizer.
    Weights(ModelConfig, WeightFile),
}

/// A network ready to run on one device, with its codec and optional tokenizer.
#[derive(Debug)]
pub struct Model {
    config: ModelConfig,
    codec: SubTokenCodec,
    network: Network,
    constants: NetworkConstants,
    device: Device,
    text: Option<TextCodec>,
    blocking: Blocking,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| PrimeError::io(path, error))
}

/// The bytes of a model folder's files.
struct FolderBytes {
    config: Vec<u8>,
    weights: Vec<u8>,
    tokenizer: Option<Vec<u8>>,
}

/// Reads a model folder's config, weights and optional tokenizer.
fn read_dir(dir: &Path) -> Result<FolderBytes> {
    let not_a_folder = |what: &str| {
        let what = format!("{what}; a model is a folder holding config.json and model.safetensors");
        PrimeError::io(dir, std::io::Error::new(std::io::ErrorKind::NotFound, what))
    };
    if dir.is_file() {
        return Err(not_a_folder("this is a file"));
    }
    if !dir.is_dir() {
        return Err(not_a_folder("no such folder"));
    }
    let config = read(&dir.join(CONFIG_FILE))?;
    let weights = read(&dir.join(WEIGHTS_FILE))?;
    let tokenizer_path = dir.join(TOKENIZER_FILE);
    let tokenizer = if tokenizer_path.exists() { Some(read(&tokenizer_path)?) } else { None };
    Ok(FolderBytes { config, weights, tokenizer })
}

/// Writes a model folder: `config.json`, `model.safetensors` (the bytes of a safetensors file)
/// and, if given, `tokenizer.json` — what [`Model::load_dir`] reads — into `out` (which the
/// caller commits, after adding any files of its own).
#[cfg(not(target_family = "wasm"))]
pub fn write_dir(
    out: &crate::output::DirOutput,
    config: &ModelConfig,
    weights: &[u8],
    tokenizer: Option<&[u8]>,
) -> Result<()> {
    let config = serde_json::to_vec_pretty(config).map_err(|e| PrimeError::Config(e.to_string()))?;
    let files = [(CONFIG_FILE, Some(config.as_slice())), (WEIGHTS_FILE, Some(weights)), (TOKENIZER_FILE, tokenizer)];
    for (name, bytes) in files {
        if let Some(bytes) = bytes {
            out.write(name, bytes)?;
        }
    }
    Ok(())
}

/// Tensors the network did not take: blocks beyond `n_blocks` mean the config and the weights
/// disagree (an error); anything else is reported as a warning and ignored.
fn check_leftovers(config: &ModelConfig, extra: &[String]) -> Result<()> {
    let block_of = |name: &str| name.strip_prefix("blocks.")?.split('.').next()?.parse::<usize>().ok();
    if let Some(name) = extra.iter().find(|n| block_of(n).is_some()) {
        let last = extra.iter().filter_map(|n| block_of(n)).max().unwrap_or(0);
        return Err(PrimeError::Config(format!(
            "n_blocks = {} but model.safetensors holds tensors of blocks up to {last} (such as `{name}`)",
            config.n_blocks
        )));
    }
    if !extra.is_empty() {
        let shown = extra.iter().take(5).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let more = if extra.len() > 5 { format!(" and {} more", extra.len() - 5) } else { String::new() };
        tracing::warn!("model.safetensors: ignoring {} tensors the network does not use: {shown}{more}", extra.len());
    }
    Ok(())
}

impl Model {
    /// Loads a model from `source` onto `device`, whose largest storage binding is
    /// `max_binding` bytes (`None`: no limit, as on the CPU). Large tensors are cut to fit
    /// (see [`Blocking`]); a model that cannot fit is refused with the tensor named.
    pub fn load(source: ModelSource<'_>, device: &Device, max_binding: Option<u64>) -> Result<Self> {
        match source {
            ModelSource::Dir(dir) => {
                let files = read_dir(dir)?;
                let in_folder = |error| PrimeError::Folder { dir: dir.to_path_buf(), error: Box::new(error) };
                let config = json_text(&files.config).map_err(|e| in_folder(PrimeError::Config(e)))?;
                let parts =
                    ModelSource::Parts { config, weights: &files.weights, tokenizer: files.tokenizer.as_deref() };
                Self::load(parts, device, max_binding).map_err(in_folder)
            }
            ModelSource::Parts { config, weights, tokenizer } => {
                let config = ModelConfig::from_json(config)?;
                let text = tokenizer.map(|t| TextCodec::from_bytes(t, config.vocab_size)).transpose()?;
                let weights = ModelSource::Weights(config, WeightFile::from_bytes(weights)?);
                let mut model = Self::load(weights, device, max_binding)?;
                model.text = text;
                Ok(model)
            }
            ModelSource::Weights(config, mut file) => {
                config.validate()?;
                config.sampling.validate()?;
                let codec = config.codec()?;
                let blocking = Blocking::new(&config, max_binding)?;
                let network = Network::load(&config, &mut file, device, blocking.head_rows)?;
                check_leftovers(&config, &file.remaining())?;
                let constants = network.constants();
                Ok(Self { config, codec, network, constants, device: device.clone(), text: None, blocking })
            }
        }
    }

    /// Loads a model folder onto `device`. Errors name the folder and the file.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        Self::load(ModelSource::Dir(dir), device, None)
    }

    /// Builds a model from the contents of the three files (as fetched by a browser).
    pub fn from_parts(config: &str, weights: &[u8], tokenizer: Option<&[u8]>, device: &Device) -> Result<Self> {
        Self::load(ModelSource::Parts { config, weights, tokenizer }, device, None)
    }

    /// Builds a model without a tokenizer from a config and in-memory weights (for example
    /// freshly initialised ones).
    pub fn from_weights(config: ModelConfig, file: WeightFile, device: &Device) -> Result<Self> {
        Self::load(ModelSource::Weights(config, file), device, None)
    }

    /// How the model's large tensors are cut for its device.
    pub fn blocking(&self) -> Blocking {
        self.blocking
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The sub-token codec.
    pub fn codec(&self) -> &SubTokenCodec {
        &self.codec
    }

    /// Number of trained parameters.
    pub fn parameters(&self) -> usize {
        burn::module::Module::num_params(&self.network)
    }

    /// The tokenizer, when the folder has one.
    pub fn text(&self) -> Option<&TextCodec> {
        self.text.as_ref()
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Checks a batch of network inputs: `batch` rows of ℓ·L sub-token ids, each in `[0, b]`.
    pub fn check_inputs(&self, ids: &[i64], batch: usize) -> Result<()> {
        let n = self.config.sequence_subtokens();
        if batch == 0 || batch.checked_mul(n) != Some(ids.len()) {
            return Err(PrimeError::Input(format!(
                "expected {batch} rows of {n} sub-token ids (ℓ·L), got {} ids",
                ids.len()
            )));
        }
        self.config.footprint().check(batch).map_err(PrimeError::Input)?;
        let mask = i64::from(self.codec.mask_id());
        if let Some(i) = ids.iter().position(|&v| !(0..=mask).contains(&v)) {
            return Err(PrimeError::Input(format!(
                "id {} at row {}, column {} is outside [0, {mask}] (mask id {mask})",
                ids[i],
                i / n,
                i % n
            )));
        }
        Ok(())
    }

    /// Checked ids (B, ℓ·L) on the device.
    fn ids_tensor(&self, ids: &[i64], batch: usize) -> Result<Tensor<2, Int>> {
        self.check_inputs(ids, batch)?;
        let ids: Vec<i32> = ids.iter().map(|&v| v as i32).collect();
        let n = self.config.sequence_subtokens();
        Ok(Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, n]), &self.device))
    }

    fn run(&self, ids: &[i64], batch: usize, trace: Option<&mut Trace>) -> Result<Tensor<3>> {
        let ids = self.ids_tensor(ids, batch)?;
        self.blocking.check_whole_logits(&self.config, batch)?;
        Ok(self.network.forward(&self.constants, ids, trace))
    }

    /// Logits (batch, L, V_out), row-major, for `batch` rows of sub-token ids.
    pub fn forward(&self, ids: &[i64], batch: usize) -> Result<Vec<f32>> {
        read_f32(self.run(ids, batch, None)?, "logits")
    }

    /// [`Model::forward`] in blocks: the logits as (B·L, V_out) rows, at most `rows` of them at
    /// a time (fewer where the device binds less), each block handed to `write` (row-major,
    /// in order) and dropped before the next is computed. The whole logits never exist at once
    /// (B = 4 at V = 50257 is 400 MB), and `write` gets the device's own buffer, not a copy.
    pub fn forward_blocks(
        &self,
        ids: &[i64],
        batch: usize,
        rows: usize,
        mut write: impl FnMut(&[f32]) -> Result<()>,
    ) -> Result<()> {
        let hidden = self.network.hidden(&self.constants, self.ids_tensor(ids, batch)?, &[], None);
        let total = batch * self.config.length;
        let rows = rows.min(self.blocking.logits_rows).max(1);
        for start in (0..total).step_by(rows) {
            let block = self.network.head(hidden.clone().slice(start..(start + rows).min(total)));
            with_f32(block, "logits", &mut write)?;
        }
        Ok(())
    }

    /// [`Model::forward`] without blocking: the read-back is awaited (required on WebGPU in a
    /// browser, where a blocking read fails).
    pub async fn forward_async(&self, ids: &[i64], batch: usize) -> Result<Vec<f32>> {
        read_f32_async(self.run(ids, batch, None)?, "logits").await
    }

    /// Token ids of `text` from this model's tokenizer; `what` names the text in the error
    /// when the model folder has no `tokenizer.json`.
    pub fn encode_text(&self, text: &str, what: &str) -> Result<Vec<u32>> {
        match &self.text {
            Some(codec) => codec.encode(text),
            None => Err(PrimeError::Input(format!(
                "the {what} is text, but the model folder has no tokenizer.json; give token ids instead"
            ))),
        }
    }

    /// Logits plus every intermediate activation, named as in the golden files.
    pub fn forward_traced(&self, ids: &[i64], batch: usize) -> Result<(Vec<f32>, BTreeMap<String, HostTensor>)> {
        let mut trace = Trace::default();
        let logits = self.run(ids, batch, Some(&mut trace))?;
        Ok((read_f32(logits, "logits")?, trace.into_host()?))
    }
}

impl Model {
    /// Logits of `inputs` where some ask for guidance: those also run without their class, in
    /// the same batch, and their logits are guided ([`Logits::guided`]).
    fn guided_logits(&self, inputs: Vec<NetworkInput>) -> Result<Vec<Logits>> {
        let n = inputs.len();
        let guided: Vec<(usize, f32)> = inputs
            .iter()
            .enumerate()
            .filter(|(_, i)| i.class.is_some() && i.guidance > 0.0)
            .map(|(k, i)| (k, i.guidance))
            .collect();
        let unconditioned: Vec<NetworkInput> =
            guided.iter().map(|&(k, _)| NetworkInput { class: None, guidance: 0.0, ..inputs[k].clone() }).collect();
        let plain = inputs.into_iter().map(|i| NetworkInput { guidance: 0.0, ..i });
        let mut out = self.logits_batch(plain.chain(unconditioned).collect())?;
        let mut unconditioned = out.split_off(n).into_iter();
        let mut scales = guided.into_iter().peekable();
        out.into_iter()
            .enumerate()
            .map(|(k, with)| match scales.next_if(|&(g, _)| g == k) {
                Some((_, scale)) => {
                    let without = unconditioned
                        .next()
                        .ok_or_else(|| PrimeError::Input("guidance: an output without the class is missing".into()))?;
                    with.guided(without, scale)
                }
                None => Ok(with),
            })
            .collect()
    }

    /// The class-embedding row of a sequence conditioned on `class` (0 for a model without
    /// classes, which ignores it). Fails for a class the model does not have.
    fn class_row(&self, class: Option<u32>) -> Result<u32> {
        let classes = self.config.classes.len();
        match class {
            None => Ok(self.config.no_class()),
            Some(c) if (c as usize) < classes => Ok(c),
            Some(c) if classes == 0 => {
                Err(PrimeError::Input(format!("class {c} asked for, but this model is not conditioned on classes")))
            }
            Some(c) => Err(PrimeError::Input(format!("class {c} is not one of this model's {classes} classes"))),
        }
    }
}

impl Denoiser for Model {
    fn device(&self) -> &Device {
        &self.device
    }

    fn logits(&self, input: NetworkInput) -> Result<Logits> {
        let mut logits = self.logits_batch(vec![input])?;
        logits.pop().ok_or_else(|| PrimeError::Input("the network returned no logits".into()))
    }

    fn logits_batch(&self, inputs: Vec<NetworkInput>) -> Result<Vec<Logits>> {
        let n = self.config.sequence_subtokens();
        let length = self.config.length;
        for input in &inputs {
            if input.state.dims()[0] != n {
                return Err(PrimeError::Input(format!("state has {} sub-tokens, expected {n}", input.state.dims()[0])));
            }
            if input.rows.windows(2).any(|w| w[0] >= w[1]) || input.rows.last().is_some_and(|&i| i as usize >= length) {
                return Err(PrimeError::Input(format!(
                    "rows asked of the network are not ascending positions below {length}"
                )));
            }
        }
        let batch = inputs.len();
        if batch == 0 {
            return Ok(Vec::new());
        }
        if inputs.iter().any(|i| i.class.is_some() && i.guidance > 0.0) {
            return self.guided_logits(inputs);
        }
        self.config.footprint().check(batch).map_err(PrimeError::Input)?;
        self.blocking.check_batch(&self.config, batch)?;
        let every_row = inputs.iter().all(|i| i.rows.len() == length);
        let classes = inputs.iter().map(|i| self.class_row(i.class)).collect::<Result<Vec<_>>>()?;
        let (states, rows): (Vec<_>, Vec<_>) = inputs.into_iter().map(|i| (i.state, i.rows)).unzip();
        let hidden = self.network.hidden(&self.constants, Tensor::cat(states, 0).reshape([batch, n]), &classes, None);
        if every_row && self.blocking.logits_rows >= length {
            // One block per sequence: the head runs once on every row.
            let logits = self.network.head(hidden);
            return Ok(logits.chunk(batch, 0).into_iter().map(Logits::whole).collect());
        }
        // The head only on the rows asked for (gathered into one product; at least one row, so
        // that an output is never empty), in blocks within the binding limit.
        rows.into_iter()
            .enumerate()
            .map(|(b, rows)| {
                let rows = if rows.is_empty() { vec![0] } else { rows };
                let x = hidden.clone().slice(b * length..(b + 1) * length);
                let x = if rows.len() == length {
                    x
                } else {
                    let index: Vec<i32> = rows.iter().map(|&i| i as i32).collect();
                    x.select(0, Tensor::<1, Int>::from_data(TensorData::new(index, [rows.len()]), &self.device))
                };
                let mut first = 0;
                let blocks = rows
                    .chunks(self.blocking.logits_rows)
                    .map(|positions| {
                        let block = self.network.head(x.clone().slice(first..first + positions.len()));
                        first += positions.len();
                        LogitsBlock { positions: positions.to_vec(), rows: block }
                    })
                    .collect();
                Logits::from_blocks(blocks)
            })
            .collect()
    }
}
