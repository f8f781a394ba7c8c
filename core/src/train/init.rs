//! Initial weights of a training run, under the official names and PyTorch layouts.
//!
//! Linear maps and the embedding use PyTorch's default bound `1/√fan_in` (uniform); norms start
//! at 1; every adaLN modulation, the output layer and a class embedding start at zero, so each block starts as the
//! identity and the first output is uniform (the DiT "adaLN-zero" scheme the official code uses).

use crate::config::ModelConfig;
use crate::error::Result;
use crate::network::{CLASS_EMBEDDING, parameter_shapes};
use crate::rng::{CounterRng, Stream};
use crate::weights::{HostTensor, WeightFile};

/// How one tensor starts.
enum Init {
    /// Uniform in ±1/√fan_in.
    Uniform {
        fan_in: usize,
    },
    Ones,
    Zeros,
}

/// The init of each parameter, from its name: norms at 1, adaLN modulations, the output layer
/// and the class embedding at 0 (a class-conditioned network starts as the same network
/// without classes), the rest uniform with the fan-in of its layer (a bias takes its weight's).
fn init_of(name: &str, shape: &[usize], layer_fan_in: &mut usize) -> Init {
    if name.ends_with("norm1.weight") || name.ends_with("norm2.weight") || name.ends_with("norm_final.weight") {
        return Init::Ones;
    }
    if name.contains("adaLN_modulation") || name.starts_with("output_layer.linear") || name == CLASS_EMBEDDING {
        return Init::Zeros;
    }
    if shape.len() == 2 {
        *layer_fan_in = shape[1];
    }
    Init::Uniform { fan_in: *layer_fan_in }
}

/// Seeded initial weights for `config` (the RoPE buffer is left to the loader's default).
/// The config is validated first, so that no absurd size is allocated.
pub fn initial_weights(config: &ModelConfig, seed: u64) -> Result<WeightFile> {
    let mut fan_in = 1;
    let specs: Vec<(String, Vec<usize>, Init)> = parameter_shapes(config)?
        .into_iter()
        .map(|(name, shape)| {
            let init = init_of(&name, &shape, &mut fan_in);
            (name, shape, init)
        })
        .collect();
    let rng = CounterRng::new(seed);
    let tensors = specs.into_iter().enumerate().map(|(k, (name, shape, init))| {
        let n: usize = shape.iter().product();
        let data = match init {
            Init::Ones => vec![1.0; n],
            Init::Zeros => vec![0.0; n],
            Init::Uniform { fan_in } => {
                let bound = 1.0 / (fan_in as f32).sqrt();
                (0..n).map(|i| (2.0 * rng.uniform(Stream::Init, 0, k as u32, i as u32) - 1.0) * bound).collect()
            }
        };
        (name, HostTensor { shape, data })
    });
    Ok(WeightFile::from_tensors(tensors))
}
