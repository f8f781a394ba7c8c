//! `prime-train images`: Fashion-MNIST from Debian's `dataset-fashion-mnist` package (60,000
//! training and 10,000 test images of 28 × 28 grey pixels, ten classes of clothing) as the
//! training and held-out splits of the image models.

pub mod classifier;
pub mod idx;
pub mod judge;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use clap::Args;

use crate::deb;
use idx::Idx;

/// The Debian package that carries the data set.
const PACKAGE: &str = "dataset-fashion-mnist";
/// Where the package puts the files.
const IN_PACKAGE: &str = "usr/share/datasets/fashion-mnist";
/// The package's files: (its name for the split, ours).
const SPLITS: [(&str, &str); 2] = [("train", "train"), ("t10k", "valid")];
/// Classes of the labels.
pub const CLASSES: usize = 10;
/// The class names, by label.
pub const CLASS_NAMES: [&str; CLASSES] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Arguments of `prime-train images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Output folder for `{train,valid}-{images,labels}.idx`.
    #[arg(long, default_value = "data/fashion")]
    out: PathBuf,
    /// Read the package's four `*-ubyte(.gz)` files from this folder instead of the installed
    /// package (or a download).
    #[arg(long, conflicts_with = "deb")]
    from: Option<PathBuf>,
    /// Use this already downloaded `.deb` instead of the installed package or `apt-get download`.
    #[arg(long)]
    deb: Option<PathBuf>,
    /// Shrink every image by this factor (the mean of each k × k square, rounded): 2 gives
    /// 14 × 14 images, a quarter of the tokens and a sixteenth of the attention to train.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=28))]
    downscale: u32,
}

/// Images of one split with their labels.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// Pixels per row.
    pub width: usize,
    /// Rows per image.
    pub height: usize,
    /// Every image's pixels, raster order, back to back.
    pub pixels: Vec<u8>,
    /// The class of each image.
    pub labels: Vec<u8>,
}

impl ImageSet {
    /// Pairs an images array (N × height × width) with a labels array (N), checking both.
    pub fn new(images: Idx, labels: Idx) -> Result<Self> {
        ensure!(images.dims.len() == 3, "an images array has 3 dimensions (N × rows × columns), not {:?}", images.dims);
        ensure!(labels.dims.len() == 1, "a labels array has 1 dimension, not {:?}", labels.dims);
        ensure!(images.dims[0] == labels.dims[0], "{} images but {} labels", images.dims[0], labels.dims[0]);
        ensure!(images.dims[0] > 0, "the split has no images");
        if let Some(bad) = labels.data.iter().find(|&&l| usize::from(l) >= CLASSES) {
            anyhow::bail!("label {bad} is not one of the {CLASSES} classes");
        }
        Ok(Self { width: images.dims[2], height: images.dims[1], pixels: images.data, labels: labels.data })
    }

    /// Reads split `name` (`train` or `valid`) from a folder `prime-train images` wrote.
    pub fn load(dir: &Path, name: &str) -> Result<Self> {
        let read = |what: &str| -> Result<Idx> {
            let path = dir.join(format!("{name}-{what}.idx"));
            let bytes = std::fs::read(&path)
                .with_context(|| format!("cannot read {} (run `prime-train images` first)", path.display()))?;
            Idx::parse(&bytes).with_context(|| format!("{} is broken", path.display()))
        };
        Self::new(read("images")?, read("labels")?)
    }

    /// Number of images (never zero).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Pixels per image.
    pub fn pixels_per_image(&self) -> usize {
        self.width * self.height
    }

    /// Image `i`'s pixels.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.pixels_per_image();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The images shrunk by `k`: each pixel the rounded mean of a k × k square (rows and columns
    /// beyond a multiple of k are dropped).
    pub fn downscaled(&self, k: usize) -> Result<Self> {
        let (width, height) = (self.width / k, self.height / k);
        ensure!(width > 0 && height > 0, "{} × {} images cannot shrink by {k}", self.width, self.height);
        let mut pixels = Vec::with_capacity(self.len() * width * height);
        for i in 0..self.len() {
            let image = self.image(i);
            for y in 0..height {
                for x in 0..width {
                    let sum: usize =
                        (0..k * k).map(|j| usize::from(image[(y * k + j / k) * self.width + x * k + j % k])).sum();
                    pixels.push(((sum + k * k / 2) / (k * k)) as u8);
                }
            }
        }
        Ok(Self { width, height, pixels, labels: self.labels.clone() })
    }

    /// Images per class.
    pub fn class_counts(&self) -> [usize; CLASSES] {
        let mut counts = [0; CLASSES];
        for &l in &self.labels {
            counts[usize::from(l)] += 1;
        }
        counts
    }
}

/// Runs `prime-train images`.
pub fn run(args: &ImagesArgs) -> Result<()> {
    let work = std::env::temp_dir().join(format!("prime-images-{}", std::process::id()));
    let installed = Path::new("/").join(IN_PACKAGE);
    let source = match (&args.from, &args.deb) {
        (Some(dir), _) => dir.clone(),
        (None, None) if installed.is_dir() => installed,
        (None, deb) => deb::unpacked(PACKAGE, deb.as_deref(), &work)?.join(IN_PACKAGE),
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    for (theirs, ours) in SPLITS {
        let read = |what: &str| -> Result<Idx> {
            let plain = source.join(format!("{theirs}-{what}-ubyte"));
            let path = if plain.is_file() { plain } else { source.join(format!("{theirs}-{what}-ubyte.gz")) };
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            Idx::parse(&bytes).with_context(|| format!("{} is broken", path.display()))
        };
        let set = ImageSet::new(read("images-idx3")?, read("labels-idx1")?)?.downscaled(args.downscale as usize)?;
        let summary = format!(
            "{ours}: {} images of {} × {} from {theirs} (per class: {:?})",
            set.len(),
            set.width,
            set.height,
            set.class_counts()
        );
        let ImageSet { width, height, pixels, labels } = set;
        let count = labels.len();
        let arrays = [
            ("images", Idx { dims: vec![count, height, width], data: pixels }),
            ("labels", Idx { dims: vec![count], data: labels }),
        ];
        for (what, array) in arrays {
            let path = args.out.join(format!("{ours}-{what}.idx"));
            prime_core::output::FileOutput::write_all_to(&path, &array.to_bytes())?;
        }
        prime_native::say!("{summary}")?;
    }
    let _ = std::fs::remove_dir_all(&work);
    prime_native::say!("written to {}", args.out.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downscaling_averages_squares() {
        let images = Idx { dims: vec![1, 2, 5], data: vec![0, 1, 10, 20, 7, 2, 4, 30, 41, 7] };
        let set = ImageSet::new(images, Idx { dims: vec![1], data: vec![3] }).unwrap();
        let small = set.downscaled(2).unwrap();
        assert_eq!((small.width, small.height), (2, 1));
        // (0 + 1 + 2 + 4) / 4 = 1.75 → 2; (10 + 20 + 30 + 41) / 4 = 25.25 → 25; the odd column goes.
        assert_eq!(small.pixels, [2, 25]);
        assert_eq!(small.labels, [3]);
        assert!(set.downscaled(3).is_err());
    }

    #[test]
    fn a_split_must_pair_images_and_labels() {
        let images = Idx { dims: vec![2, 1, 1], data: vec![0, 0] };
        let one = Idx { dims: vec![1], data: vec![0] };
        assert!(ImageSet::new(images.clone(), one).unwrap_err().to_string().contains("2 images but 1 labels"));
        let bad = Idx { dims: vec![2], data: vec![0, 10] };
        assert!(ImageSet::new(images, bad).unwrap_err().to_string().contains("label 10"));
    }
}
