//! Files from Debian packages: `apt-get download` the `.deb` (no root needed) and unpack it with
//! `dpkg-deb -x` into a scratch folder, or use an already downloaded `.deb`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

/// Unpacks `package` (from `deb`, or downloaded into `work` when `deb` is `None`) under
/// `work/root` and returns that root.
pub fn unpacked(package: &str, deb: Option<&Path>, work: &Path) -> Result<PathBuf> {
    let deb = match deb {
        Some(deb) => deb.to_path_buf(),
        None => download(package, work)?,
    };
    let root = work.join("root");
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .status()
        .context("cannot run dpkg-deb (pass the files themselves on systems without it)")?;
    ensure!(status.success(), "`dpkg-deb -x {}` failed ({status})", deb.display());
    Ok(root)
}

/// Downloads the package's `.deb` with `apt-get download` into `work`.
fn download(package: &str, work: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    let status = Command::new("apt-get")
        .args(["download", package])
        .current_dir(work)
        .status()
        .context("cannot run apt-get (pass a downloaded .deb or the files themselves on systems without it)")?;
    ensure!(status.success(), "`apt-get download {package}` failed ({status})");
    for entry in std::fs::read_dir(work)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            return Ok(path);
        }
    }
    bail!("`apt-get download {package}` left no .deb in {}", work.display())
}
