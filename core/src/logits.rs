//! One sequence's network output, held as consecutive row blocks.
//!
//! A GPU binds a storage buffer only up to a limit (128 MiB on lavapipe and in many browsers),
//! and an official-size model's L × V logits (1024 × 50257 f32 = 206 MB) are larger. So the
//! network writes its output in blocks of whole rows, each within the limit, and every
//! consumer (the read-back, the draw, the recorded candidates) walks the blocks. Where there is
//! no limit (the CPU) the output is one block.

use burn::tensor::Tensor;

use crate::error::{PrimeError, Result};

/// Logits (L × V_out) of one sequence as row blocks, in order.
#[derive(Debug, Clone)]
pub struct Logits {
    blocks: Vec<Tensor<2>>,
}

/// One block and the sequence position of its first row.
#[derive(Debug, Clone)]
pub struct LogitsBlock {
    /// Position of the block's first row.
    pub first: usize,
    /// The rows (rows × V_out).
    pub rows: Tensor<2>,
}

impl Logits {
    /// Logits held as one block.
    pub fn whole(logits: Tensor<2>) -> Self {
        Self { blocks: vec![logits] }
    }

    /// Logits from row blocks, in order. Fails on no blocks or blocks of different widths.
    pub fn from_blocks(blocks: Vec<Tensor<2>>) -> Result<Self> {
        let width = blocks.first().ok_or_else(|| PrimeError::Input("logits without a row block".into()))?.dims()[1];
        if let Some(bad) = blocks.iter().find(|b| b.dims()[1] != width) {
            return Err(PrimeError::Input(format!("logits blocks of widths {width} and {}", bad.dims()[1])));
        }
        Ok(Self { blocks })
    }

    /// Number of rows (positions), L.
    pub fn rows(&self) -> usize {
        self.blocks.iter().map(|b| b.dims()[0]).sum()
    }

    /// Entries per row, V_out.
    pub fn width(&self) -> usize {
        self.blocks[0].dims()[1]
    }

    /// Number of blocks.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// The blocks with their first positions, in order.
    pub fn blocks(&self) -> impl Iterator<Item = LogitsBlock> + '_ {
        self.blocks.iter().scan(0, |first, rows| {
            let block = LogitsBlock { first: *first, rows: rows.clone() };
            *first += rows.dims()[0];
            Some(block)
        })
    }

    /// The blocks flattened (row-major), in order: what a read-back concatenates into L·V_out
    /// values.
    pub fn flat_blocks(&self) -> Vec<Tensor<1>> {
        self.blocks
            .iter()
            .map(|b| {
                let [rows, width] = b.dims();
                b.clone().reshape([rows * width])
            })
            .collect()
    }
}
