//! The crate's one error type, [`StaticError`].
//!
//! Every variant names the path it is about and, for I/O, the operation that failed,
//! so `keel collectstatic` can print one line a person can act on. Messages do not
//! repeat the underlying cause: it is kept as [`std::error::Error::source`], so the
//! binary's `{:#}` (anyhow) prints the whole chain exactly once.
//!
//! Differs from Django's collectstatic, which mostly lets `OSError` and `ValueError`
//! escape from the storage backend: here a problem with a source file (unsafe name,
//! symlink pointing out of its directory, clash with the manifest) is a typed error
//! raised *before* anything is written for that file.

use std::io;
use std::path::PathBuf;

/// Everything that can stop [`crate::collect`] or [`crate::Manifest::load`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StaticError {
    /// A filesystem operation (`op`, e.g. "read", "write", "rename", "walk") failed on `path`.
    #[error("cannot {op} '{}'", path.display())]
    Io {
        /// What was being done, as a verb phrase ("read", "create directory", ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// A relative name that could escape the static root or is not a clean relative path
    /// (`..` or `.` components, absolute, empty components, backslashes, NUL, not UTF-8),
    /// or a directory inside the static root that is a symlink or a file.
    #[error("unsafe path '{}': {reason}", path.display())]
    UnsafePath {
        /// The offending name or path, as given.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },

    /// A symlink inside a source directory whose target lies outside that directory.
    #[error(
        "symlink '{}' points outside its source directory '{}' (to '{}')",
        link.display(),
        source_dir.display(),
        target.display()
    )]
    SymlinkOutside {
        /// The symlink as found while walking the source.
        link: PathBuf,
        /// Where it resolves to.
        target: PathBuf,
        /// The (canonical) source directory it should have stayed inside.
        source_dir: PathBuf,
    },

    /// The static root and a source directory contain one another, so collecting would
    /// read its own output (Django refuses `STATIC_ROOT` in `STATICFILES_DIRS` likewise).
    #[error(
        "static root '{}' and source directory '{}' overlap",
        static_root.display(),
        source_dir.display()
    )]
    RootOverlapsSource {
        /// The (canonical) static root.
        static_root: PathBuf,
        /// The (canonical) source directory.
        source_dir: PathBuf,
    },

    /// A source file would be overwritten by something this crate generates: a file
    /// named like the manifest at the top level, or a file named exactly like the
    /// hashed copy of another file.
    #[error("'{name}' clashes with a generated file: {reason}")]
    NameClash {
        /// The collected name that clashes.
        name: String,
        /// What it clashes with.
        reason: String,
    },

    /// `manifest.json` is not valid JSON, lacks `paths`, or has an unknown `version`.
    #[error("cannot parse manifest '{}'", path.display())]
    ManifestParse {
        /// The manifest file.
        path: PathBuf,
        /// What serde_json found wrong.
        #[source]
        source: serde_json::Error,
    },
}

impl StaticError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StaticError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn unsafe_path(path: impl Into<PathBuf>, reason: &'static str) -> Self {
        StaticError::UnsafePath {
            path: path.into(),
            reason,
        }
    }
}
