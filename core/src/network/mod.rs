//! The official text networks in Burn: `PerceiverDIT` (MDM-Prime) and `DIT` (MDLM), spec §3.
//!
//! Both share one structure: a shared sub-token embedding concatenated per token (for DIT a
//! plain token embedding), a constant conditioning vector from σ = 0, adaLN DDiT blocks with
//! rotate-half RoPE, and a modulated final layer. Image models may add a learned absolute
//! position embedding to the token embeddings (an extension, off for the official networks).
//! Everything that depends only on the weights (conditioning, modulation vectors, RoPE tables)
//! is computed once by [`Network::constants`].

mod block;
pub mod fused;
mod layers;
mod rope;
mod trace;
#[cfg(feature = "train")]
pub mod training_ops;
mod upload;

use burn::module::Param;
use burn::tensor::activation::silu;
use burn::tensor::{Device, Int, Tensor, TensorData};

pub use block::{Block, BlockModulation, BlockShape};
pub use layers::Linear;
pub use rope::{RopeTables, rope_values};
pub use trace::Trace;
pub use upload::Upload;

use crate::config::ModelConfig;
use crate::error::{PrimeError, Result};
use crate::weights::{HostTensor, WeightFile};
use layers::{export_linear, layer_norm, modulate, param_to_host};

/// The network's weights on one device.
#[derive(burn::module::Module, Debug)]
pub struct Network {
    embedding: Param<Tensor<2>>,
    /// The learned absolute position embedding (L, D), where the config asks for one.
    positions: Option<Param<Tensor<2>>>,
    /// The learned class embedding (classes + 1, D), where the config names classes; its
    /// last row is "no class".
    classes: Option<Param<Tensor<2>>>,
    sigma_in: Linear,
    sigma_out: Linear,
    blocks: Vec<Block>,
    norm_final: Param<Tensor<1>>,
    /// The output head in vocabulary blocks (consecutive output rows), so that no weight
    /// exceeds a device's largest binding; one block where there is no such limit.
    output: Vec<Linear>,
    output_ada_ln: Linear,
    /// Stored `rotary_emb.inv_freq` (Dh/2 values).
    inv_freq: Vec<f32>,
    subtokens: usize,
    length: usize,
    freq_size: usize,
    eps: f64,
}

/// Per-model constants derived from the weights: c, all modulation vectors, RoPE tables.
#[derive(Debug, Clone)]
pub struct NetworkConstants {
    /// Conditioning vector c, (1, cond).
    pub cond: Tensor<2>,
    /// Modulation of each block.
    pub blocks: Vec<BlockModulation>,
    /// Final layer's (shift ‖ scale), (1, 2D).
    pub final_modulation: Tensor<2>,
    /// RoPE cos/sin tables.
    pub rope: RopeTables,
}

impl Network {
    /// Reads every tensor the config implies from `weights`, checking names and shapes. The
    /// output head is split into blocks of at most `head_rows` vocabulary rows. f16 weights
    /// are expanded on the device where it runs the shaders (see [`Upload`]).
    pub fn load(config: &ModelConfig, weights: &mut WeightFile, device: &Device, head_rows: usize) -> Result<Self> {
        let up = Upload::new(device);
        let d = config.hidden_size;
        let c = config.cond_dim;
        let f = config.frequency_embedding_size;
        let shape = BlockShape {
            hidden: d,
            heads: config.n_heads,
            cond: c,
            mlp: config.mlp_ratio * d,
            eps: config.layer_norm_eps,
        };
        let embedding = weights.take("vocab_embed.embedding", &[config.embedding_rows()?, config.embedding_dim()])?;
        let embedding = up.tensor::<2>(embedding)?;
        let positions = if config.position_embedding {
            let table = weights.take(POSITION_EMBEDDING, &[config.length, d])?;
            Some(Param::from_tensor(up.tensor::<2>(table)?))
        } else {
            None
        };
        let classes = match config.class_rows() {
            0 => None,
            rows => Some(Param::from_tensor(up.tensor::<2>(weights.take(CLASS_EMBEDDING, &[rows, d])?)?)),
        };
        let sigma_in = Linear::load(
            weights.take("sigma_map.mlp.0.weight", &[c, f])?,
            Some(weights.take("sigma_map.mlp.0.bias", &[c])?),
            &up,
        )?;
        let sigma_out = Linear::load(
            weights.take("sigma_map.mlp.2.weight", &[c, c])?,
            Some(weights.take("sigma_map.mlp.2.bias", &[c])?),
            &up,
        )?;
        let blocks = (0..config.n_blocks).map(|i| Block::load(weights, i, shape, &up)).collect::<Result<Vec<_>>>()?;
        let norm_final = up.tensor::<1>(weights.take("output_layer.norm_final.weight", &[d])?)?;
        let output_weight = weights.take("output_layer.linear.weight", &[config.output_width(), d])?;
        let output_bias = weights.take("output_layer.linear.bias", &[config.output_width()])?;
        let head_rows = head_rows.max(1);
        let output = (0..config.output_width())
            .step_by(head_rows)
            .map(|start| {
                let bias = output_bias.rows(start, head_rows);
                Linear::load(output_weight.rows(start, head_rows), Some(bias), &up)
            })
            .collect::<Result<Vec<_>>>()?;
        drop((output_weight, output_bias));
        let output_ada_ln = Linear::load(
            weights.take("output_layer.adaLN_modulation.weight", &[2 * d, c])?,
            Some(weights.take("output_layer.adaLN_modulation.bias", &[2 * d])?),
            &up,
        )?;
        let half_head = config.head_dim() / 2;
        let inv_freq = match weights.take("rotary_emb.inv_freq", &[half_head]) {
            Ok(t) => t.into_host().data,
            Err(PrimeError::MissingTensor(_)) => default_inv_freq(config.head_dim(), config.rope_base),
            Err(e) => return Err(e),
        };
        Ok(Self {
            embedding: Param::from_tensor(embedding),
            positions,
            classes,
            sigma_in,
            sigma_out,
            blocks,
            norm_final: Param::from_tensor(norm_final),
            output,
            output_ada_ln,
            inv_freq,
            subtokens: config.subtokens,
            length: config.length,
            freq_size: f,
            eps: config.layer_norm_eps,
        })
    }

    /// Computes the per-model constants (c from σ = 0, modulations, RoPE tables).
    pub fn constants(&self) -> NetworkConstants {
        let device = self.embedding.val().device();
        let half = self.freq_size / 2;
        // Sinusoid at σ = 0: cos(0) = 1 for the first half, sin(0) = 0 for the second.
        let sinusoid: Vec<f32> = (0..self.freq_size).map(|i| if i < half { 1.0 } else { 0.0 }).collect();
        let sinusoid = Tensor::<2>::from_data(TensorData::new(sinusoid, [1, self.freq_size]), &device);
        let cond = silu(self.sigma_out.forward(silu(self.sigma_in.forward(sinusoid))));
        NetworkConstants {
            blocks: self.blocks.iter().map(|b| b.modulation(&cond)).collect(),
            final_modulation: self.output_ada_ln.forward(cond.clone()),
            rope: RopeTables::new(&self.inv_freq, self.length, &device),
            cond,
        }
    }

    /// Every tensor under its official name and in PyTorch layout, in the official parameter
    /// order, followed by the `rotary_emb.inv_freq` buffer: what [`Network::load`] reads.
    pub fn export(&self) -> Result<Vec<(String, HostTensor)>> {
        let mut out = Vec::new();
        out.push(("vocab_embed.embedding".to_string(), param_to_host(&self.embedding, "the embedding")?));
        if let Some(positions) = &self.positions {
            out.push((POSITION_EMBEDDING.to_string(), param_to_host(positions, "the position embedding")?));
        }
        if let Some(classes) = &self.classes {
            out.push((CLASS_EMBEDDING.to_string(), param_to_host(classes, "the class embedding")?));
        }
        export_linear(&mut out, "sigma_map.mlp.0", &self.sigma_in)?;
        export_linear(&mut out, "sigma_map.mlp.2", &self.sigma_out)?;
        for (i, block) in self.blocks.iter().enumerate() {
            block.export(i, &mut out)?;
        }
        out.push((
            "output_layer.norm_final.weight".to_string(),
            param_to_host(&self.norm_final, "the final layer-norm weight")?,
        ));
        let mut head = Vec::new();
        for part in &self.output {
            let (w, b) = part.to_host()?;
            head.push((w, b.ok_or_else(|| PrimeError::Input("the output head has no bias".into()))?));
        }
        let width = head.iter().map(|(w, _)| w.shape[0]).sum();
        let d = head.first().map_or(0, |(w, _)| w.shape[1]);
        let (weights, biases): (Vec<_>, Vec<_>) = head.into_iter().map(|(w, b)| (w.data, b.data)).unzip();
        out.push((
            "output_layer.linear.weight".to_string(),
            HostTensor { shape: vec![width, d], data: weights.concat() },
        ));
        out.push(("output_layer.linear.bias".to_string(), HostTensor { shape: vec![width], data: biases.concat() }));
        export_linear(&mut out, "output_layer.adaLN_modulation", &self.output_ada_ln)?;
        let half = self.inv_freq.len();
        out.push(("rotary_emb.inv_freq".to_string(), HostTensor { shape: vec![half], data: self.inv_freq.clone() }));
        Ok(out)
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.embedding.val().device()
    }

    /// Sequence length L in tokens.
    pub fn length(&self) -> usize {
        self.length
    }

    /// Runs the network on sub-token ids (B, ℓ·L) and returns logits (B, L, V_out); a
    /// class-conditioned network is told "no class".
    ///
    /// Ids must already be validated (in `[0, b]`). With `trace`, intermediates are recorded
    /// under the golden files' names.
    pub fn forward(&self, k: &NetworkConstants, ids: Tensor<2, Int>, trace: Option<&mut Trace>) -> Tensor<3> {
        let [batch, n] = ids.dims();
        let logits = self.head(self.hidden(k, ids, &[], trace));
        let width = logits.dims()[1];
        logits.reshape([batch, n / self.subtokens, width])
    }

    /// The output head on rows of [`Network::hidden`]: logits (rows, V_out).
    pub fn head(&self, x: Tensor<2>) -> Tensor<2> {
        match &self.output[..] {
            [whole] => whole.forward(x),
            parts => Tensor::cat(parts.iter().map(|p| p.forward(x.clone())).collect(), 1),
        }
    }

    /// The output head's vocabulary blocks, in order (their outputs side by side are the
    /// logits).
    pub fn output_head(&self) -> &[Linear] {
        &self.output
    }

    /// The row of the class embedding that stands for "no class" (`None`: the network is not
    /// class-conditioned).
    pub fn no_class(&self) -> Option<u32> {
        self.classes.as_ref().map(|t| t.dims()[0] as u32 - 1)
    }

    /// Runs the network up to the output head: the final layer's normalised, modulated hidden
    /// state (B·L, D) of sub-token ids (B, ℓ·L). A class-conditioned network takes each
    /// sequence's class from `classes` (B rows of the class embedding, checked by the caller;
    /// empty: "no class" for all); other networks ignore it. See [`Network::forward`].
    pub fn hidden(
        &self,
        k: &NetworkConstants,
        ids: Tensor<2, Int>,
        classes: &[u32],
        mut trace: Option<&mut Trace>,
    ) -> Tensor<2> {
        let [batch, n] = ids.dims();
        let length = n / self.subtokens;
        let emb = self.embedding.val().select(0, ids.reshape([batch * n]));
        let d = emb.dims()[1] * self.subtokens;
        let mut x = emb.reshape([batch * length, d]);
        if let Some(positions) = &self.positions {
            let table = positions.val().unsqueeze_dim::<3>(0);
            x = (x.reshape([batch, length, d]) + table).reshape([batch * length, d]);
        }
        if let (Some(table), Some(none)) = (&self.classes, self.no_class()) {
            let rows: Vec<i32> =
                if classes.is_empty() { vec![none as i32; batch] } else { classes.iter().map(|&c| c as i32).collect() };
            let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [batch]), &x.device());
            let per_sequence = table.val().select(0, rows).unsqueeze_dim::<3>(1);
            x = (x.reshape([batch, length, d]) + per_sequence).reshape([batch * length, d]);
        }
        if let Some(t) = trace.as_deref_mut() {
            t.record("embed", x.clone().reshape([batch, length, d]));
            t.record("cond", k.cond.clone().repeat_dim(0, batch));
            t.record("final_adaln", k.final_modulation.clone().repeat_dim(0, batch));
            t.record("rope_cos", k.rope.cos.clone().reshape([self.length, self.inv_freq.len()]));
            t.record("rope_sin", k.rope.sin.clone().reshape([self.length, self.inv_freq.len()]));
        }
        for (i, (block, m)) in self.blocks.iter().zip(&k.blocks).enumerate() {
            if let Some(t) = trace.as_deref_mut() {
                t.record(&format!("block_{i}_adaln"), m.all.clone().repeat_dim(0, batch));
            }
            x = block.forward(x, m, &k.rope, batch, trace.as_deref_mut().map(|t| (t, i)));
            if let Some(t) = trace.as_deref_mut() {
                t.record(&format!("block_{i}_out"), x.clone().reshape([batch, length, d]));
            }
        }
        let parts = k.final_modulation.clone().chunk(2, 1);
        let (shift, scale) = (&parts[0], &parts[1]);
        modulate(layer_norm(x, &self.norm_final, self.eps), shift, scale)
    }
}

/// Every trained parameter of the network `config` describes, under its official name with its
/// PyTorch shape, in the official parameter order (the order of `model.parameters()`, which is
/// the order of an EMA's `shadow_params`); a position and a class embedding, which the
/// official networks lack, follow the token embedding. The RoPE buffer `rotary_emb.inv_freq` is not a parameter
/// and is not listed.
pub fn parameter_shapes(config: &ModelConfig) -> Result<Vec<(String, Vec<usize>)>> {
    config.validate()?;
    let (d, c, f) = (config.hidden_size, config.cond_dim, config.frequency_embedding_size);
    let mlp = config.mlp_ratio * d;
    let mut shapes: Vec<(String, Vec<usize>)> =
        vec![("vocab_embed.embedding".into(), vec![config.embedding_rows()?, config.embedding_dim()])];
    if config.position_embedding {
        shapes.push((POSITION_EMBEDDING.into(), vec![config.length, d]));
    }
    if !config.classes.is_empty() {
        shapes.push((CLASS_EMBEDDING.into(), vec![config.class_rows(), d]));
    }
    shapes.extend([
        ("sigma_map.mlp.0.weight".into(), vec![c, f]),
        ("sigma_map.mlp.0.bias".into(), vec![c]),
        ("sigma_map.mlp.2.weight".into(), vec![c, c]),
        ("sigma_map.mlp.2.bias".into(), vec![c]),
    ]);
    for i in 0..config.n_blocks {
        let p = |n: &str| format!("blocks.{i}.{n}");
        shapes.extend([
            (p("norm1.weight"), vec![d]),
            (p("attn_qkv.weight"), vec![3 * d, d]),
            (p("attn_out.weight"), vec![d, d]),
            (p("norm2.weight"), vec![d]),
            (p("mlp.0.weight"), vec![mlp, d]),
            (p("mlp.0.bias"), vec![mlp]),
            (p("mlp.2.weight"), vec![d, mlp]),
            (p("mlp.2.bias"), vec![d]),
            (p("adaLN_modulation.weight"), vec![6 * d, c]),
            (p("adaLN_modulation.bias"), vec![6 * d]),
        ]);
    }
    let out = config.output_width();
    shapes.extend([
        ("output_layer.norm_final.weight".into(), vec![d]),
        ("output_layer.linear.weight".into(), vec![out, d]),
        ("output_layer.linear.bias".into(), vec![out]),
        ("output_layer.adaLN_modulation.weight".into(), vec![2 * d, c]),
        ("output_layer.adaLN_modulation.bias".into(), vec![2 * d]),
    ]);
    Ok(shapes)
}

/// Name of the learned absolute position embedding (L, D) in a weight file (not an official
/// tensor: see [`ModelConfig::position_embedding`]).
pub const POSITION_EMBEDDING: &str = "position_embedding";

/// Name of the learned class embedding (classes + 1, D) in a weight file (not an official
/// tensor: see [`ModelConfig::classes`]).
pub const CLASS_EMBEDDING: &str = "class_embedding";

/// `1/base^(2k/Dh)` in f32, used only when a weight file lacks the stored buffer.
fn default_inv_freq(head_dim: usize, base: f64) -> Vec<f32> {
    (0..head_dim / 2).map(|k| (1.0 / base.powf((2 * k) as f64 / head_dim as f64)) as f32).collect()
}
