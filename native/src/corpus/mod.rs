//! `prime-train corpus`: fetches Jane Austen's six novels from Debian's `r-cran-janeaustenr` package,
//! extracts clean paragraphs and writes a training and a held-out validation split.

mod clean;
mod rdata;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;

pub use clean::paragraphs;

/// Where the lazy-load data base sits inside the package.
const RDB_IN_PACKAGE: &str = "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb";
/// The Debian package that carries the novels.
const PACKAGE: &str = "r-cran-janeaustenr";

/// Arguments of `prime-train corpus`.
#[derive(Debug, Args)]
pub struct CorpusArgs {
    /// Output folder for `train.txt` and `valid.txt`.
    #[arg(long, default_value = "data/austen")]
    out: PathBuf,
    /// Use this `Rdata.rdb` instead of downloading the package.
    #[arg(long, conflicts_with = "deb")]
    rdb: Option<PathBuf>,
    /// Use this already downloaded `.deb` instead of running `apt-get download`.
    #[arg(long)]
    deb: Option<PathBuf>,
    /// Fraction of each novel's paragraphs (its last ones) held out for validation.
    #[arg(long, default_value_t = 0.05)]
    valid_fraction: f64,
}

/// Runs `prime-train corpus`.
pub fn run(args: &CorpusArgs) -> Result<()> {
    ensure!(
        (0.0..1.0).contains(&args.valid_fraction),
        "--valid-fraction must be in [0, 1), got {}",
        args.valid_fraction
    );
    let work = std::env::temp_dir().join(format!("prime-corpus-{}", std::process::id()));
    let rdb = match (&args.rdb, &args.deb) {
        (Some(rdb), _) => rdb.clone(),
        (None, Some(deb)) => unpack(deb, &work)?,
        (None, None) => unpack(&download(&work)?, &work)?,
    };
    let bytes = std::fs::read(&rdb).with_context(|| format!("cannot read {}", rdb.display()))?;
    let novels: Vec<Vec<String>> = rdata::read_records(&bytes)?.into_iter().flatten().collect();
    ensure!(!novels.is_empty(), "{} holds no character vectors", rdb.display());
    let (mut train, mut valid) = (String::new(), String::new());
    let (mut n_train, mut n_valid) = (0, 0);
    for novel in &novels {
        let paras = paragraphs(novel);
        let held = (paras.len() as f64 * args.valid_fraction).round() as usize;
        let (t, v) = paras.split_at(paras.len() - held);
        for (out, part, n) in [(&mut train, t, &mut n_train), (&mut valid, v, &mut n_valid)] {
            for p in part {
                out.push_str(p);
                out.push('\n');
            }
            *n += part.len();
        }
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    for (name, text) in [("train.txt", &train), ("valid.txt", &valid)] {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "{} novels: {n_train} training paragraphs ({} bytes), {n_valid} validation paragraphs ({} bytes) in {}",
        novels.len(),
        train.len(),
        valid.len(),
        args.out.display()
    );
    Ok(())
}

/// Downloads the package's `.deb` with `apt-get download` into `work`.
fn download(work: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(work)?;
    let status = Command::new("apt-get")
        .args(["download", PACKAGE])
        .current_dir(work)
        .status()
        .context("cannot run apt-get (pass --deb or --rdb on systems without it)")?;
    ensure!(status.success(), "`apt-get download {PACKAGE}` failed ({status})");
    for entry in std::fs::read_dir(work)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            return Ok(path);
        }
    }
    bail!("`apt-get download {PACKAGE}` left no .deb in {}", work.display())
}

/// Unpacks a `.deb` with `dpkg-deb -x` and returns the path of its data base.
fn unpack(deb: &Path, work: &Path) -> Result<PathBuf> {
    let root = work.join("root");
    std::fs::create_dir_all(&root)?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&root)
        .status()
        .context("cannot run dpkg-deb (pass --rdb on systems without it)")?;
    ensure!(status.success(), "`dpkg-deb -x {}` failed ({status})", deb.display());
    let rdb = root.join(RDB_IN_PACKAGE);
    ensure!(rdb.is_file(), "{} has no {RDB_IN_PACKAGE}", deb.display());
    Ok(rdb)
}
