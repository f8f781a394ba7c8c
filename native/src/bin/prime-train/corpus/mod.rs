//! `prime-train corpus`: fetches Jane Austen's six novels from Debian's `r-cran-janeaustenr` package,
//! extracts clean paragraphs and writes a training and a held-out validation split.

mod clean;
mod rdata;

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use clap::Args;

use crate::deb;

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
    let rdb = match &args.rdb {
        Some(rdb) => rdb.clone(),
        None => {
            let rdb = deb::unpacked(PACKAGE, args.deb.as_deref(), &work)?.join(RDB_IN_PACKAGE);
            ensure!(rdb.is_file(), "the {PACKAGE} package has no {RDB_IN_PACKAGE}");
            rdb
        }
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
        prime_core::output::FileOutput::write_all_to(&path, text.as_bytes())?;
    }
    let _ = std::fs::remove_dir_all(&work);
    prime_native::say!(
        "{} novels: {n_train} training paragraphs ({} bytes), {n_valid} validation paragraphs ({} bytes) in {}",
        novels.len(),
        train.len(),
        valid.len(),
        args.out.display()
    )?;
    Ok(())
}
