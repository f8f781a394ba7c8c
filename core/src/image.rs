//! Image models: each pixel of a grey image is a token (its 8-bit level, V = 256), in raster
//! order, and a partly revealed pixel — some of its ℓ digits known — has a range of grey levels
//! it can still become. This module says what a pixel looks like at any step; drawing it (PNG,
//! GIF, canvas) is the caller's.

use serde::{Deserialize, Serialize};

use crate::codec::SubTokenCodec;
use crate::error::{PrimeError, Result};

/// Grey levels of an image model's pixels: its vocabulary size.
pub const GREY_LEVELS: u32 = 256;

/// The shape of an image model's samples (`config.json` key `image`): `width × height` pixels in
/// raster order, row by row, so `width × height` must equal `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageShape {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

impl ImageShape {
    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.width.saturating_mul(self.height)
    }

    /// Checks the shape against a model's sequence length and vocabulary.
    pub fn check(&self, length: usize, vocab: u32) -> std::result::Result<(), String> {
        if self.width == 0 || self.height == 0 {
            return Err(format!("image: width and height must be positive, got {} × {}", self.width, self.height));
        }
        if self.width.checked_mul(self.height) != Some(length) {
            return Err(format!(
                "image: width × height = {} × {} must equal length = {length} (one token per pixel)",
                self.width, self.height
            ));
        }
        if vocab != GREY_LEVELS {
            return Err(format!(
                "image: pixels are 8-bit grey levels, so vocab_size must be {GREY_LEVELS}, got {vocab}"
            ));
        }
        Ok(())
    }
}

/// What one pixel shows at a step. In JSON (a trajectory record's `pixels`): `null` when
/// masked, the level when known, an object with `level`, `lowest`, `highest`, `count` and
/// `known` when partly revealed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pixel {
    /// Every digit masked: nothing is known.
    Masked,
    /// Some digits known: the grey levels it can still become span `lowest..=highest`
    /// (`count` of them), and `level` is their mean — the coarse value to draw.
    Partial {
        /// Mean of the levels still possible.
        level: f32,
        /// Smallest level still possible.
        lowest: u32,
        /// Largest level still possible.
        highest: u32,
        /// How many levels are still possible.
        count: usize,
        /// Digits known.
        known: usize,
    },
    /// Every digit known: the grey level.
    Known(u32),
}

impl Pixel {
    /// The pixel of one token's digit slots (`digits`, length ℓ; the mask id marks a mask).
    /// Fails if a known digit is not a digit of the codec or no level fits the known digits.
    pub fn of(codec: &SubTokenCodec, digits: &[u32]) -> Result<Self> {
        let mask = codec.mask_id();
        if digits.len() != codec.digits() {
            return Err(PrimeError::Input(format!("a pixel has {} digit slots, not {}", codec.digits(), digits.len())));
        }
        if let Some(&bad) = digits.iter().find(|&&d| d > mask) {
            return Err(PrimeError::Input(format!("digit {bad} is neither a base-{mask} digit nor the mask")));
        }
        let known = digits.iter().filter(|&&d| d != mask).count();
        if known == digits.len() {
            return codec.decode_token(digits).map(Self::Known);
        }
        if known == 0 {
            return Ok(Self::Masked);
        }
        let (mut lowest, mut highest, mut sum, mut count) = (u32::MAX, 0, 0u64, 0usize);
        codec.for_each_consistent(digits, |level| {
            lowest = lowest.min(level);
            highest = highest.max(level);
            sum += u64::from(level);
            count += 1;
        });
        if count == 0 {
            return Err(PrimeError::Input(format!("no grey level has the digits {digits:?}")));
        }
        Ok(Self::Partial { level: sum as f32 / count as f32, lowest, highest, count, known })
    }

    /// Every pixel of a flat sub-token state (token i's digit j at i·ℓ + j).
    pub fn all(codec: &SubTokenCodec, state: &[u32]) -> Result<Vec<Self>> {
        state.chunks(codec.digits()).map(|digits| Self::of(codec, digits)).collect()
    }

    /// The grey level to draw, if anything is known: the level, or the coarse mean.
    pub fn level(&self) -> Option<f32> {
        match *self {
            Self::Masked => None,
            Self::Partial { level, .. } => Some(level),
            Self::Known(v) => Some(v as f32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nibbles() -> SubTokenCodec {
        SubTokenCodec::new(GREY_LEVELS, 2).unwrap()
    }

    #[test]
    fn the_high_digit_gives_a_band_of_sixteen_levels() {
        let c = nibbles();
        assert_eq!(c.base(), 16);
        let m = c.mask_id();
        assert_eq!(
            Pixel::of(&c, &[0xA, m]).unwrap(),
            Pixel::Partial { level: 167.5, lowest: 160, highest: 175, count: 16, known: 1 }
        );
        // The low digit alone leaves one level in every band of sixteen.
        assert_eq!(
            Pixel::of(&c, &[m, 3]).unwrap(),
            Pixel::Partial { level: 123.0, lowest: 3, highest: 243, count: 16, known: 1 }
        );
        assert_eq!(Pixel::of(&c, &[m, m]).unwrap(), Pixel::Masked);
        assert_eq!(Pixel::of(&c, &[0xA, 3]).unwrap(), Pixel::Known(163));
        assert_eq!(Pixel::of(&c, &[0xA, 3]).unwrap().level(), Some(163.0));
        assert_eq!(Pixel::of(&c, &[m, m]).unwrap().level(), None);
    }

    #[test]
    fn bits_narrow_the_range_one_at_a_time() {
        let c = SubTokenCodec::new(GREY_LEVELS, 8).unwrap();
        let m = c.mask_id();
        let pixels = Pixel::all(&c, &[1, 0, m, m, m, m, m, m, 1, 1, 1, 1, 1, 1, 1, 1]).unwrap();
        assert_eq!(pixels[0], Pixel::Partial { level: 159.5, lowest: 128, highest: 191, count: 64, known: 2 });
        assert_eq!(pixels[1], Pixel::Known(255));
    }

    #[test]
    fn pixels_in_json_are_null_a_level_or_a_range() {
        let c = nibbles();
        let m = c.mask_id();
        let pixels = Pixel::all(&c, &[m, m, 0xA, m, 0xA, 3]).unwrap();
        let json = serde_json::to_string(&pixels).unwrap();
        assert_eq!(json, r#"[null,{"level":167.5,"lowest":160,"highest":175,"count":16,"known":1},163]"#);
        assert_eq!(serde_json::from_str::<Vec<Pixel>>(&json).unwrap(), pixels);
    }

    #[test]
    fn bad_slots_are_errors() {
        let c = nibbles();
        assert!(Pixel::of(&c, &[17, 0]).is_err());
        assert!(Pixel::of(&c, &[1]).is_err());
    }

    #[test]
    fn a_shape_must_match_the_model() {
        let shape = ImageShape { width: 28, height: 28 };
        assert!(shape.check(784, 256).is_ok());
        assert!(shape.check(783, 256).unwrap_err().contains("length = 783"));
        assert!(shape.check(784, 255).unwrap_err().contains("vocab_size must be 256"));
        assert!(ImageShape { width: 0, height: 28 }.check(0, 256).is_err());
        assert!(ImageShape { width: usize::MAX, height: 2 }.check(784, 256).is_err());
    }
}
