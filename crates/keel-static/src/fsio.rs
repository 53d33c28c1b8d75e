//! Writing into the static root: only inside it, only when the bytes differ, and atomically.
//!
//! * Inside: every name is validated by [`crate::source`] before it gets here, and each
//!   directory on the way down is checked with `symlink_metadata`: a symlink or a file
//!   where a directory should be is refused, so nothing is ever written through a link
//!   that someone left in the static root.
//! * Only when different: an existing regular file with the same length is read and
//!   compared; equal bytes mean "unchanged" and the file (and its mtime) is not touched.
//!   Django compares modification times instead; comparing content makes a re-run after a
//!   `git checkout` (new mtimes, same bytes) a no-op and never misses an edit made within
//!   the filesystem's mtime granularity.
//! * Atomically: bytes go to a hidden temporary file in the destination's directory, are
//!   synced, and are renamed over the destination, so a server reading the root sees the
//!   old file or the new one, never half of one. A crash can leave a `.name.keel-tmp.*`
//!   file behind; its name starts with a dot, and static servers should not serve dotfiles.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::StaticError;
use crate::report::Outcome;

/// Makes temporary names unique across concurrent runs in one process (the pid
/// separates processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The static root, canonicalised, plus the directories already checked in this run.
pub(crate) struct OutDir {
    root: PathBuf,
    checked_dirs: HashSet<PathBuf>,
}

impl OutDir {
    pub(crate) fn new(root: PathBuf) -> Self {
        OutDir {
            root,
            checked_dirs: HashSet::new(),
        }
    }

    /// The filesystem path of a validated, `/`-separated name.
    pub(crate) fn path_of(&self, name: &str) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(name.split('/'));
        path
    }

    /// Create the directories leading to `name`, refusing symlinks and non-directories.
    fn ensure_parent(&mut self, name: &str) -> Result<(), StaticError> {
        let mut dir = self.root.clone();
        let mut parts: Vec<&str> = name.split('/').collect();
        parts.pop();
        for part in parts {
            dir.push(part);
            if self.checked_dirs.contains(&dir) {
                continue;
            }
            match fs::symlink_metadata(&dir) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(StaticError::unsafe_path(
                        dir,
                        "is a symlink inside the static root; refusing to write through it",
                    ));
                }
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(StaticError::unsafe_path(
                        dir,
                        "exists in the static root but is not a directory",
                    ));
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    match fs::create_dir(&dir) {
                        Ok(()) => {}
                        // Someone else made it meanwhile: check it like any other next time.
                        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                            let meta = fs::symlink_metadata(&dir)
                                .map_err(|e| StaticError::io("inspect", &dir, e))?;
                            if !meta.is_dir() {
                                return Err(StaticError::unsafe_path(
                                    dir,
                                    "exists in the static root but is not a directory",
                                ));
                            }
                        }
                        Err(err) => return Err(StaticError::io("create directory", dir, err)),
                    }
                }
                Err(err) => return Err(StaticError::io("inspect", dir, err)),
            }
            self.checked_dirs.insert(dir.clone());
        }
        Ok(())
    }

    /// The length of `name` if it exists as a regular file (not a symlink, not a directory).
    pub(crate) fn regular_file_len(&self, name: &str) -> Result<Option<u64>, StaticError> {
        let path = self.path_of(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(err) if is_absent(&err) => Ok(None),
            Err(err) => Err(StaticError::io("inspect", path, err)),
        }
    }

    /// Read `name` (call after [`OutDir::regular_file_len`] said it is a regular file).
    pub(crate) fn read(&self, name: &str) -> Result<Vec<u8>, StaticError> {
        let path = self.path_of(name);
        fs::read(&path).map_err(|e| StaticError::io("read", path, e))
    }

    /// Make `name` hold exactly `bytes`, writing only if it does not already.
    pub(crate) fn write_if_changed(
        &mut self,
        name: &str,
        bytes: &[u8],
    ) -> Result<Outcome, StaticError> {
        self.ensure_parent(name)?;
        let path = self.path_of(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() && meta.len() == bytes.len() as u64 => {
                let existing = fs::read(&path).map_err(|e| StaticError::io("read", &path, e))?;
                if existing == bytes {
                    return Ok(Outcome::Unchanged);
                }
            }
            Ok(meta) if meta.is_dir() => {
                return Err(StaticError::unsafe_path(
                    path,
                    "is a directory in the static root where a file must go",
                ));
            }
            // A different file, or a symlink: the rename below replaces it (never follows it).
            Ok(_) => {}
            Err(err) if is_absent(&err) => {}
            Err(err) => return Err(StaticError::io("inspect", path, err)),
        }
        self.write_atomically(&path, bytes)?;
        Ok(Outcome::Written)
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), StaticError> {
        let dir = path.parent().unwrap_or(&self.root);
        // A prefix of the name is enough to tell what it was; the whole name plus the
        // suffix could pass the filesystem's 255-byte limit.
        let base: String = path
            .file_name()
            .map(|n| n.to_string_lossy().chars().take(64).collect())
            .unwrap_or_default();
        let temp = dir.join(format!(
            ".{base}.keel-tmp.{}.{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
                .map_err(|e| StaticError::io("create temporary file", &temp, e))?;
            file.write_all(bytes)
                .map_err(|e| StaticError::io("write", &temp, e))?;
            file.sync_all()
                .map_err(|e| StaticError::io("sync", &temp, e))?;
            drop(file);
            fs::rename(&temp, path).map_err(|e| StaticError::io("rename into place", path, e))
        })();
        if result.is_err() {
            // Best effort: the temp file is hidden and harmless if this fails too.
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// Remove `name` if it is a regular file or a symlink; report whether it existed.
    pub(crate) fn remove_if_exists(&self, name: &str) -> Result<bool, StaticError> {
        let path = self.path_of(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => Ok(false),
            Ok(_) => match fs::remove_file(&path) {
                Ok(()) => Ok(true),
                Err(err) if is_absent(&err) => Ok(false),
                Err(err) => Err(StaticError::io("remove stale", path, err)),
            },
            Err(err) if is_absent(&err) => Ok(false),
            Err(err) => Err(StaticError::io("inspect", path, err)),
        }
    }
}

/// Not there, or a path component is a file (so it cannot be there).
fn is_absent(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}
