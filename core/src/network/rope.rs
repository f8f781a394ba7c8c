//! Rotary position embedding: non-interleaved rotate-half (GPT-NeoX) over token positions.

use burn::tensor::{Device, Tensor, TensorData};

/// cos/sin tables of shape (L, Dh/2): `cos(p · inv_freq_k)` in f32, as the official rotary.
#[derive(Debug, Clone)]
pub struct RopeTables {
    /// cos(p·inv_freq), (1, 1, L, Dh/2) for broadcasting over (B, H, L, Dh/2).
    pub cos: Tensor<4>,
    /// sin(p·inv_freq), (1, 1, L, Dh/2).
    pub sin: Tensor<4>,
}

/// Host values of the tables: (cos, sin), each row-major (L, Dh/2).
pub fn rope_values(inv_freq: &[f32], length: usize) -> (Vec<f32>, Vec<f32>) {
    let mut cos = Vec::with_capacity(length * inv_freq.len());
    let mut sin = Vec::with_capacity(length * inv_freq.len());
    for p in 0..length {
        for &f in inv_freq {
            let angle = p as f32 * f;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    (cos, sin)
}

impl RopeTables {
    /// Uploads the tables for `length` positions.
    pub fn new(inv_freq: &[f32], length: usize, device: &Device) -> Self {
        let half = inv_freq.len();
        let (cos, sin) = rope_values(inv_freq, length);
        let up = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [1, 1, length, half]), device);
        Self { cos: up(cos), sin: up(sin) }
    }

    /// Rotates x of shape (B, H, L, Dh): `[x1·cos − x2·sin, x2·cos + x1·sin]`.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let dh = x.dims()[3];
        let half = dh / 2;
        let x1 = x.clone().narrow(3, 0, half);
        let x2 = x.narrow(3, half, half);
        let r1 = x1.clone() * self.cos.clone() - x2.clone() * self.sin.clone();
        let r2 = x2 * self.cos.clone() + x1 * self.sin.clone();
        Tensor::cat(vec![r1, r2], 3)
    }
}
