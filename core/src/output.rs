//! Writing files and folders so that a failure leaves nothing half-written and nothing outside
//! the path asked for.
//!
//! - [`FileOutput`]: a regular file is written to a new temporary sibling (created exclusively,
//!   so never through a symlink) and renamed over its path once whole; a special file
//!   (`/dev/null`, a pipe) is written directly. A failed write or flush is an error, and an
//!   unfinished output removes its temporary file.
//! - [`DirOutput`]: a folder is assembled in a new temporary sibling and renamed into place
//!   once whole, replacing the old folder as a whole (never writing into it, so a symlink inside
//!   it is never followed and no stale file survives). An existing non-empty folder is only
//!   replaced when the caller says so (`--force`).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{PrimeError, Result};

/// A sibling of `path` that does not exist yet: `.<name>.<what>-<pid>-<n>`.
fn sibling(path: &Path, what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    path.with_file_name(format!(".{name}.{what}-{}-{n}", std::process::id()))
}

/// The folder a path lives in, for error messages about creating there.
fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// A file being written; see the module documentation.
#[derive(Debug)]
pub struct FileOutput {
    path: PathBuf,
    /// The temporary sibling, until committed; `None` for a special file written directly.
    temp: Option<PathBuf>,
    out: BufWriter<File>,
}

impl FileOutput {
    /// Starts writing `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let kind = std::fs::symlink_metadata(path).map(|m| m.file_type()).ok();
        if kind.is_some_and(|k| k.is_dir()) {
            return Err(PrimeError::Output {
                path: path.to_path_buf(),
                reason: "is a folder; give a file path".into(),
            });
        }
        // A device or pipe is written directly; a regular file or a symlink is replaced.
        if kind.is_some_and(|k| !k.is_file() && !k.is_symlink()) {
            let file = OpenOptions::new().write(true).open(path).map_err(|e| PrimeError::io(path, e))?;
            return Ok(Self { path: path.to_path_buf(), temp: None, out: BufWriter::new(file) });
        }
        let temp = sibling(path, "partial");
        let file = OpenOptions::new().write(true).create_new(true).open(&temp).map_err(|e| {
            PrimeError::io(parent(path), std::io::Error::new(e.kind(), format!("cannot create a file there: {e}")))
        })?;
        Ok(Self { path: path.to_path_buf(), temp: Some(temp), out: BufWriter::new(file) })
    }

    /// Writes `bytes` to `path` as a whole.
    pub fn write_all_to(path: &Path, bytes: &[u8]) -> Result<()> {
        Self::create(path)?.finish_with(bytes)
    }

    /// Writes `bytes`, then commits.
    pub fn finish_with(mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|e| PrimeError::io(&self.path, e))?;
        self.commit()
    }

    /// The path being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes everything to the file and moves it into place.
    pub fn commit(mut self) -> Result<()> {
        self.out.flush().map_err(|e| PrimeError::io(&self.path, e))?;
        self.out.get_ref().sync_all().or_else(ignore_unsupported).map_err(|e| PrimeError::io(&self.path, e))?;
        if let Some(temp) = self.temp.take()
            && let Err(e) = std::fs::rename(&temp, &self.path)
        {
            let _ = std::fs::remove_file(&temp);
            return Err(PrimeError::io(&self.path, e));
        }
        Ok(())
    }
}

/// `fsync` of a pipe or terminal is refused (EINVAL): nothing to sync there.
fn ignore_unsupported(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::InvalidInput { Ok(()) } else { Err(e) }
}

impl Write for FileOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Drop for FileOutput {
    fn drop(&mut self) {
        if let Some(temp) = &self.temp {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// A folder being written; see the module documentation.
#[derive(Debug)]
pub struct DirOutput {
    dir: PathBuf,
    /// The folder being assembled, until committed.
    temp: Option<PathBuf>,
}

impl DirOutput {
    /// Starts writing folder `dir`. A symlink or a file at `dir` is refused; so is a non-empty
    /// folder unless `force`, which replaces it as a whole on [`DirOutput::commit`].
    pub fn create(dir: &Path, force: bool) -> Result<Self> {
        let refuse = |why: &str| PrimeError::Output { path: dir.to_path_buf(), reason: why.to_string() };
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_symlink() => return Err(refuse("is a symbolic link; give the folder's own path")),
            Ok(m) if !m.is_dir() => return Err(refuse("is a file; give a folder")),
            Ok(_) if !force => {
                let mut entries = std::fs::read_dir(dir).map_err(|e| PrimeError::io(dir, e))?;
                if entries.next().is_some() {
                    return Err(refuse("is a folder that is not empty; pass --force to replace it as a whole"));
                }
            }
            _ => {}
        }
        let temp = sibling(dir, "partial");
        std::fs::create_dir_all(parent(dir)).map_err(|e| PrimeError::io(parent(dir), e))?;
        std::fs::create_dir(&temp).map_err(|e| {
            PrimeError::io(parent(dir), std::io::Error::new(e.kind(), format!("cannot create a folder there: {e}")))
        })?;
        Ok(Self { dir: dir.to_path_buf(), temp: Some(temp) })
    }

    /// The folder being written.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes file `name` of the folder (a plain name, no separators).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.file(name)?.finish_with(bytes)
    }

    /// Starts writing file `name` of the folder (a plain name, no separators).
    pub fn file(&self, name: &str) -> Result<FileOutput> {
        let temp = self.temp.as_deref().unwrap_or(&self.dir);
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(PrimeError::Output { path: self.dir.join(name), reason: "is not a plain file name".into() });
        }
        FileOutput::create(&temp.join(name))
    }

    /// Moves the whole folder into place, replacing what was at its path.
    pub fn commit(mut self) -> Result<()> {
        let Some(temp) = self.temp.take() else { return Ok(()) };
        let old = sibling(&self.dir, "old");
        let moved_old = match std::fs::rename(&self.dir, &old) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&temp);
                return Err(PrimeError::io(&self.dir, e));
            }
        };
        if let Err(e) = std::fs::rename(&temp, &self.dir) {
            if moved_old {
                let _ = std::fs::rename(&old, &self.dir);
            }
            let _ = std::fs::remove_dir_all(&temp);
            return Err(PrimeError::io(&self.dir, e));
        }
        if moved_old {
            // `remove_dir_all` does not follow symlinks: a link inside the old folder goes, not
            // what it points to.
            std::fs::remove_dir_all(&old).map_err(|e| PrimeError::io(&old, e))?;
        }
        Ok(())
    }
}

impl Drop for DirOutput {
    fn drop(&mut self) {
        if let Some(temp) = &self.temp {
            let _ = std::fs::remove_dir_all(temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh scratch folder under the system's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("prime-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_appears_only_when_whole() {
        let dir = scratch("file");
        let path = dir.join("out.bin");
        std::fs::write(&path, b"old").unwrap();
        let mut out = FileOutput::create(&path).unwrap();
        out.write_all(b"new, unfinished").unwrap();
        drop(out);
        assert_eq!(std::fs::read(&path).unwrap(), b"old", "an unfinished output leaves the old file");
        assert_eq!(names(&dir), ["out.bin"], "and no temporary file");
        FileOutput::write_all_to(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(names(&dir), ["out.bin"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[cfg(unix)]
    fn a_symlink_at_the_path_is_replaced_not_followed() {
        let dir = scratch("link");
        let target = dir.join("elsewhere.txt");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.join("out.txt");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        FileOutput::write_all_to(&link, b"written").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read(&link).unwrap(), b"written");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[cfg(unix)]
    fn a_failed_write_to_a_special_file_is_an_error() {
        let e = FileOutput::write_all_to(Path::new("/dev/full"), &[0; 1 << 16]).unwrap_err();
        assert!(e.to_string().contains("/dev/full"), "{e}");
        FileOutput::write_all_to(Path::new("/dev/null"), b"fine").unwrap();
        assert!(FileOutput::create(&std::env::temp_dir()).unwrap_err().to_string().contains("is a folder"));
    }

    #[test]
    #[cfg(unix)]
    fn a_folder_is_replaced_as_a_whole_and_only_when_forced() {
        let dir = scratch("dir");
        let out = dir.join("model");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("stale.json"), b"old").unwrap();
        // A symlink inside the old folder, pointing outside it.
        let outside = dir.join("outside.txt");
        std::fs::write(&outside, b"keep").unwrap();
        std::os::unix::fs::symlink(&outside, out.join("config.json")).unwrap();
        let e = DirOutput::create(&out, false).unwrap_err().to_string();
        assert!(e.contains("not empty") && e.contains("--force"), "{e}");
        let writer = DirOutput::create(&out, true).unwrap();
        writer.write("config.json", b"{}").unwrap();
        assert!(writer.write("../escape", b"x").is_err());
        assert_eq!(names(&out), ["config.json", "stale.json"], "nothing changes before the commit");
        writer.commit().unwrap();
        assert_eq!(names(&out), ["config.json"]);
        assert_eq!(std::fs::read(out.join("config.json")).unwrap(), b"{}");
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        assert_eq!(names(&dir), ["model", "outside.txt"], "no temporary or old folder is left");
        // An unfinished folder output leaves nothing behind.
        let unfinished = DirOutput::create(&dir.join("new"), false).unwrap();
        unfinished.write("a", b"1").unwrap();
        drop(unfinished);
        assert_eq!(names(&dir), ["model", "outside.txt"]);
        // A symlink or a file where the folder should be is refused.
        std::os::unix::fs::symlink(&out, dir.join("link")).unwrap();
        assert!(DirOutput::create(&dir.join("link"), true).unwrap_err().to_string().contains("symbolic link"));
        assert!(DirOutput::create(&outside, true).unwrap_err().to_string().contains("is a file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
