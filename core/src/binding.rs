//! Fitting a model into a device's largest storage binding.
//!
//! A GPU kernel binds each tensor it reads or writes as one storage buffer, and an adapter caps
//! such a binding (128 MiB on lavapipe and by default in browsers). An official-size model has
//! two tensors above that: the output head's weight (V × D f32 = 154 MB) and one sequence's
//! logits (L × V f32 = 206 MB). So the head is stored in vocabulary blocks and the logits are
//! written in row blocks ([`crate::Logits`]); every other weight must fit as it is, and a batch
//! is refused when its intermediates would not fit.

use crate::config::ModelConfig;
use crate::error::{PrimeError, Result};
use crate::network::parameter_shapes;

/// The name of the output head's weight, the one weight stored in blocks.
const HEAD_WEIGHT: &str = "output_layer.linear.weight";

/// How a model's large tensors are cut to fit a binding limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    /// The limit in bytes; `None` where there is none (the CPU).
    limit: Option<u64>,
    /// Vocabulary rows per output-head block.
    pub head_rows: usize,
    /// Positions per row block of one sequence's logits.
    pub logits_rows: usize,
}

fn megabytes(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

impl Blocking {
    /// No limit: one head block, one logits block.
    pub fn unlimited() -> Self {
        Self { limit: None, head_rows: usize::MAX, logits_rows: usize::MAX }
    }

    /// The blocking of `config`'s model under a binding limit of `limit` bytes. Fails, naming
    /// the tensor, if a weight other than the output head, or one row of the head or of the
    /// logits, does not fit.
    pub fn new(config: &ModelConfig, limit: Option<u64>) -> Result<Self> {
        let Some(limit) = limit else { return Ok(Self::unlimited()) };
        let too_large = |what: &str, bytes: u64| {
            PrimeError::Device(format!(
                "{what} ({}) exceeds the adapter's largest storage binding ({}); use --device cpu",
                megabytes(bytes),
                megabytes(limit)
            ))
        };
        for (name, shape) in parameter_shapes(config)? {
            let bytes = 4 * shape.iter().map(|&n| n as u64).product::<u64>();
            if name != HEAD_WEIGHT && bytes > limit {
                return Err(too_large(&format!("this model's weight `{name}` {shape:?}"), bytes));
            }
        }
        let rows_within = |row_bytes: u64, what: &str| {
            let rows = limit / row_bytes;
            if rows == 0 { Err(too_large(what, row_bytes)) } else { Ok(usize::try_from(rows).unwrap_or(usize::MAX)) }
        };
        let head_rows = rows_within(4 * config.hidden_size as u64, "one row of the output head")?;
        let logits_rows = rows_within(4 * config.output_width() as u64, "one row of logits")?;
        Ok(Self { limit: Some(limit), head_rows, logits_rows })
    }

    /// The binding limit in bytes, if there is one.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Blocks of the output head and row blocks of one sequence's logits, for `config`.
    pub fn block_counts(&self, config: &ModelConfig) -> (usize, usize) {
        (config.output_width().div_ceil(self.head_rows.max(1)), config.length.div_ceil(self.logits_rows.max(1)))
    }

    /// Checks that one network call on `batch` sequences keeps its intermediates (attention
    /// scores, MLP activations) within the limit.
    pub fn check_batch(&self, config: &ModelConfig, batch: usize) -> Result<()> {
        let Some(limit) = self.limit else { return Ok(()) };
        let (b, l) = (batch as u64, config.length as u64);
        let mlp = (config.mlp_ratio as u64).saturating_mul(config.hidden_size as u64);
        // Saturating: a batch near the top of its type is refused, not wrapped.
        let largest = [("attention scores", [b, config.n_heads as u64, l, l]), ("MLP activations", [b, l, mlp, 1])]
            .into_iter()
            .map(|(what, factors)| (what, factors.into_iter().fold(4, u64::saturating_mul)))
            .max_by_key(|&(_, bytes)| bytes);
        match largest {
            Some((what, bytes)) if bytes > limit => Err(PrimeError::Input(format!(
                "{batch} sequences at once need {what} of {}, above the adapter's largest storage binding ({}); \
                 run fewer at once (--batch) or use --device cpu",
                megabytes(bytes),
                megabytes(limit)
            ))),
            _ => Ok(()),
        }
    }

    /// Checks that the logits of `batch` sequences fit as one tensor (what a whole-output
    /// forward pass returns; sampling never needs that).
    pub fn check_whole_logits(&self, config: &ModelConfig, batch: usize) -> Result<()> {
        let Some(limit) = self.limit else { return Ok(()) };
        let bytes =
            [batch, config.length, config.output_width()].into_iter().fold(4u64, |n, f| n.saturating_mul(f as u64));
        if bytes > limit {
            return Err(PrimeError::Input(format!(
                "the logits of {batch} × {} positions × {} ({}) exceed the adapter's largest storage binding ({}) \
                 as one tensor; use --device cpu for a whole forward pass",
                config.length,
                config.output_width(),
                megabytes(bytes),
                megabytes(limit)
            )));
        }
        Ok(())
    }
}
