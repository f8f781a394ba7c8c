//! The static and per-launch parameters shared by the WGSL kernels and their twins.
//!
//! The shaders read one `u32` array, the parameter block. Its layout exists once, here:
//! [`KernelParams::header`] names each header word and gives its value, [`KernelParams::words`]
//! writes the block from it, and [`wgsl_constants`] generates the WGSL constants the shaders
//! index it with (`P_*` offsets, `FLAG_*` bits, `STREAM_*` ids), so the two cannot drift apart.

use crate::codec::SubTokenCodec;
use crate::error::{PrimeError, Result};
use crate::rng::Stream;

/// Words before the powers `b^(ℓ−1−j)` (which start at `P_POWERS`).
const HEADER_WORDS: usize = 14;
/// Flag bits of the `P_FLAGS` word.
const FLAG_CARRY_OVER: u32 = 1;
const FLAG_NOISE: u32 = 2;
const FLAG_CUTOFF: u32 = 4;
const FLAG_PLANNED: u32 = 8;
/// The flags as the WGSL names them.
const FLAGS: [(&str, u32); 4] = [
    ("FLAG_CARRY_OVER", FLAG_CARRY_OVER),
    ("FLAG_NOISE", FLAG_NOISE),
    ("FLAG_CUTOFF", FLAG_CUTOFF),
    ("FLAG_PLANNED", FLAG_PLANNED),
];
/// The streams the shaders draw from, as the WGSL names them.
const STREAMS: [(&str, Stream); 2] = [("STREAM_TOKEN", Stream::Token), ("STREAM_REVEAL", Stream::Reveal)];

/// The WGSL constants of the parameter block: each header word's offset, `P_POWERS`, the flag
/// bits and the stream ids.
pub fn wgsl_constants() -> String {
    let header = KernelParams::header_of(0, 0, 0, 0, 0, &Launch::default());
    let mut out = String::from("// Generated from core/src/kernels/params.rs.\n");
    for (offset, (name, _)) in header.iter().enumerate() {
        out.push_str(&format!("const {name}: u32 = {offset}u;\n"));
    }
    out.push_str(&format!("const P_POWERS: u32 = {HEADER_WORDS}u;\n"));
    for (name, bit) in FLAGS {
        out.push_str(&format!("const {name}: u32 = {bit}u;\n"));
    }
    for (name, stream) in STREAMS {
        out.push_str(&format!("const {name}: u32 = {}u;\n", stream as u32));
    }
    out
}

/// The per-launch values of a parameter block.
#[derive(Debug, Clone, Copy)]
pub struct Launch {
    /// Apply the carry-over consistency filter.
    pub carry_over: bool,
    /// Seed of the counter-based stream.
    pub seed: u64,
    /// Step of the stream key.
    pub step: u32,
    /// Stream of the key.
    pub stream: Stream,
    /// 1 / temperature.
    pub inv_temperature: f32,
    /// Reveal probability of a masked sub-token.
    pub reveal_probability: f32,
    /// Add Gumbel noise to the draw.
    pub noise: bool,
    /// Truncate the draw with per-position cutoffs.
    pub cutoff: bool,
    /// Reveal the slots planned for this step instead of drawing reveal decisions.
    pub planned: bool,
    /// Truncation cutoffs: keep at most this many candidates (0: no top-k).
    pub top_k: u32,
    /// Truncation cutoffs: the nucleus mass (1: no nucleus).
    pub top_p: f32,
}

impl Default for Launch {
    fn default() -> Self {
        Self {
            carry_over: true,
            seed: 0,
            step: 0,
            stream: Stream::Token,
            inv_temperature: 1.0,
            reveal_probability: 0.0,
            noise: false,
            cutoff: false,
            planned: false,
            top_k: 0,
            top_p: 1.0,
        }
    }
}

/// Sequence shape and codec constants of a kernel launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelParams {
    length: usize,
    width: usize,
    codec: SubTokenCodec,
    powers: Vec<u32>,
}

impl KernelParams {
    /// Parameters for `length` tokens and logits rows of `width` ≥ V entries. Fails if a
    /// code or a flat index does not fit in 31 bits.
    pub fn new(codec: &SubTokenCodec, length: usize, width: usize) -> Result<Self> {
        let l = codec.digits();
        let capacity = (0..l).try_fold(1u64, |acc, _| acc.checked_mul(u64::from(codec.base())));
        if capacity.is_none_or(|c| c > i32::MAX as u64) {
            return Err(PrimeError::Input(format!(
                "base {} with {l} digits exceeds the kernels' 31-bit codes",
                codec.base()
            )));
        }
        if width < codec.vocab() as usize {
            return Err(PrimeError::Input(format!("logits width {width} is below the vocabulary {}", codec.vocab())));
        }
        if length == 0 || (length as u64) * (width.max(l) as u64) > i32::MAX as u64 {
            return Err(PrimeError::Input(format!("sequence length {length} is outside what the kernels index")));
        }
        let powers = (0..l).map(|j| codec.digit_power(j) as u32).collect();
        Ok(Self { length, width, codec: codec.clone(), powers })
    }

    /// Tokens per sequence, L.
    pub fn length(&self) -> usize {
        self.length
    }

    /// Entries per logits row (V, or V + 1 for MDLM's mask class).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Sub-tokens per token, ℓ.
    pub fn digits(&self) -> usize {
        self.codec.digits()
    }

    /// The codec.
    pub fn codec(&self) -> &SubTokenCodec {
        &self.codec
    }

    /// `b^(ℓ−1−j)` for each digit slot j.
    pub fn powers(&self) -> &[u32] {
        &self.powers
    }

    /// Checks that a vector has `per_token · L` entries.
    pub fn check_len(&self, found: usize, per_token: usize, what: &str) -> Result<()> {
        let want = per_token * self.length;
        if found == want {
            Ok(())
        } else {
            Err(PrimeError::Input(format!("{what} has {found} entries, expected {want}")))
        }
    }

    /// The header words of one launch, named as the WGSL names them, in block order.
    fn header(&self, launch: &Launch) -> [(&'static str, u32); HEADER_WORDS] {
        let l = self.codec.digits() as u32;
        Self::header_of(self.length as u32, l, self.codec.base(), self.codec.vocab(), self.width as u32, launch)
    }

    fn header_of(
        length: u32,
        digits: u32,
        base: u32,
        vocab: u32,
        width: u32,
        launch: &Launch,
    ) -> [(&'static str, u32); HEADER_WORDS] {
        let Launch {
            carry_over,
            seed,
            step,
            stream,
            inv_temperature,
            reveal_probability,
            noise,
            cutoff,
            planned,
            top_k,
            top_p,
        } = *launch;
        let flags =
            [(carry_over, FLAG_CARRY_OVER), (noise, FLAG_NOISE), (cutoff, FLAG_CUTOFF), (planned, FLAG_PLANNED)]
                .iter()
                .filter(|(on, _)| *on)
                .fold(0, |acc, (_, bit)| acc | bit);
        [
            ("P_L", length),
            ("P_DIGITS", digits),
            ("P_BASE", base),
            ("P_VOCAB", vocab),
            ("P_WIDTH", width),
            ("P_SEED_LO", seed as u32),
            ("P_SEED_HI", (seed >> 32) as u32),
            ("P_STEP", step),
            ("P_INV_TEMP", inv_temperature.to_bits()),
            ("P_REVEAL_P", reveal_probability.to_bits()),
            ("P_FLAGS", flags),
            ("P_STREAM", stream as u32),
            ("P_TOP_K", top_k),
            ("P_TOP_P", top_p.to_bits()),
        ]
    }

    /// The parameter block of one launch: the header words, then the powers.
    pub fn words(&self, launch: &Launch) -> Vec<u32> {
        let mut words: Vec<u32> = self.header(launch).iter().map(|&(_, w)| w).collect();
        words.extend(&self.powers);
        words
    }
}
