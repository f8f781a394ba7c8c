//! Official MDM-Prime Lightning checkpoints (`.ckpt`: a `torch.save` zip of one pickle and its
//! tensor storages) → a model folder: `config.json` from the pickled Hydra config, the **EMA**
//! weights (`ema.shadow_params`, a list in the official parameter order), and the GPT-2
//! `tokenizer.json` that the pickled `GPT2TokenizerFast` carries.
//!
//! Everything else in the file (optimizer and scheduler states, loop counters, callbacks,
//! omegaconf metadata) is read as data and skipped. See `pickle` for why the pickle is read here.

pub mod pickle;

use std::io::Read;

use safetensors::Dtype;

use crate::config::{ModelClass, ModelConfig};
use crate::error::{PrimeError, Result};
use crate::network::parameter_shapes;
use crate::weights::{HostTensor, to_f32};
use pickle::{Pickle, TensorRef, Value};

/// Which weights to take from a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightSource {
    /// The EMA weights (`ema.shadow_params`): what the official sampler uses.
    Ema,
    /// The trained weights (`state_dict`, `backbone.` prefix).
    StateDict,
}

/// What a checkpoint converts to.
#[derive(Debug)]
pub struct Converted {
    /// The model's hyper-parameters.
    pub config: ModelConfig,
    /// Tensors under their official names, in the official order, `rotary_emb.inv_freq` last.
    pub tensors: Vec<(String, HostTensor)>,
    /// `tokenizer.json` bytes, when the checkpoint carries a tokenizer.
    pub tokenizer: Option<Vec<u8>>,
    /// Training steps, from the checkpoint's `global_step`.
    pub global_step: Option<i64>,
}

/// A checkpoint error, on one line: names taken from the file (globals, storage keys, config
/// strings) may hold line breaks and other control characters, which are escaped.
fn bad(message: impl Into<String>) -> PrimeError {
    let message: String = message.into();
    let one_line = if message.contains(char::is_control) {
        message.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
    } else {
        message
    };
    PrimeError::Checkpoint(one_line)
}

/// The checkpoint archive: its pickle and its storages.
struct Archive<R> {
    zip: zip::ZipArchive<R>,
    /// Folder the records live in (`archive/` as Lightning writes it, or the file's stem).
    root: String,
    /// Bytes a record may hold: the archive's own size, since records are stored uncompressed
    /// (the zip reader is built without decompressors, so a compressed record is refused; were
    /// one ever read, this bound would still cap what it expands to).
    limit: u64,
}

/// The largest `data.pkl` read: the pickle of an official checkpoint is 1.7 MB (most of it
/// the tokenizer's JSON).
pub const MAX_PICKLE_BYTES: u64 = 64 << 20;

impl<R: std::io::Read + std::io::Seek> Archive<R> {
    fn open(reader: R, limit: u64) -> Result<Self> {
        let zip = zip::ZipArchive::new(reader).map_err(|e| match e {
            zip::result::ZipError::InvalidArchive(_) => {
                bad(format!("not a PyTorch checkpoint (not a zip archive, or a truncated one: {e})"))
            }
            other => bad(format!("not a readable zip archive: {other}")),
        })?;
        let root = zip
            .file_names()
            .filter_map(|n| n.ok())
            .find_map(|n| n.strip_suffix("data.pkl").map(str::to_string))
            .ok_or_else(|| bad("the zip archive has no data.pkl: not a torch.save checkpoint"))?;
        Ok(Self { zip, root, limit })
    }

    /// The bytes of record `name`, refused past `max` bytes (and past the archive's size).
    fn record(&mut self, name: &str, max: u64) -> Result<Vec<u8>> {
        let path = format!("{}{name}", self.root);
        let max = max.min(self.limit);
        let file = self.zip.by_name(&path).map_err(|e| bad(format!("record {path}: {e}")))?;
        let declared = file.size();
        let too_big = |size: u64| bad(format!("record {path} holds {size} bytes or more, over the {max} allowed"));
        if declared > max {
            return Err(too_big(declared));
        }
        let mut out = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
        file.take(max.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("record {path} is unreadable (truncated file?): {e}")))?;
        if out.len() as u64 > max {
            return Err(too_big(out.len() as u64));
        }
        Ok(out)
    }

    /// A contiguous float tensor, converted to f32.
    fn tensor(&mut self, t: &TensorRef, what: &str) -> Result<HostTensor> {
        let dtype = match t.storage.class.as_str() {
            "FloatStorage" => Dtype::F32,
            "DoubleStorage" => Dtype::F64,
            "HalfStorage" => Dtype::F16,
            "BFloat16Storage" => Dtype::BF16,
            other => return Err(bad(format!("{what} is a {other}, not a float tensor"))),
        };
        let mut count = 1u64;
        for (dim, stride) in t.shape.iter().zip(&t.stride).rev() {
            if *dim > 1 && *stride != count {
                return Err(bad(format!("{what} is not contiguous (shape {:?}, stride {:?})", t.shape, t.stride)));
            }
            count = count.saturating_mul(*dim);
        }
        if t.offset.saturating_add(count) > t.storage.numel {
            return Err(bad(format!("{what} reaches past its storage `{}`", t.storage.key)));
        }
        let bytes = self.record(&format!("data/{}", t.storage.key), u64::MAX)?;
        // Offsets come from the file: checked, so that a hostile one is an error, not an overflow.
        let width = dtype.bitsize() as u64 / 8;
        let span = t.offset.checked_mul(width).zip(count.checked_mul(width));
        let range = span.and_then(|(start, len)| {
            Some(usize::try_from(start).ok()?..usize::try_from(start.checked_add(len)?).ok()?)
        });
        let raw = range.and_then(|r| bytes.get(r)).ok_or_else(|| {
            bad(format!(
                "storage `{}` of {what} holds {} bytes, fewer than {count} values at offset {} need (truncated?)",
                t.storage.key,
                bytes.len(),
                t.offset
            ))
        })?;
        let shape = t.shape.iter().map(|&d| d as usize).collect();
        Ok(HostTensor { shape, data: to_f32(what, dtype, raw)? })
    }
}

/// A leaf or container of the pickled omegaconf config at `path` (`DictConfig._content`, then
/// `AnyNode._val`).
fn config_value<'a>(p: &'a Pickle, config: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut node = config;
    for key in path {
        let content = p.get(node, "_content")?;
        node = p.get(content, key)?;
    }
    p.get(node, "_val").or(Some(node))
}

fn config_int(p: &Pickle, config: &Value, path: &[&str]) -> Result<usize> {
    match config_value(p, config, path) {
        Some(Value::Int(v)) if *v >= 0 => Ok(*v as usize),
        other => Err(bad(format!(
            "the checkpoint's config has no integer `{}` (found {other:?}): not an MDM-Prime text checkpoint?",
            path.join(".")
        ))),
    }
}

/// The pickle (`data.pkl`) of a `torch.save` archive, unparsed: for inspection and tests.
pub fn data_pickle(bytes: &[u8]) -> Result<Vec<u8>> {
    Archive::open(std::io::Cursor::new(bytes), bytes.len() as u64)?.record("data.pkl", MAX_PICKLE_BYTES)
}

/// Reads a checkpoint (the bytes of a `.ckpt` file).
pub fn convert(bytes: &[u8], source: WeightSource) -> Result<Converted> {
    let mut archive = Archive::open(std::io::Cursor::new(bytes), bytes.len() as u64)?;
    let pickle = Pickle::parse(&archive.record("data.pkl", MAX_PICKLE_BYTES)?)?;
    let root = &pickle.root;
    let hyper = pickle.get(root, "hyper_parameters").ok_or_else(|| {
        bad("the checkpoint has no `hyper_parameters`: a plain state dict (an image-model .pth?) is not supported yet")
    })?;
    let cfg = pickle.get(hyper, "config").ok_or_else(|| bad("`hyper_parameters` has no `config`"))?;
    let config = model_config(&pickle, cfg)?;

    let names = parameter_shapes(&config)?;
    let mut tensors = Vec::with_capacity(names.len() + 1);
    match source {
        WeightSource::Ema => {
            let ema = pickle.get(root, "ema").ok_or_else(|| {
                bad("the checkpoint has no EMA weights (`ema`); pass --no-ema to convert its trained weights (`state_dict`)")
            })?;
            let shadow = pickle
                .get(ema, "shadow_params")
                .and_then(|s| pickle.items(s))
                .ok_or_else(|| bad("`ema` has no `shadow_params` list"))?;
            if shadow.len() != names.len() {
                return Err(bad(format!(
                    "`ema.shadow_params` holds {} tensors; the network of this config has {} parameters",
                    shadow.len(),
                    names.len()
                )));
            }
            for ((name, shape), value) in names.iter().zip(shadow) {
                let Value::Tensor(t) = value else {
                    return Err(bad(format!("EMA entry for `{name}` is not a tensor")));
                };
                tensors.push((name.clone(), checked(archive.tensor(t, name)?, name, shape)?));
            }
        }
        WeightSource::StateDict => {
            let state = pickle.get(root, "state_dict").ok_or_else(|| bad("the checkpoint has no `state_dict`"))?;
            for (name, shape) in &names {
                let key = format!("backbone.{name}");
                let Some(Value::Tensor(t)) = pickle.get(state, &key) else {
                    return Err(bad(format!("`state_dict` lacks tensor `{key}`")));
                };
                tensors.push((name.clone(), checked(archive.tensor(t, name)?, name, shape)?));
            }
        }
    }
    let state = pickle.get(root, "state_dict");
    if let Some(Value::Tensor(t)) = state.and_then(|s| pickle.get(s, "backbone.rotary_emb.inv_freq")) {
        let name = "rotary_emb.inv_freq";
        let half = config.head_dim() / 2;
        tensors.push((name.to_string(), checked(archive.tensor(t, name)?, name, &[half])?));
    }
    let tokenizer = pickle.objects_of("tokenizers", "Tokenizer").find_map(|state| match state {
        Some(Value::Bytes(json)) => Some(json.to_vec()),
        Some(Value::Str(json)) => Some(json.as_bytes().to_vec()),
        _ => None,
    });
    let global_step = match pickle.get(root, "global_step") {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    Ok(Converted { config, tensors, tokenizer, global_step })
}

fn checked(tensor: HostTensor, name: &str, shape: &[usize]) -> Result<HostTensor> {
    if tensor.shape != shape {
        return Err(bad(format!(
            "tensor `{name}` has shape {:?}; the checkpoint's config implies {shape:?}",
            tensor.shape
        )));
    }
    Ok(tensor)
}

/// `config.json` from the pickled Hydra config: ℓ, b, V and carry-over from `prime`, the sizes
/// from `model`; MLP ratio, LN eps, RoPE base and time-frequency size are fixed in the official
/// network code (4, 1e-5, 10000, 256).
fn model_config(p: &Pickle, cfg: &Value) -> Result<ModelConfig> {
    let backbone = match config_value(p, cfg, &["backbone"]) {
        Some(Value::Str(s)) => s.to_string(),
        _ => return Err(bad("the checkpoint's config has no `backbone`: not an MDM-Prime text checkpoint")),
    };
    if backbone != "dit" {
        return Err(bad(format!("backbone `{backbone}` is not supported (only the text `dit` backbone)")));
    }
    let subtokens = config_int(p, cfg, &["prime", "target_length"]).unwrap_or(1);
    let vocab = config_int(p, cfg, &["prime", "vocab_size"])?;
    let base = match config_value(p, cfg, &["prime", "base"]) {
        Some(Value::Int(b)) if *b >= 2 => {
            Some(u32::try_from(*b).map_err(|_| bad(format!("prime.base {b} is too large")))?)
        }
        // An unresolved interpolation: the official code sets ⌈V^(1/ℓ)⌉, the smallest base.
        _ => None,
    };
    let carry_over = !matches!(config_value(p, cfg, &["prime", "carry_over"]), Some(Value::Bool(false)));
    let config = ModelConfig {
        model_class: if subtokens == 1 { ModelClass::DIT } else { ModelClass::PerceiverDIT },
        vocab_size: u32::try_from(vocab).map_err(|_| bad(format!("prime.vocab_size {vocab} is too large")))?,
        subtokens,
        base: if subtokens == 1 { None } else { base },
        hidden_size: config_int(p, cfg, &["model", "hidden_size"])?,
        n_blocks: config_int(p, cfg, &["model", "n_blocks"])?,
        n_heads: config_int(p, cfg, &["model", "n_heads"])?,
        cond_dim: config_int(p, cfg, &["model", "cond_dim"])?,
        length: config_int(p, cfg, &["model", "length"])?,
        mlp_ratio: 4,
        layer_norm_eps: 1e-5,
        rope_base: 10000.0,
        frequency_embedding_size: 256,
        carry_over,
        image: None,
        position_embedding: false,
        classes: Vec::new(),
        sampling: Default::default(),
    };
    config
        .validate()
        .map_err(|e| bad(format!("the checkpoint's config describes a model this runtime refuses: {e}")))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A `torch.save`-like zip holding only `archive/data.pkl`.
    fn archive(pickle: &[u8]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", options).unwrap();
        zip.write_all(pickle).unwrap();
        zip.finish().unwrap().into_inner()
    }

    fn error(bytes: &[u8]) -> String {
        convert(bytes, WeightSource::Ema).unwrap_err().to_string()
    }

    #[test]
    fn other_files_are_named_errors() {
        assert!(error(b"not a zip").contains("not a PyTorch checkpoint"));
        // A plain state dict, as an image model's .pth: {'w': None}.
        let plain = archive(b"\x80\x02}q\x00X\x01\x00\x00\x00wNs.");
        assert!(error(&plain).contains("not supported yet"), "{}", error(&plain));
        // A Lightning checkpoint of another model: hyper_parameters.config without `backbone`.
        let other = archive(b"\x80\x02}(X\x10\x00\x00\x00hyper_parameters}X\x06\x00\x00\x00config}su.");
        assert!(error(&other).contains("no `backbone`"), "{}", error(&other));
        let broken = archive(b"\x80\x02}(X\x10\x00\x00\x00hyper_param");
        assert!(error(&broken).starts_with("pickle: truncated"), "{}", error(&broken));
    }

    /// The official fixture with one call of `os.system` added where the converter never looks
    /// (called, then popped, before the root is returned): converted "successfully" by a reader
    /// that only records calls; refused by the allowlist.
    #[test]
    fn a_checkpoint_naming_code_is_refused() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/checkpoints/owt_prime_l2_co/checkpoint.ckpt");
        let bytes = std::fs::read(path).unwrap();
        convert(&bytes, WeightSource::Ema).expect("the fixture converts");
        let mut pickle = data_pickle(&bytes).unwrap();
        assert_eq!(pickle.pop(), Some(b'.'));
        pickle.extend(b"cos\nsystem\n\x8c\x07echo hi\x85R0.");
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        let mut source = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..])).unwrap();
        for i in 0..source.len() {
            let mut entry = source.by_index(i).unwrap();
            let name = entry.name().unwrap().to_string();
            zip.start_file(name.as_str(), options).unwrap();
            if name.ends_with("/data.pkl") {
                zip.write_all(&pickle).unwrap();
            } else {
                std::io::copy(&mut entry, &mut zip).unwrap();
            }
        }
        let hostile = zip.finish().unwrap().into_inner();
        let e = error(&hostile);
        assert!(e.contains("`os.system` is not allowed"), "{e}");
    }

    /// Names from the file are escaped into the one-line message.
    #[test]
    fn errors_stay_on_one_line() {
        let e = pickle::Pickle::parse(b"\x80\x02cos\nsys\rtem\n.").unwrap_err().to_string();
        assert!(e.contains("`os.sys\\rtem` is not allowed") && !e.contains('\r'), "{e}");
    }
}
