//! Initial weights of a training run, under the official names and PyTorch layouts.
//!
//! Linear maps and the embedding use PyTorch's default bound `1/√fan_in` (uniform); norms start
//! at 1; every adaLN modulation and the output layer start at zero, so each block starts as the
//! identity and the first output is uniform (the DiT "adaLN-zero" scheme the official code uses).

use crate::config::ModelConfig;
use crate::error::Result;
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

/// Seeded initial weights for `config` (the RoPE buffer is left to the loader's default).
/// The config is validated first, so that no absurd size is allocated.
pub fn initial_weights(config: &ModelConfig, seed: u64) -> Result<WeightFile> {
    config.validate()?;
    let (d, c, f) = (config.hidden_size, config.cond_dim, config.frequency_embedding_size);
    let mlp = config.mlp_ratio * d;
    let e = config.embedding_dim();
    let mut specs: Vec<(String, Vec<usize>, Init)> = vec![
        ("vocab_embed.embedding".into(), vec![config.embedding_rows()?, e], Init::Uniform { fan_in: e }),
        ("sigma_map.mlp.0.weight".into(), vec![c, f], Init::Uniform { fan_in: f }),
        ("sigma_map.mlp.0.bias".into(), vec![c], Init::Uniform { fan_in: f }),
        ("sigma_map.mlp.2.weight".into(), vec![c, c], Init::Uniform { fan_in: c }),
        ("sigma_map.mlp.2.bias".into(), vec![c], Init::Uniform { fan_in: c }),
    ];
    for i in 0..config.n_blocks {
        let p = |n: &str| format!("blocks.{i}.{n}");
        specs.extend([
            (p("norm1.weight"), vec![d], Init::Ones),
            (p("attn_qkv.weight"), vec![3 * d, d], Init::Uniform { fan_in: d }),
            (p("attn_out.weight"), vec![d, d], Init::Uniform { fan_in: d }),
            (p("norm2.weight"), vec![d], Init::Ones),
            (p("mlp.0.weight"), vec![mlp, d], Init::Uniform { fan_in: d }),
            (p("mlp.0.bias"), vec![mlp], Init::Uniform { fan_in: d }),
            (p("mlp.2.weight"), vec![d, mlp], Init::Uniform { fan_in: mlp }),
            (p("mlp.2.bias"), vec![d], Init::Uniform { fan_in: mlp }),
            (p("adaLN_modulation.weight"), vec![6 * d, c], Init::Zeros),
            (p("adaLN_modulation.bias"), vec![6 * d], Init::Zeros),
        ]);
    }
    let out = config.output_width();
    specs.extend([
        ("output_layer.norm_final.weight".into(), vec![d], Init::Ones),
        ("output_layer.linear.weight".into(), vec![out, d], Init::Zeros),
        ("output_layer.linear.bias".into(), vec![out], Init::Zeros),
        ("output_layer.adaLN_modulation.weight".into(), vec![2 * d, c], Init::Zeros),
        ("output_layer.adaLN_modulation.bias".into(), vec![2 * d], Init::Zeros),
    ]);
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
