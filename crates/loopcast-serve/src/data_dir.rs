//! The data directory, sealed. Every file a request names is opened through cap-std,
//! which resolves the path beneath the directory at the moment of opening (Linux's
//! `openat2` with `RESOLVE_BENEATH` where the kernel has it, a component-by-component
//! walk elsewhere): `..`, absolute paths and symbolic links that lead out are refused by
//! the open itself, so no check can go stale before the read. Relative links that stay
//! inside are followed; an absolute link is refused even where it points inside (its
//! meaning changes with where the directory is mounted).
//!
//! A job pins its input as it is submitted: the file it opened is hard-linked into the
//! job's own folder (copied where a link cannot be made), and the job reads that pin.
//! Replacing, renaming or deleting the named file afterwards changes nothing the job
//! reads, and a job that resumes after a restart reads the bytes it started on.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};

use crate::problem::Problem;

/// The folder of uploads, inside the data directory.
pub(crate) const UPLOADS: &str = "uploads";

/// The data directory: the only place jobs read from and uploads land in.
#[derive(Debug, Clone)]
pub(crate) struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The directory's path.
    pub(crate) fn path(&self) -> &Path {
        &self.root
    }

    /// The directory opened as a capability (created first if missing).
    fn open(&self) -> io::Result<Dir> {
        std::fs::create_dir_all(&self.root)?;
        Dir::open_ambient_dir(&self.root, ambient_authority())
    }

    /// Opens the regular file `input` (a relative path, named in errors as `field`) for
    /// reading, resolved beneath the directory.
    pub(crate) fn open_input(&self, field: &str, input: &str) -> Result<File, Problem> {
        let root =
            self.open().map_err(|e| Problem::internal(format!("cannot open the data directory: {e}")))?;
        let mut options = OpenOptions::new();
        options.read(true);
        // Without waiting: opening a named pipe for reading would block until a writer
        // came; it opens at once and is then refused as not a file.
        #[cfg(target_os = "linux")]
        cap_std::fs::OpenOptionsExt::custom_flags(&mut options, rustix::fs::OFlags::NONBLOCK.bits() as i32);
        let file = root.open_with(input, &options).map_err(|e| refusal(field, input, &e))?.into_std();
        let metadata = file.metadata().map_err(|e| refusal(field, input, &e))?;
        if !metadata.is_file() {
            return Err(Problem::invalid(field, format!("`{input}` is not a file in the data directory")));
        }
        Ok(file)
    }

    /// Creates `uploads/` if missing and opens it beneath the directory (named `field` in
    /// errors): an `uploads` link that leads out is refused.
    fn uploads(&self, field: &str) -> Result<Dir, Problem> {
        let root =
            self.open().map_err(|e| Problem::internal(format!("cannot open the data directory: {e}")))?;
        root.create_dir_all(UPLOADS).map_err(|e| refusal(field, UPLOADS, &e))?;
        root.open_dir(UPLOADS).map_err(|e| refusal(field, UPLOADS, &e))
    }

    /// A new, empty file for an upload named `name` (named `field` in errors): written under
    /// a temporary name in `uploads/`, it takes `name` only when [`Staged::commit`] runs.
    pub(crate) fn stage_upload(&self, field: &str, name: &str, sequence: u64) -> Result<Staged, Problem> {
        let uploads = self.uploads(field)?;
        let temporary = format!(".{name}.{sequence}.tmp");
        // A new file only: a link planted under the temporary name is not followed.
        let file = uploads
            .open_with(&temporary, OpenOptions::new().write(true).create_new(true))
            .map_err(|e| Problem::internal(format!("cannot store the upload: {e}")))?
            .into_std();
        Ok(Staged { uploads, temporary, name: name.to_string(), file: Some(file) })
    }
}

/// An upload being written under its temporary name; removed unless committed.
#[derive(Debug)]
pub(crate) struct Staged {
    uploads: Dir,
    temporary: String,
    name: String,
    file: Option<File>,
}

impl Staged {
    /// The open file, to write to (`None` once committed).
    pub(crate) fn take_file(&mut self) -> Option<File> {
        self.file.take()
    }

    /// Gives back the file after a write.
    pub(crate) fn put_file(&mut self, file: File) {
        self.file = Some(file);
    }

    /// Syncs the file and renames it to its name, beneath `uploads/`.
    pub(crate) fn commit(mut self) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        self.uploads.rename(&self.temporary, &self.uploads, &self.name)?;
        self.temporary.clear();
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.temporary.is_empty() {
            let _ = self.uploads.remove_file(&self.temporary);
        }
    }
}

/// Pins `file` (opened by [`DataDir::open_input`]) at `pin`, a path in a folder only the
/// server writes: a hard link to the very file that was opened where the system allows
/// one, else a copy written under a temporary name and renamed.
pub(crate) fn pin(file: &File, pin: &Path) -> io::Result<()> {
    if link_opened(file, pin).is_ok() {
        return Ok(());
    }
    let temporary = pin.with_extension("pin.tmp");
    let mut copy = std::fs::OpenOptions::new().write(true).create_new(true).open(&temporary)?;
    let copied = io::copy(&mut &*file, &mut copy).and_then(|_| copy.flush()).and_then(|()| copy.sync_all());
    match copied.and_then(|()| std::fs::rename(&temporary, pin)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&temporary);
            Err(e)
        }
    }
}

/// A hard link at `pin` to the inode `file` holds open, through `/proc/self/fd`
/// (`linkat(2)` with `AT_SYMLINK_FOLLOW`: no name is resolved again).
#[cfg(target_os = "linux")]
fn link_opened(file: &File, pin: &Path) -> io::Result<()> {
    use rustix::fs::{AtFlags, CWD, linkat};
    use std::os::fd::AsRawFd;
    let opened = format!("/proc/self/fd/{}", file.as_raw_fd());
    linkat(CWD, opened.as_str(), CWD, pin, AtFlags::SYMLINK_FOLLOW).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn link_opened(_: &File, _: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The error answering a refused open of `input` (named `field`).
fn refusal(field: &str, input: &str, error: &io::Error) -> Problem {
    let escaped = error.kind() == io::ErrorKind::PermissionDenied
        && error.get_ref().is_some_and(|inner| inner.to_string().contains("outside"));
    match error.kind() {
        _ if escaped => Problem::invalid(
            field,
            format!(
                "`{input}` resolves outside the data directory (through a symbolic link that is \
                 absolute or climbs out of it); only files inside it are read, and links inside it \
                 must be relative"
            ),
        ),
        io::ErrorKind::NotFound => {
            Problem::missing(field, format!("`{input}` does not exist in the data directory"))
        }
        _ => Problem::invalid(field, format!("`{input}` cannot be opened in the data directory: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// A pin keeps the bytes of the file that was opened, whatever then happens to its
    /// name: replaced by another file, or deleted.
    #[test]
    fn a_pin_keeps_the_file_that_was_opened() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("data"));
        std::fs::create_dir_all(data.path()).unwrap();
        std::fs::write(data.path().join("a.csv"), "first").unwrap();
        let file = data.open_input("input", "a.csv").unwrap();
        std::fs::write(data.path().join("b.csv"), "second").unwrap();
        std::fs::rename(data.path().join("b.csv"), data.path().join("a.csv")).unwrap();
        let pinned = dir.path().join("pinned.csv");
        pin(&file, &pinned).unwrap();
        std::fs::remove_file(data.path().join("a.csv")).unwrap();
        let mut text = String::new();
        File::open(&pinned).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "first");
    }

    /// A named pipe (or a folder) in the data directory is refused as not a file, at once:
    /// opening a pipe for reading must not wait for a writer.
    #[test]
    fn a_named_pipe_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().to_path_buf());
        let made = std::process::Command::new("mkfifo").arg(dir.path().join("pipe.csv")).status().unwrap();
        assert!(made.success());
        std::fs::create_dir(dir.path().join("folder.csv")).unwrap();
        for name in ["pipe.csv", "folder.csv"] {
            let problem = data.open_input("input", name).unwrap_err();
            assert!(problem.detail.contains("is not a file in the data directory"), "{name}: {problem:?}");
        }
    }

    /// Where no link can be made (here, because a file already holds the pin's name), a
    /// copy of the opened file's bytes takes the name.
    #[test]
    fn a_copied_pin_has_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "bytes").unwrap();
        let file = File::open(dir.path().join("a.csv")).unwrap();
        std::fs::write(dir.path().join("pin.csv"), "old").unwrap();
        pin(&file, &dir.path().join("pin.csv")).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("pin.csv")).unwrap(), "bytes");
    }
}
