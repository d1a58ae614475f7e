//! Durable, atomic file writes, for every module that writes files others read (the local
//! store, reports, `store get`): the content goes to a temporary file in a folder on the
//! same filesystem as the target, is fsynced, renamed over the target, and the target's
//! folder is fsynced. A crash leaves the old file or the new one, never a mix; a leftover
//! temporary file is never read. Knows nothing of what the files hold.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file being written; nothing is visible at the target until [`AtomicFile::commit`].
pub struct AtomicFile {
    file: File,
    tmp: PathBuf,
    /// Whether the content is durable as it is: [`AtomicFile::sync`] ran and nothing was
    /// written since.
    synced: bool,
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
            synced: false,
            committed: false,
        })
    }

    pub fn file(&mut self) -> &mut File {
        // The caller may write through it.
        self.synced = false;
        &mut self.file
    }

    /// Makes the content written so far durable (fsync) without committing it, so that a
    /// caller can do it before taking a lock that [`AtomicFile::rename`] needs; a commit
    /// with nothing written since does not fsync the file again.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.sync_all()?;
        self.synced = true;
        Ok(())
    }

    /// Makes the content durable and puts it at `target`, replacing what was there.
    /// `before_rename` runs last, just before the rename (under whatever lock the caller
    /// holds), and can refuse the write.
    pub fn commit_with(
        self,
        target: &Path,
        before_rename: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        self.rename(target, before_rename)?;
        sync_dir(target.parent().unwrap_or(Path::new(".")))
    }

    /// [`AtomicFile::commit_with`] without the final fsync of `target`'s folder: the
    /// content is durable, but the rename is not until the caller calls [`sync_dir`] on
    /// that folder, which it must do before it reports the write done or relies on it
    /// (for example before deleting what the replaced file referred to). Lets a caller
    /// hold a lock over the check and the rename only, not over the folder's fsync.
    pub fn rename(
        mut self,
        target: &Path,
        before_rename: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        if !self.synced {
            self.sync()?;
        }
        before_rename()?;
        std::fs::rename(&self.tmp, target)?;
        self.committed = true;
        Ok(())
    }

    pub fn commit(self, target: &Path) -> io::Result<()> {
        self.commit_with(target, || Ok(()))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.synced = false;
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
