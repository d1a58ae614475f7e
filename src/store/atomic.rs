//! Durable, atomic file writes: every write of the store goes through [`AtomicFile`]. The
//! content goes to a temporary file in the store's `tmp/` folder (same filesystem), is
//! fsynced, renamed over the target, and the target's folder is fsynced. A crash leaves
//! the old file or the new one, never a mix; a leftover temporary file is never read.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file being written; nothing is visible at the target until [`AtomicFile::commit`].
pub struct AtomicFile {
    file: File,
    tmp: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Starts a write in `tmp_dir`, with mode 0600.
    pub fn create(tmp_dir: &Path) -> io::Result<AtomicFile> {
        let tmp = tmp_dir.join(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        Ok(AtomicFile {
            file,
            tmp,
            committed: false,
        })
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Makes the content durable and puts it at `target`, replacing what was there.
    /// `before_rename` runs last, just before the rename (under whatever lock the caller
    /// holds), and can refuse the write.
    pub fn commit_with(
        mut self,
        target: &Path,
        before_rename: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        self.file.flush()?;
        self.file.sync_all()?;
        before_rename()?;
        std::fs::rename(&self.tmp, target)?;
        self.committed = true;
        sync_dir(target.parent().unwrap_or(Path::new(".")))
    }

    pub fn commit(self, target: &Path) -> io::Result<()> {
        self.commit_with(target, || Ok(()))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `target` atomically and durably.
pub fn write_file(tmp_dir: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(tmp_dir)?;
    f.write_all(bytes)?;
    f.commit(target)
}

/// fsyncs a folder, so that a rename or a new entry in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
