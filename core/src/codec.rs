//! Sub-token codec: tokens ↔ base-b digits, most significant digit first.
//!
//! Token `i` of a sequence owns the flat sub-token slots `i·ℓ .. i·ℓ+ℓ`; slot `i·ℓ + j` holds digit
//! `j` of the token, `(x / b^(ℓ−1−j)) mod b`. The mask id is `b` (for ℓ = 1 the base is V, so the
//! mask id is V, as in MDLM).

use crate::error::{PrimeError, Result};

/// The base-b, ℓ-digit representation of a vocabulary of V tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubTokenCodec {
    vocab: u32,
    digits: usize,
    base: u32,
    /// `powers[j] = b^(ℓ−1−j)`.
    powers: Vec<u64>,
}

impl SubTokenCodec {
    /// The codec with the smallest base b such that b^ℓ ≥ V.
    pub fn new(vocab: u32, digits: usize) -> Result<Self> {
        let base = Self::smallest_base(vocab, digits)?;
        Self::with_base(vocab, digits, base)
    }

    /// The codec with an explicit base, which must satisfy b ≥ 2 and b^ℓ ≥ V.
    pub fn with_base(vocab: u32, digits: usize, base: u32) -> Result<Self> {
        if vocab < 2 {
            return Err(PrimeError::Input(format!("vocabulary size {vocab} is below 2")));
        }
        if digits == 0 || digits > 32 {
            return Err(PrimeError::Input(format!("sub-token count ℓ = {digits} is outside 1 to 32")));
        }
        if base < 2 {
            return Err(PrimeError::Input(format!("base {base} is below 2")));
        }
        let mut powers = vec![1u64; digits];
        for j in (0..digits.saturating_sub(1)).rev() {
            powers[j] = powers[j + 1]
                .checked_mul(u64::from(base))
                .ok_or_else(|| PrimeError::Input(format!("base {base}^{digits} overflows")))?;
        }
        let capacity = powers[0].checked_mul(u64::from(base));
        if capacity.is_some_and(|c| c < u64::from(vocab)) {
            return Err(PrimeError::Input(format!(
                "base {base} with {digits} digits holds {} codes, fewer than the {vocab} tokens",
                capacity.unwrap_or(0)
            )));
        }
        Ok(Self { vocab, digits, base, powers })
    }

    /// The smallest integer b ≥ 2 with b^ℓ ≥ V.
    pub fn smallest_base(vocab: u32, digits: usize) -> Result<u32> {
        if digits == 0 {
            return Err(PrimeError::Input("sub-token count ℓ must be at least 1".into()));
        }
        let fits = |b: u64| -> bool {
            let mut acc = 1u64;
            for _ in 0..digits {
                acc = acc.saturating_mul(b);
                if acc >= u64::from(vocab) {
                    return true;
                }
            }
            acc >= u64::from(vocab)
        };
        // Start from the float estimate and correct it by integer checks.
        let estimate = (f64::from(vocab)).powf(1.0 / digits as f64).floor().max(2.0) as u64;
        let mut b = estimate.saturating_sub(1).max(2);
        while b > 2 && fits(b - 1) {
            b -= 1;
        }
        while !fits(b) {
            b += 1;
        }
        u32::try_from(b).map_err(|_| PrimeError::Input(format!("base for V = {vocab} overflows")))
    }

    /// Vocabulary size V.
    pub fn vocab(&self) -> u32 {
        self.vocab
    }

    /// Sub-tokens per token, ℓ.
    pub fn digits(&self) -> usize {
        self.digits
    }

    /// The base b.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// The sub-token mask id, b.
    pub fn mask_id(&self) -> u32 {
        self.base
    }

    /// The place value `b^(ℓ−1−j)` of digit slot j.
    pub fn digit_power(&self, j: usize) -> u64 {
        self.powers[j]
    }

    /// Digit `j` (most significant first) of `token`.
    pub fn digit(&self, token: u32, j: usize) -> u32 {
        ((u64::from(token) / self.powers[j]) % u64::from(self.base)) as u32
    }

    /// Writes the ℓ digits of `token` into `out` (length ℓ).
    pub fn encode_token_into(&self, token: u32, out: &mut [u32]) {
        for (j, slot) in out.iter_mut().enumerate() {
            *slot = self.digit(token, j);
        }
    }

    /// Encodes a token sequence into its flat sub-token sequence (length ℓ·L).
    ///
    /// Fails if a token is ≥ V.
    pub fn encode(&self, tokens: &[u32]) -> Result<Vec<u32>> {
        let mut out = vec![0u32; tokens.len() * self.digits];
        for (i, &t) in tokens.iter().enumerate() {
            self.check_token(t, i)?;
            self.encode_token_into(t, &mut out[i * self.digits..(i + 1) * self.digits]);
        }
        Ok(out)
    }

    /// Decodes one token's ℓ digits. Fails on a mask id, a digit ≥ b, or a code ≥ V.
    pub fn decode_token(&self, digits: &[u32]) -> Result<u32> {
        if digits.len() != self.digits {
            return Err(PrimeError::Input(format!("a token has {} digits, got {}", self.digits, digits.len())));
        }
        let mut code = 0u64;
        for (&d, &p) in digits.iter().zip(&self.powers) {
            if d >= self.base {
                return Err(PrimeError::Input(format!(
                    "digit {d} is not below the base {} (mask id {} cannot be decoded)",
                    self.base, self.base
                )));
            }
            code += u64::from(d) * p;
        }
        if code >= u64::from(self.vocab) {
            return Err(PrimeError::InvalidCode { digits: digits.to_vec(), token: code, vocab: self.vocab });
        }
        Ok(code as u32)
    }

    /// Decodes a flat sub-token sequence (length a multiple of ℓ) into tokens.
    pub fn decode(&self, digits: &[u32]) -> Result<Vec<u32>> {
        if !digits.len().is_multiple_of(self.digits) {
            return Err(PrimeError::Input(format!(
                "{} sub-tokens is not a multiple of ℓ = {}",
                digits.len(),
                self.digits
            )));
        }
        digits.chunks(self.digits).map(|c| self.decode_token(c)).collect()
    }

    /// Fails unless `token < V`; `position` is named in the message.
    pub fn check_token(&self, token: u32, position: usize) -> Result<()> {
        if token >= self.vocab {
            return Err(PrimeError::Input(format!(
                "token id {token} at position {position} is not below the vocabulary size {}",
                self.vocab
            )));
        }
        Ok(())
    }

    /// Whether `token` agrees with every revealed digit of `pattern` (mask ids match anything).
    pub fn is_consistent(&self, token: u32, pattern: &[u32]) -> bool {
        pattern.iter().enumerate().all(|(j, &d)| d == self.base || self.digit(token, j) == d)
    }

    /// Calls `visit` with every vocabulary token consistent with `pattern`, in increasing order,
    /// enumerating only the consistent codes (mixed-radix over the masked digits), never all V.
    pub fn for_each_consistent(&self, pattern: &[u32], mut visit: impl FnMut(u32)) {
        let masked: Vec<usize> = (0..self.digits).filter(|&j| pattern[j] == self.base).collect();
        if masked.len() == self.digits {
            (0..self.vocab).for_each(visit);
            return;
        }
        let fixed: u64 =
            (0..self.digits).filter(|&j| pattern[j] != self.base).map(|j| u64::from(pattern[j]) * self.powers[j]).sum();
        let mut counter = vec![0u32; masked.len()];
        loop {
            let code = fixed + masked.iter().zip(&counter).map(|(&j, &c)| u64::from(c) * self.powers[j]).sum::<u64>();
            if code < u64::from(self.vocab) {
                visit(code as u32);
            }
            // Increment the least significant masked digit first: codes come out ascending.
            let mut k = masked.len();
            loop {
                if k == 0 {
                    return;
                }
                k -= 1;
                counter[k] += 1;
                if counter[k] < self.base {
                    break;
                }
                counter[k] = 0;
            }
        }
    }

    /// Number of vocabulary tokens consistent with `pattern`.
    pub fn count_consistent(&self, pattern: &[u32]) -> usize {
        let mut n = 0;
        self.for_each_consistent(pattern, |_| n += 1);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_base_is_minimal() {
        for (v, l, b) in [
            (50257, 2, 225),
            (50257, 3, 37),
            (50257, 4, 15),
            (50257, 8, 4),
            (256, 2, 16),
            (300, 2, 18),
            (1000, 4, 6),
            (9, 2, 3),
            (10, 2, 4),
        ] {
            assert_eq!(SubTokenCodec::smallest_base(v, l).unwrap(), b, "V={v} ℓ={l}");
        }
    }

    #[test]
    fn too_small_base_is_rejected() {
        assert!(SubTokenCodec::with_base(300, 2, 17).is_err());
        assert!(SubTokenCodec::with_base(300, 2, 18).is_ok());
    }

    #[test]
    fn invalid_code_is_an_error() {
        let c = SubTokenCodec::new(300, 2).unwrap();
        // 17·18 + 17 = 323 ≥ 300
        let err = c.decode_token(&[17, 17]).unwrap_err();
        assert!(matches!(err, PrimeError::InvalidCode { token: 323, .. }), "{err}");
        assert!(c.decode_token(&[18, 0]).is_err(), "mask id must not decode");
        assert!(c.encode(&[300]).is_err());
    }

    #[test]
    fn consistent_enumeration_matches_brute_force() {
        let c = SubTokenCodec::new(1000, 4).unwrap();
        let m = c.mask_id();
        for pattern in [[m, m, m, m], [4, m, m, m], [m, m, m, 0], [4, 3, m, 1], [2, 0, 1, 3], [5, 5, m, m]] {
            let mut got = Vec::new();
            c.for_each_consistent(&pattern, |v| got.push(v));
            let want: Vec<u32> = (0..1000).filter(|&v| c.is_consistent(v, &pattern)).collect();
            assert_eq!(got, want, "{pattern:?}");
        }
    }
}
