//! What a [`crate::collect`] run did, per file, and its one-line human summary.
//!
//! The summary mirrors Django's ("12 static files copied to '/srv/static', 3 unmodified,
//! 9 post-processed.") with the same meaning of the counts: *copied* = originals written
//! this run, *unmodified* = originals already identical, *post-processed* = files whose
//! hashed copy or precompressed variants were (re)written. Unlike Django, the report is
//! data: every file's hashed name and variants, every skipped file and why, and every
//! warning (CSS references that could not be rewritten) are there for the caller.

use std::fmt;
use std::path::PathBuf;

use crate::compress::Encoding;

/// What happened to one output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The file was created or replaced (atomically).
    Written,
    /// The file already had exactly these bytes and was not touched.
    Unchanged,
}

/// What happened to one precompressed variant (`name.gz` or `name.br`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariantOutcome {
    /// Compressed and written.
    Written,
    /// An existing variant already decompresses to exactly the base file; not touched.
    Unchanged,
    /// Compression did not make the file smaller, so there is no variant.
    NotSmaller,
    /// A variant from an earlier run no longer belongs (the file shrank, stopped being
    /// compressible or compression stopped paying off) and was deleted so the edge cannot
    /// serve stale bytes.
    Removed,
    /// A source supplies a file with this name; it was collected as is and not replaced.
    ProvidedBySource,
}

/// One precompressed variant of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// Name of the variant relative to the static root (`css/site.css.br`).
    pub name: String,
    /// Its encoding.
    pub encoding: Encoding,
    /// What was done.
    pub outcome: VariantOutcome,
}

/// Everything done for one collected file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// Name relative to the static root, `/`-separated (`css/site.css`).
    pub name: String,
    /// Index in [`crate::CollectOptions::sources`] of the source it came from.
    pub source_index: usize,
    /// The copy under its original name (always the source's bytes, unrewritten).
    pub original: Outcome,
    /// The content-hashed name (`css/site.3f2a9c1e5b07.css`).
    pub hashed_name: String,
    /// The copy under the hashed name (for CSS: with references rewritten).
    pub hashed: Outcome,
    /// CSS only: how many `url()`/`@import` references were rewritten to hashed names.
    pub references_rewritten: usize,
    /// Precompressed variants of the original and of the hashed copy; variants that were
    /// never wanted (incompressible type, under the size threshold) are not listed.
    pub variants: Vec<Variant>,
}

impl FileReport {
    fn post_processed(&self) -> bool {
        self.hashed == Outcome::Written
            || self
                .variants
                .iter()
                .any(|v| matches!(v.outcome, VariantOutcome::Written | VariantOutcome::Removed))
    }
}

/// Why a file found in a source was not collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Its name, or a directory above it, starts with `.`.
    Hidden,
    /// Its name ends with `~` (editor backup).
    EditorBackup,
    /// A `CVS` directory.
    VersionControl,
    /// An earlier source has a file with the same name; that one was collected.
    Shadowed {
        /// Index of the source whose file won.
        by_source: usize,
    },
    /// Not a regular file (socket, FIFO, device).
    NotAFile,
}

/// A file or directory of a source that was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its name relative to its source (a directory's name when the whole directory was skipped).
    pub name: String,
    /// Index of the source it was found in.
    pub source_index: usize,
    /// Why it was left out.
    pub reason: SkipReason,
}

/// Something worth telling a person that did not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A CSS reference to a file that is not among the collected files (or resolves above
    /// the static root); it was left as written. Django's ManifestStaticFilesStorage
    /// fails the whole run here instead.
    MissingReference {
        /// The CSS file.
        css: String,
        /// The reference as written.
        url: String,
    },
    /// A CSS reference that closes a cycle of CSS files referencing each other; it was
    /// left pointing at the unhashed name (which is collected too, so it still resolves).
    CircularReference {
        /// The CSS file.
        css: String,
        /// The reference as written.
        url: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::MissingReference { css, url } => write!(
                f,
                "{css}: '{url}' is not a collected file; reference left unchanged"
            ),
            Warning::CircularReference { css, url } => write!(
                f,
                "{css}: '{url}' closes a reference cycle; left pointing at the unhashed name"
            ),
        }
    }
}

/// The result of one [`crate::collect`] run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The static root as given in the options.
    pub static_root: PathBuf,
    /// Every collected file, sorted by name.
    pub files: Vec<FileReport>,
    /// Everything left out, in the order found.
    pub skipped: Vec<Skipped>,
    /// Whether `manifest.json` was rewritten.
    pub manifest: Outcome,
    /// Problems that did not stop the run.
    pub warnings: Vec<Warning>,
}

impl Report {
    /// Originals written this run (Django's "copied").
    pub fn copied_count(&self) -> usize {
        self.files
            .iter()
            .filter(|f| f.original == Outcome::Written)
            .count()
    }

    /// Originals already identical (Django's "unmodified").
    pub fn unmodified_count(&self) -> usize {
        self.files
            .iter()
            .filter(|f| f.original == Outcome::Unchanged)
            .count()
    }

    /// Files whose hashed copy or variants were (re)written or removed this run.
    pub fn post_processed_count(&self) -> usize {
        self.files.iter().filter(|f| f.post_processed()).count()
    }

    /// True when the run changed nothing on disk.
    pub fn is_noop(&self) -> bool {
        self.manifest == Outcome::Unchanged
            && self.copied_count() == 0
            && self.post_processed_count() == 0
    }

    /// The report for one collected file.
    pub fn file(&self, name: &str) -> Option<&FileReport> {
        self.files
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.files.get(i))
    }
}

impl fmt::Display for Report {
    /// Django's summary sentence, then one line per warning.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let copied = self.copied_count();
        write!(
            f,
            "{copied} static file{} copied to '{}'",
            if copied == 1 { "" } else { "s" },
            self.static_root.display()
        )?;
        let unmodified = self.unmodified_count();
        if unmodified > 0 {
            write!(f, ", {unmodified} unmodified")?;
        }
        let post_processed = self.post_processed_count();
        if post_processed > 0 {
            write!(f, ", {post_processed} post-processed")?;
        }
        f.write_str(".")?;
        for warning in &self.warnings {
            write!(f, "\nwarning: {warning}")?;
        }
        Ok(())
    }
}
