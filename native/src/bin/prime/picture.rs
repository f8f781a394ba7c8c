//! Pictures of an image model's samples: a sheet of N images in a grid, written as PNG (the
//! samples) or as the frames of an animated GIF (the trajectory: one frame per step that changed
//! something). A masked pixel is drawn blue, a partly revealed one at its coarse grey level (the
//! mean of the levels it can still become) with an orange dot in its middle.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use prime_core::SubTokenCodec;
use prime_core::image::{ImageShape, Pixel};
use prime_core::output::FileOutput;

/// Sheet pixels between two images and around the edge.
const GAP: usize = 2;
/// Colour of a masked pixel.
const MASK: [u8; 3] = [0x3b, 0x5b, 0xdb];
/// Colour of the dot on a partly revealed pixel.
const MARKER: [u8; 3] = [0xff, 0x8c, 0x00];
/// Colour between images.
const BACKGROUND: [u8; 3] = [0xc8, 0xd0, 0xdc];
/// Grey entries of the GIF palette (then the three colours above, then [`GIF_UNCHANGED`]).
const GIF_GREYS: usize = 252;
/// The GIF palette's transparent index: a pixel that keeps the previous frame's colour.
const GIF_UNCHANGED: u8 = GIF_GREYS as u8 + 3;
/// Largest sheet side a GIF can hold.
const GIF_MAX_SIDE: usize = u16::MAX as usize;

/// What one sheet pixel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paint {
    Grey(u8),
    Mask,
    Marker,
    Background,
}

impl Paint {
    fn rgb(self) -> [u8; 3] {
        match self {
            Self::Grey(g) => [g; 3],
            Self::Mask => MASK,
            Self::Marker => MARKER,
            Self::Background => BACKGROUND,
        }
    }

    /// Index in [`gif_palette`]: greys first (nearest of [`GIF_GREYS`] levels), then the colours.
    fn gif_index(self) -> u8 {
        match self {
            Self::Grey(g) => ((usize::from(g) * (GIF_GREYS - 1) + 127) / 255) as u8,
            Self::Mask => GIF_GREYS as u8,
            Self::Marker => GIF_GREYS as u8 + 1,
            Self::Background => GIF_GREYS as u8 + 2,
        }
    }
}

/// The GIF's global palette, in the order of [`Paint::gif_index`].
fn gif_palette() -> Vec<u8> {
    let greys = (0..GIF_GREYS).flat_map(|i| [((i * 255 + (GIF_GREYS - 1) / 2) / (GIF_GREYS - 1)) as u8; 3]);
    greys.chain(MASK).chain(MARKER).chain(BACKGROUND).chain([0; 3]).collect()
}

/// A grid of `count` images, each pixel drawn as a `scale` × `scale` square.
#[derive(Debug, Clone)]
pub struct Sheet {
    shape: ImageShape,
    count: usize,
    columns: usize,
    scale: usize,
}

impl Sheet {
    /// The sheet of `count` images of `shape`: as square a grid as the count allows.
    pub fn new(shape: ImageShape, count: usize, scale: usize) -> Result<Self> {
        ensure!(count > 0, "a sheet needs at least one image");
        ensure!((1..=64).contains(&scale), "--scale must be between 1 and 64, got {scale}");
        let columns = (1..=count).find(|c| c * c >= count).unwrap_or(count);
        let sheet = Self { shape, count, columns, scale };
        ensure!(
            sheet.width().checked_mul(sheet.height()).is_some_and(|n| n <= 1 << 28),
            "a sheet of {count} images of {} × {} at scale {scale} is too large to draw",
            shape.width,
            shape.height
        );
        Ok(sheet)
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.columns * (self.shape.width * self.scale + GAP) + GAP
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.count.div_ceil(self.columns) * (self.shape.height * self.scale + GAP) + GAP
    }

    /// What every sheet pixel shows, row by row, for one state per image (flat sub-tokens).
    fn paint(&self, codec: &SubTokenCodec, states: &[&[u32]]) -> Result<Vec<Paint>> {
        ensure!(states.len() == self.count, "{} states for a sheet of {} images", states.len(), self.count);
        let (width, s) = (self.width(), self.scale);
        let dot = (s / 3).max(1);
        let dot_from = (s - dot) / 2;
        let mut out = vec![Paint::Background; width * self.height()];
        for (i, state) in states.iter().enumerate() {
            let pixels = Pixel::all(codec, state)?;
            ensure!(
                pixels.len() == self.shape.pixels(),
                "a state of {} pixels, not {}",
                pixels.len(),
                self.shape.pixels()
            );
            let left = GAP + (i % self.columns) * (self.shape.width * s + GAP);
            let top = GAP + (i / self.columns) * (self.shape.height * s + GAP);
            for (p, pixel) in pixels.iter().enumerate() {
                let (x0, y0) = (left + (p % self.shape.width) * s, top + (p / self.shape.width) * s);
                let base = match pixel.level() {
                    None => Paint::Mask,
                    Some(level) => Paint::Grey(level.round().clamp(0.0, 255.0) as u8),
                };
                let partial = matches!(pixel, Pixel::Partial { .. });
                for dy in 0..s {
                    for dx in 0..s {
                        let on_dot = partial
                            && (dot_from..dot_from + dot).contains(&dx)
                            && (dot_from..dot_from + dot).contains(&dy);
                        out[(y0 + dy) * width + x0 + dx] = if on_dot { Paint::Marker } else { base };
                    }
                }
            }
        }
        Ok(out)
    }

    /// Writes the images (flat sub-token states; final ones are all known) as an RGB PNG.
    pub fn write_png(&self, path: &Path, codec: &SubTokenCodec, states: &[&[u32]]) -> Result<()> {
        let paint = self.paint(codec, states)?;
        let mut file = FileOutput::create(path)?;
        let mut encoder = png::Encoder::new(&mut file, self.width() as u32, self.height() as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let data: Vec<u8> = paint.into_iter().flat_map(Paint::rgb).collect();
        let mut writer = encoder.write_header().with_context(|| format!("cannot write {}", path.display()))?;
        writer.write_image_data(&data).with_context(|| format!("cannot write {}", path.display()))?;
        writer.finish().with_context(|| format!("cannot write {}", path.display()))?;
        Ok(file.commit()?)
    }
}

/// An animated GIF of a sheet, one frame per call of [`Animation::frame`].
pub struct Animation {
    sheet: Sheet,
    path: PathBuf,
    encoder: gif::Encoder<FileOutput>,
    /// The last frame's indices and delay, written when the next one differs (or at the end).
    pending: Option<(Vec<u8>, u16)>,
    /// What the GIF shows after the frames written so far: the next frame only stores the
    /// rectangle that differs from it (each frame is kept under the next).
    shown: Option<Vec<u8>>,
    frames: usize,
}

impl Animation {
    /// Starts the GIF at `path`.
    pub fn create(sheet: Sheet, path: &Path) -> Result<Self> {
        ensure!(
            sheet.width() <= GIF_MAX_SIDE && sheet.height() <= GIF_MAX_SIDE,
            "a GIF is at most {GIF_MAX_SIDE} pixels on a side; this sheet is {} × {}",
            sheet.width(),
            sheet.height()
        );
        let file = FileOutput::create(path)?;
        let mut encoder = gif::Encoder::new(file, sheet.width() as u16, sheet.height() as u16, &gif_palette())
            .with_context(|| format!("cannot write {}", path.display()))?;
        encoder.set_repeat(gif::Repeat::Infinite).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self { sheet, path: path.to_path_buf(), encoder, pending: None, shown: None, frames: 0 })
    }

    /// Adds the states of one step (one per image), shown for `delay` hundredths of a second;
    /// a step that changed nothing lengthens the previous frame instead.
    pub fn frame(&mut self, codec: &SubTokenCodec, states: &[&[u32]], delay: u16) -> Result<()> {
        let indices: Vec<u8> = self.sheet.paint(codec, states)?.into_iter().map(Paint::gif_index).collect();
        match self.pending.take() {
            Some((last, d)) if last == indices => self.pending = Some((last, d.saturating_add(delay))),
            previous => {
                if let Some((last, d)) = previous {
                    self.write(last, d)?;
                }
                self.pending = Some((indices, delay));
            }
        }
        Ok(())
    }

    fn write(&mut self, indices: Vec<u8>, delay: u16) -> Result<()> {
        let (width, height) = (self.sheet.width(), self.sheet.height());
        // A frame stores the smallest rectangle holding every pixel that differs from what is
        // shown (all of them for the first frame; one pixel when none does, which only a longer
        // delay distinguishes), and inside it the unchanged pixels are transparent (long runs of
        // one index, which LZW packs well).
        let shown = self.shown.as_deref();
        let changed = |i: usize| shown.is_none_or(|shown| shown[i] != indices[i]);
        let (mut x0, mut y0, mut x1, mut y1) = (width, height, 0, 0);
        for i in (0..indices.len()).filter(|&i| changed(i)) {
            let (x, y) = (i % width, i / width);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
        }
        if x1 == 0 {
            (x0, y0, x1, y1) = (0, 0, 1, 1);
        }
        let buffer: Vec<u8> = (y0..y1)
            .flat_map(|y| y * width + x0..y * width + x1)
            .map(|i| if changed(i) { indices[i] } else { GIF_UNCHANGED })
            .collect();
        let frame = gif::Frame {
            transparent: shown.map(|_| GIF_UNCHANGED),
            left: x0 as u16,
            top: y0 as u16,
            width: (x1 - x0) as u16,
            height: (y1 - y0) as u16,
            buffer: Cow::Owned(buffer),
            delay,
            dispose: gif::DisposalMethod::Keep,
            ..gif::Frame::default()
        };
        self.frames += 1;
        self.shown = Some(indices);
        self.encoder.write_frame(&frame).with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Writes the last frame, held for `hold` more hundredths of a second, and returns the
    /// number of frames.
    pub fn finish(mut self, hold: u16) -> Result<usize> {
        if let Some((last, d)) = self.pending.take() {
            self.write(last, d.saturating_add(hold))?;
        }
        let path = self.path.clone();
        self.encoder.into_inner().with_context(|| format!("cannot write {}", path.display()))?.commit()?;
        Ok(self.frames)
    }
}
