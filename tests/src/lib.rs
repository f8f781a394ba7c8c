//! Helpers shared by the integration tests: golden files and the backends to run on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::Device;
use prime_core::device::wgpu_device;
use safetensors::{Dtype, SafeTensors};

/// `tests/golden` of this repository.
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// The folder of one golden case (also a model folder).
pub fn case_dir(case: &str) -> PathBuf {
    golden_dir().join(case)
}

/// A tensor read from a golden file: shape and values (ints widened to i64, floats to f32).
#[derive(Debug, Clone)]
pub enum Golden {
    /// Float tensor.
    F32(Vec<usize>, Vec<f32>),
    /// Integer tensor.
    I64(Vec<usize>, Vec<i64>),
}

impl Golden {
    /// Float values; panics (test failure) on an int tensor.
    pub fn f32(&self) -> &[f32] {
        match self {
            Golden::F32(_, v) => v,
            Golden::I64(..) => panic!("expected a float tensor"),
        }
    }

    /// Int values; panics (test failure) on a float tensor.
    pub fn i64(&self) -> &[i64] {
        match self {
            Golden::I64(_, v) => v,
            Golden::F32(..) => panic!("expected an int tensor"),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Golden::F32(s, _) | Golden::I64(s, _) => s,
        }
    }
}

/// Every tensor of a golden safetensors file.
pub fn read_golden(path: &std::path::Path) -> std::collections::BTreeMap<String, Golden> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = SafeTensors::deserialize(&bytes).expect("golden file parses");
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let shape = view.shape().to_vec();
            let data = view.data();
            let tensor = match view.dtype() {
                Dtype::F32 => Golden::F32(
                    shape,
                    data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                ),
                Dtype::I64 => Golden::I64(
                    shape,
                    data.chunks_exact(8)
                        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                        .collect(),
                ),
                other => panic!("unexpected dtype {other:?} in {name}"),
            };
            (name, tensor)
        })
        .collect()
}

/// Largest |a − b| over finite pairs; infinities must agree exactly (else +∞ is returned).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(
            |(&x, &y)| {
                if x.is_infinite() || y.is_infinite() {
                    if x == y { 0.0 } else { f32::INFINITY }
                } else {
                    (x - y).abs()
                }
            },
        )
        .fold(0.0, f32::max)
}

/// The backends every cross-backend test runs on: burn-flex, and wgpu (lavapipe in CI).
///
/// A missing wgpu adapter fails the test, so GPU code cannot silently go untested; set
/// `PRIME_SKIP_WGPU=1` to run on burn-flex alone on a machine without Vulkan.
pub fn backends() -> Vec<(&'static str, Device)> {
    let mut out = vec![("flex", Device::flex())];
    if std::env::var_os("PRIME_SKIP_WGPU").is_some() {
        eprintln!("PRIME_SKIP_WGPU is set: wgpu is not tested");
        return out;
    }
    match wgpu_device() {
        Ok((device, adapter)) => {
            eprintln!("wgpu adapter: {} ({})", adapter.name, adapter.api);
            out.push(("wgpu", device));
        }
        Err(e) => panic!("no wgpu adapter ({e}); install mesa-vulkan-drivers or set PRIME_SKIP_WGPU=1"),
    }
    out
}

/// A fresh, empty directory under the system's temporary directory, removed on drop.
///
/// (Written here rather than taken from `tempfile`, whose `rustix` dependency changes the
/// features of crates wgpu shares and so forces a second build of the whole GPU stack.)
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/prime-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("prime-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A one-block model small enough for any test: hidden 32 (2 heads), L = 16, carry-over on;
/// ℓ = 1 is MDLM's DiT, ℓ ≥ 2 MDM-Prime's Perceiver DiT. Tests change fields as they need.
pub fn tiny_config(subtokens: usize, vocab: u32) -> prime_core::ModelConfig {
    use prime_core::ModelClass;
    prime_core::ModelConfig {
        model_class: if subtokens == 1 { ModelClass::DIT } else { ModelClass::PerceiverDIT },
        vocab_size: vocab,
        subtokens,
        base: None,
        hidden_size: 32,
        n_blocks: 1,
        n_heads: 2,
        cond_dim: 16,
        length: 16,
        mlp_ratio: 2,
        layer_norm_eps: 1e-5,
        rope_base: 10000.0,
        frequency_embedding_size: 32,
        carry_over: true,
        image: None,
        position_embedding: false,
        classes: Vec::new(),
        sampling: Default::default(),
    }
}

/// Every parameter of `config`'s network filled with fixed pseudo-random values in ±0.4 (an
/// initialised model's output layer is zero, which would make every logit equal and hide a
/// misplaced weight).
pub fn filled_tensors(config: &prime_core::ModelConfig) -> Vec<(String, prime_core::weights::HostTensor)> {
    let mut k: u64 = 5;
    let shapes = prime_core::network::parameter_shapes(config).expect("shapes");
    let tensors = shapes.into_iter().map(|(name, shape)| {
        let data = (0..shape.iter().product::<usize>())
            .map(|_| {
                k = k.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((k >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.8
            })
            .collect();
        (name, prime_core::weights::HostTensor { shape, data })
    });
    tensors.collect()
}
