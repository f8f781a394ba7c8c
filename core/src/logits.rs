//! One sequence's network output, held as row blocks, and what a network call is asked for.
//!
//! Only positions that still have a masked sub-token are ever drawn from, so a network call
//! names them ([`NetworkInput::rows`]) and the output head runs on those rows only (gathered
//! into one product): as a generation goes on, more rows are known and their logits (V values
//! each) are not computed. Each block of an output names the position of each of its rows.
//!
//! A GPU also binds a storage buffer only up to a limit (128 MiB on lavapipe and in many
//! browsers), and an official-size model's L × V logits (1024 × 50257 f32 = 206 MB) are larger.
//! So the rows come in blocks, each within the limit, and every consumer (the read-back, the
//! draw, the recorded candidates) walks the blocks. Where there is no limit (the CPU) and every
//! row is asked for, the output is one block.

use burn::tensor::{Int, Tensor};

use crate::error::{PrimeError, Result};

/// What a network call is asked for: one sequence's state and the positions whose logits are
/// needed.
#[derive(Debug, Clone)]
pub struct NetworkInput {
    /// The sub-token state (ℓ·L ids in `[0, b]`).
    pub state: Tensor<1, Int>,
    /// Positions whose logits are needed, ascending. A network may compute more rows.
    pub rows: Vec<u32>,
    /// The class the sequence is conditioned on (a class-conditioned model only; `None`: no
    /// class).
    pub class: Option<u32>,
    /// Classifier-free guidance scale w where a class is given (see
    /// [`crate::SamplerSettings::guidance`]); 0: none.
    pub guidance: f32,
}

/// Logits of one sequence as row blocks; the rows of positions no block holds were not
/// computed.
#[derive(Debug, Clone)]
pub struct Logits {
    blocks: Vec<LogitsBlock>,
}

/// One block of rows and the sequence position of each.
#[derive(Debug, Clone)]
pub struct LogitsBlock {
    /// Position of each row, ascending.
    pub positions: Vec<u32>,
    /// The rows (rows × V_out).
    pub rows: Tensor<2>,
}

impl Logits {
    /// Logits of every position, as one block.
    pub fn whole(logits: Tensor<2>) -> Self {
        let positions = (0..logits.dims()[0] as u32).collect();
        Self { blocks: vec![LogitsBlock { positions, rows: logits }] }
    }

    /// Logits from blocks. Fails on no blocks, blocks of different widths, a block whose
    /// positions do not match its rows, or positions not ascending across the blocks.
    pub fn from_blocks(blocks: Vec<LogitsBlock>) -> Result<Self> {
        let width =
            blocks.first().ok_or_else(|| PrimeError::Input("logits without a row block".into()))?.rows.dims()[1];
        let mut next = 0;
        for b in &blocks {
            let [rows, w] = b.rows.dims();
            if w != width {
                return Err(PrimeError::Input(format!("logits blocks of widths {width} and {w}")));
            }
            if rows != b.positions.len() {
                return Err(PrimeError::Input(format!(
                    "a logits block of {rows} rows names {} positions",
                    b.positions.len()
                )));
            }
            for &i in &b.positions {
                if i < next {
                    return Err(PrimeError::Input(format!("logits positions are not ascending at {i}")));
                }
                next = i + 1;
            }
        }
        Ok(Self { blocks })
    }

    /// Classifier-free guidance: `self + scale · (self − unconditioned)`, block by block, where
    /// `self` is a sequence's logits with its class and `unconditioned` the same call without
    /// it (same rows). Fails if their rows differ.
    pub fn guided(self, unconditioned: Logits, scale: f32) -> Result<Self> {
        if self.layout() != unconditioned.layout() {
            return Err(PrimeError::Input("guidance: the logits with and without the class hold other rows".into()));
        }
        let blocks = self
            .blocks
            .into_iter()
            .zip(unconditioned.blocks)
            .map(|(c, u)| LogitsBlock { rows: c.rows.clone() * (1.0 + scale) - u.rows * scale, positions: c.positions })
            .collect();
        Self::from_blocks(blocks)
    }

    /// Number of blocks.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// The blocks, in order.
    pub fn blocks(&self) -> impl Iterator<Item = &LogitsBlock> {
        self.blocks.iter()
    }

    /// The positions of the rows held, in row order (the blocks' in turn).
    pub fn layout(&self) -> RowLayout {
        RowLayout { positions: self.blocks.iter().flat_map(|b| b.positions.iter().copied()).collect() }
    }

    /// The blocks flattened (row-major), in order: what a read-back concatenates.
    pub fn flat_blocks(&self) -> Vec<Tensor<1>> {
        self.blocks
            .iter()
            .map(|b| {
                let [rows, width] = b.rows.dims();
                b.rows.clone().reshape([rows * width])
            })
            .collect()
    }
}

/// Which positions a network output's rows hold, in row order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowLayout {
    positions: Vec<u32>,
}

impl RowLayout {
    /// Rows held in all.
    pub fn rows(&self) -> usize {
        self.positions.len()
    }

    /// The position of the n-th row held.
    pub fn position_of(&self, n: usize) -> Option<usize> {
        self.positions.get(n).map(|&i| i as usize)
    }
}

/// A network output read back to the host: its rows, concatenated, and where they lie.
#[derive(Debug, Clone)]
pub struct HostLogits {
    values: Vec<f32>,
    width: usize,
    /// Index of each position's row (`usize::MAX`: not held), for O(1) lookups per draw.
    row_index: Vec<usize>,
}

impl HostLogits {
    /// The values read back for an output of `layout` over a sequence of `length` positions and
    /// `width` entries per row. Fails on a count that does not match, or a NaN or +∞ (naming
    /// its position).
    pub fn new(values: Vec<f32>, width: usize, layout: RowLayout, length: usize) -> Result<Self> {
        let rows = layout.rows();
        if values.len() != rows * width {
            return Err(PrimeError::Input(format!(
                "network returned {} logits, expected {rows} rows × {width}",
                values.len()
            )));
        }
        if let Some(n) = values.iter().position(|x| x.is_nan() || *x == f32::INFINITY) {
            return Err(PrimeError::NonFinite { position: layout.position_of(n / width).unwrap_or(0) });
        }
        let mut row_index = vec![usize::MAX; length];
        for (n, &i) in layout.positions.iter().enumerate() {
            if let Some(index) = row_index.get_mut(i as usize) {
                *index = n;
            }
        }
        Ok(Self { values, width, row_index })
    }

    /// Position i's row, if the output holds it.
    pub fn row(&self, i: usize) -> Result<&[f32]> {
        match self.row_index.get(i) {
            Some(&r) if r != usize::MAX => Ok(&self.values[r * self.width..(r + 1) * self.width]),
            _ => Err(PrimeError::Input(format!("the network output has no logits for position {i}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_maps_rows_to_positions() {
        let layout = RowLayout { positions: vec![2, 3, 4, 9] };
        assert_eq!(layout.rows(), 4);
        assert_eq!(
            (0..5).map(|n| layout.position_of(n)).collect::<Vec<_>>(),
            [Some(2), Some(3), Some(4), Some(9), None]
        );
        let host = HostLogits::new((0..8).map(|v| v as f32).collect(), 2, layout.clone(), 12).unwrap();
        assert_eq!(host.row(3).unwrap(), &[2.0, 3.0]);
        assert_eq!(host.row(9).unwrap(), &[6.0, 7.0]);
        assert!(host.row(5).is_err() && host.row(40).is_err());
        let mut bad: Vec<f32> = vec![0.0; 8];
        bad[6] = f32::NAN;
        assert!(matches!(HostLogits::new(bad, 2, layout.clone(), 12), Err(PrimeError::NonFinite { position: 9 })));
        assert!(HostLogits::new(vec![0.0; 7], 2, layout, 12).is_err());
    }
}
