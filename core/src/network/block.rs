//! One DDiT block: adaLN-modulated attention with RoPE, then an adaLN-modulated GELU MLP.

use burn::module::Param;
use burn::tensor::Tensor;

use super::fused;
use super::layers::{Linear, export_linear, layer_norm, modulate, param_to_host};
use super::rope::RopeTables;
use super::trace::Trace;
use super::upload::Upload;
use crate::error::Result;
use crate::weights::{HostTensor, WeightFile};

/// Weights of one block.
#[derive(burn::module::Module, Debug)]
pub struct Block {
    norm1: Param<Tensor<1>>,
    attn_qkv: Linear,
    attn_out: Linear,
    norm2: Param<Tensor<1>>,
    mlp_in: Linear,
    mlp_out: Linear,
    ada_ln: Linear,
    n_heads: usize,
    eps: f64,
}

/// The six modulation vectors of a block, each (1, D): computed once per model from c.
#[derive(Debug, Clone)]
pub struct BlockModulation {
    shift_msa: Tensor<2>,
    scale_msa: Tensor<2>,
    gate_msa: Tensor<2>,
    shift_mlp: Tensor<2>,
    scale_mlp: Tensor<2>,
    gate_mlp: Tensor<2>,
    /// All six, concatenated (1, 6D), as the official adaLN output.
    pub all: Tensor<2>,
}

/// Sizes a block needs to check and slice its weights.
#[derive(Debug, Clone, Copy)]
pub struct BlockShape {
    /// Hidden size D.
    pub hidden: usize,
    /// Heads.
    pub heads: usize,
    /// Conditioning width.
    pub cond: usize,
    /// MLP width.
    pub mlp: usize,
    /// Layer-norm epsilon.
    pub eps: f64,
}

impl Block {
    /// Reads block `index` from the weight file, checking every shape.
    pub fn load(weights: &mut WeightFile, index: usize, s: BlockShape, up: &Upload<'_>) -> Result<Self> {
        let p = |n: &str| format!("blocks.{index}.{n}");
        let d = s.hidden;
        Ok(Self {
            norm1: Param::from_tensor(up.tensor(weights.take(&p("norm1.weight"), &[d])?)?),
            attn_qkv: Linear::load(weights.take(&p("attn_qkv.weight"), &[3 * d, d])?, None, up)?,
            attn_out: Linear::load(weights.take(&p("attn_out.weight"), &[d, d])?, None, up)?,
            norm2: Param::from_tensor(up.tensor(weights.take(&p("norm2.weight"), &[d])?)?),
            mlp_in: Linear::load(
                weights.take(&p("mlp.0.weight"), &[s.mlp, d])?,
                Some(weights.take(&p("mlp.0.bias"), &[s.mlp])?),
                up,
            )?,
            mlp_out: Linear::load(
                weights.take(&p("mlp.2.weight"), &[d, s.mlp])?,
                Some(weights.take(&p("mlp.2.bias"), &[d])?),
                up,
            )?,
            ada_ln: Linear::load(
                weights.take(&p("adaLN_modulation.weight"), &[6 * d, s.cond])?,
                Some(weights.take(&p("adaLN_modulation.bias"), &[6 * d])?),
                up,
            )?,
            n_heads: s.heads,
            eps: s.eps,
        })
    }

    /// Appends this block's tensors, under the official names of block `index`, to `out`.
    pub fn export(&self, index: usize, out: &mut Vec<(String, HostTensor)>) -> Result<()> {
        let p = |n: &str| format!("blocks.{index}.{n}");
        out.push((p("norm1.weight"), param_to_host(&self.norm1, "a layer-norm weight")?));
        export_linear(out, &p("attn_qkv"), &self.attn_qkv)?;
        export_linear(out, &p("attn_out"), &self.attn_out)?;
        out.push((p("norm2.weight"), param_to_host(&self.norm2, "a layer-norm weight")?));
        export_linear(out, &p("mlp.0"), &self.mlp_in)?;
        export_linear(out, &p("mlp.2"), &self.mlp_out)?;
        export_linear(out, &p("adaLN_modulation"), &self.ada_ln)
    }

    /// The modulation vectors for conditioning c (1, cond).
    pub fn modulation(&self, cond: &Tensor<2>) -> BlockModulation {
        let all = self.ada_ln.forward(cond.clone());
        let parts = all.clone().chunk(6, 1);
        let [shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp]: [Tensor<2>; 6] =
            parts.try_into().unwrap_or_else(|_| unreachable!("chunk(6) yields six parts"));
        BlockModulation { shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp, all }
    }

    /// Applies the block to the residual stream x of shape (B·L, D) for `batch` rows.
    pub fn forward(
        &self,
        x: Tensor<2>,
        m: &BlockModulation,
        rope: &RopeTables,
        batch: usize,
        mut trace: Option<(&mut Trace, usize)>,
    ) -> Tensor<2> {
        let [rows, d] = x.dims();
        let length = rows / batch;
        let h = self.n_heads;

        let normed = layer_norm(x.clone(), &self.norm1, self.eps);
        if let Some((t, i)) = trace.as_mut() {
            t.record(&format!("block_{i}_norm1"), normed.clone().reshape([batch, length, d]));
        }
        let hmod = modulate(normed, &m.shift_msa, &m.scale_msa);
        let [q, k, v] = fused::split_rotate(self.attn_qkv.forward(hmod), batch, h, rope);
        if let Some((t, i)) = trace.as_mut() {
            let stacked: Vec<Tensor<5>> =
                [&q, &k, &v].iter().map(|x| (*x).clone().swap_dims(1, 2).unsqueeze_dim::<5>(2)).collect();
            t.record(&format!("block_{i}_qkv_rope"), Tensor::cat(stacked, 2));
        }
        // softmax(q·kᵀ / √dh)·v: Burn's fused op, or one head at a time on the CPU (so the H·L²
        // score matrix is never held whole).
        let attn = fused::attention(q, k, v);
        let attn = attn.swap_dims(1, 2).reshape([rows, d]);
        if let Some((t, i)) = trace.as_mut() {
            t.record(&format!("block_{i}_attn"), attn.clone().reshape([batch, length, d]));
        }
        let x = fused::gated_residual(x, &m.gate_msa, self.attn_out.forward(attn), None);

        let h2 = modulate(layer_norm(x.clone(), &self.norm2, self.eps), &m.shift_mlp, &m.scale_mlp);
        let hidden = fused::bias_gelu(self.mlp_in.product(h2), self.mlp_in.bias().as_ref());
        fused::gated_residual(x, &m.gate_mlp, self.mlp_out.product(hidden), self.mlp_out.bias().as_ref())
    }
}
