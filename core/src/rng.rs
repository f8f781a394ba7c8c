//! One seeded, counter-based random stream: Threefry-4x32 with 20 rounds (Salmon et al., SC'11).
//!
//! Every draw is a pure function of `(seed, stream, step, position, index)`, so a CPU loop, a GPU
//! shader and the browser produce the same numbers in any order. Only 32-bit additions, rotations
//! and xors are used, which WGSL has.

/// Key-schedule parity constant of Threefish-256 / Threefry (32-bit words).
const PARITY: u32 = 0x1BD1_1BDA;
/// Rotation amounts of Threefry-4x32, two per round, cycling every 8 rounds.
const ROTATIONS: [[u32; 2]; 8] = [[10, 26], [11, 21], [13, 27], [23, 5], [6, 20], [17, 11], [25, 10], [18, 20]];

/// The Threefry-4x32 block function with `rounds` rounds.
pub fn threefry4x32(counter: [u32; 4], key: [u32; 4], rounds: usize) -> [u32; 4] {
    let ks = [key[0], key[1], key[2], key[3], PARITY ^ key[0] ^ key[1] ^ key[2] ^ key[3]];
    let mut x = [
        counter[0].wrapping_add(ks[0]),
        counter[1].wrapping_add(ks[1]),
        counter[2].wrapping_add(ks[2]),
        counter[3].wrapping_add(ks[3]),
    ];
    for r in 0..rounds {
        let [ra, rb] = ROTATIONS[r % 8];
        if r % 2 == 0 {
            x[0] = x[0].wrapping_add(x[1]);
            x[1] = x[1].rotate_left(ra) ^ x[0];
            x[2] = x[2].wrapping_add(x[3]);
            x[3] = x[3].rotate_left(rb) ^ x[2];
        } else {
            x[0] = x[0].wrapping_add(x[3]);
            x[3] = x[3].rotate_left(ra) ^ x[0];
            x[2] = x[2].wrapping_add(x[1]);
            x[1] = x[1].rotate_left(rb) ^ x[2];
        }
        if r % 4 == 3 {
            let s = r / 4 + 1;
            for (i, xi) in x.iter_mut().enumerate() {
                *xi = xi.wrapping_add(ks[(s + i) % 5]);
            }
            x[3] = x[3].wrapping_add(s as u32);
        }
    }
    x
}

/// What a draw is used for; each purpose is an independent stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stream {
    /// Gumbel noise of the x0 draw; `index` is the vocabulary id.
    Token = 1,
    /// The reveal decision of a masked sub-token; `index` is the digit slot j.
    Reveal = 2,
    /// Initial weights of a training run; `position` is the tensor, `index` the element.
    Init = 3,
    /// Training crops and diffusion times; `position` is the batch row.
    TrainSample = 4,
    /// Training masks; `position` is the batch row, `index` the sub-token.
    TrainMask = 5,
    /// Up-front reveal steps of the event-driven sampler; `index` is the digit slot j.
    RevealStep = 6,
}

/// A seeded counter-based generator keyed on (seed, step, position, index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterRng {
    seed: u64,
}

impl CounterRng {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The raw 32-bit word for (stream, step, position, index).
    ///
    /// One Threefry block yields four words: indices `4k..4k+4` share the block with counter
    /// `(step, position, k, 0)`.
    pub fn word(&self, stream: Stream, step: u32, position: u32, index: u32) -> u32 {
        self.block(stream, step, position, index >> 2)[(index & 3) as usize]
    }

    /// The four words of indices `4·block .. 4·block + 4` for (stream, step, position).
    pub fn block(&self, stream: Stream, step: u32, position: u32, block: u32) -> [u32; 4] {
        let key = [self.seed as u32, (self.seed >> 32) as u32, stream as u32, 0];
        threefry4x32([step, position, block, 0], key, 20)
    }

    /// A uniform in the open interval (0, 1), exact in f32: `(⌊w/2^9⌋ + ½)·2^−23`.
    pub fn uniform(&self, stream: Stream, step: u32, position: u32, index: u32) -> f32 {
        word_to_uniform(self.word(stream, step, position, index))
    }

    /// Standard Gumbel noise `−ln(−ln u)` for (step, position, token).
    pub fn gumbel(&self, step: u32, position: u32, token: u32) -> f32 {
        uniform_to_gumbel(self.uniform(Stream::Token, step, position, token))
    }
}

/// Gumbel noise of one (step, position) for increasing token ids, computing each Threefry block
/// once for the four ids it serves.
#[derive(Debug)]
pub struct GumbelRow {
    rng: CounterRng,
    step: u32,
    position: u32,
    cached: Option<(u32, [u32; 4])>,
}

impl GumbelRow {
    /// The noise row of (step, position).
    pub fn new(rng: CounterRng, step: u32, position: u32) -> Self {
        Self { rng, step, position, cached: None }
    }

    /// Noise for `token`; equals [`CounterRng::gumbel`] for the same key.
    pub fn get(&mut self, token: u32) -> f32 {
        let block = token >> 2;
        let words = match self.cached {
            Some((b, w)) if b == block => w,
            _ => {
                let w = self.rng.block(Stream::Token, self.step, self.position, block);
                self.cached = Some((block, w));
                w
            }
        };
        uniform_to_gumbel(word_to_uniform(words[(token & 3) as usize]))
    }
}

/// Maps a 32-bit word to (0, 1): 23 random bits, centred in their cell, never 0 or 1.
pub fn word_to_uniform(word: u32) -> f32 {
    ((word >> 9) as f32 + 0.5) * (1.0 / 8_388_608.0)
}

/// Standard Gumbel noise from a uniform in (0, 1), computed in f32.
pub fn uniform_to_gumbel(u: f32) -> f32 {
    -(-u.ln()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors published with Random123 (`kat_vectors`, threefry4x32, 20 rounds).
    #[test]
    fn threefry_known_answers() {
        assert_eq!(threefry4x32([0; 4], [0; 4], 20), [0x9c6ca96a, 0xe17eae66, 0xfc10ecd4, 0x5256a7d8]);
        assert_eq!(threefry4x32([u32::MAX; 4], [u32::MAX; 4], 20), [0x2a881696, 0x57012287, 0xf6c7446e, 0xa16a6732]);
        assert_eq!(
            threefry4x32(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0, 0x082efa98, 0xec4e6c89],
                20
            ),
            [0x59cd1dbb, 0xb8879579, 0x86b5d00c, 0xac8b6d84]
        );
    }

    #[test]
    fn gumbel_row_equals_single_draws() {
        let rng = CounterRng::new(99);
        let mut row = GumbelRow::new(rng, 4, 17);
        for token in [0u32, 1, 2, 3, 4, 9, 10, 300, 301, 5000] {
            assert_eq!(row.get(token).to_bits(), rng.gumbel(4, 17, token).to_bits());
        }
    }

    #[test]
    fn uniforms_stay_inside_the_open_interval() {
        assert!(word_to_uniform(0) > 0.0);
        assert!(word_to_uniform(u32::MAX) < 1.0);
        assert!(uniform_to_gumbel(word_to_uniform(u32::MAX)).is_finite());
        assert!(uniform_to_gumbel(word_to_uniform(0)).is_finite());
    }

    #[test]
    fn uniform_mean_and_independence_of_keys() {
        let rng = CounterRng::new(7);
        let n = 200_000u32;
        let mean: f64 = (0..n).map(|i| f64::from(rng.uniform(Stream::Reveal, 3, i, 1))).sum::<f64>() / f64::from(n);
        // Standard error of the mean of U(0,1) is 1/sqrt(12 n) ≈ 6.5e-4.
        assert!((mean - 0.5).abs() < 4.0 * (1.0 / (12.0 * f64::from(n))).sqrt(), "{mean}");
        assert_ne!(rng.word(Stream::Reveal, 0, 0, 0), rng.word(Stream::Token, 0, 0, 0));
        assert_ne!(rng.word(Stream::Reveal, 0, 0, 0), CounterRng::new(8).word(Stream::Reveal, 0, 0, 0));
    }
}
