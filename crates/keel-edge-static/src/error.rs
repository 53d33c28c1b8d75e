//! The crate's one error type, [`StaticError`], and the record of files left out of an
//! index, [`Skipped`].
//!
//! Only loading can fail: serving never returns an error, every problem with a request
//! is an HTTP status (see [`StaticFiles::serve`](crate::StaticFiles::serve)). nginx, by
//! contrast, finds out at request time that a file is unreadable and answers 403/500;
//! here such a file is found at load and either refuses the load (the static root
//! itself is unusable) or is left out and listed in [`crate::StaticFiles::skipped`]
//! (one bad file must not keep the edge from starting or reloading).

use std::io;
use std::path::PathBuf;

/// Why [`crate::StaticFiles::load`] (or a reload) failed. On a reload the previous index
/// keeps being served, so the caller only has to log this.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StaticError {
    /// A [`crate::StaticOptions`] field is out of range.
    #[error("invalid static option `{key}`: {reason}")]
    InvalidOptions {
        /// The field name, as in [`crate::StaticOptions`].
        key: &'static str,
        /// What is wrong with its value.
        reason: String,
    },

    /// A filesystem operation on the static root (`op`: "open static root", "read
    /// manifest", ...) failed.
    #[error("cannot {op} '{}'", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The static root exists but is not a directory.
    #[error("static root '{}' is not a directory", path.display())]
    NotADirectory {
        /// The static root as given.
        path: PathBuf,
    },

    /// `manifest.json` exists in the static root but cannot be read or parsed (a missing
    /// manifest is fine: the root was then not made by collectstatic).
    #[error("cannot load the manifest of static root '{}'", root.display())]
    Manifest {
        /// The static root as given.
        root: PathBuf,
        /// What keel-static found wrong.
        #[source]
        source: keel_static::StaticError,
    },
}

/// A file below the static root that is not in the index, and why. Dotfiles and
/// dot-directories are left out silently (they include collectstatic's temp files) and
/// are not listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The path as found while walking the root.
    pub path: PathBuf,
    /// Why it is not served.
    pub reason: SkipReason,
}

/// Why a file is not in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// A symlink (or a file below a symlinked directory) that resolves outside the static
    /// root, or to a dotfile inside it.
    SymlinkOutsideRoot {
        /// Where it resolves to.
        target: PathBuf,
    },
    /// The relative name is not UTF-8, or contains a backslash or control character, so
    /// no request path could name it.
    UnservableName,
    /// The walk or a read failed (permission denied, symlink loop, vanished file).
    Unreadable {
        /// The error, as text.
        error: String,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::SymlinkOutsideRoot { target } => write!(
                f,
                "symlink resolves outside the static root or to a dotfile ('{}')",
                target.display()
            ),
            SkipReason::UnservableName => f.write_str("name cannot be requested over HTTP"),
            SkipReason::Unreadable { error } => write!(f, "unreadable: {error}"),
        }
    }
}
