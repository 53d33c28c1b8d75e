//! The pipeline: gather → copy and hash non-CSS files → rewrite, hash and copy CSS files
//! in dependency order → precompress → write the manifest.
//!
//! Differs from Django's `collectstatic` + `ManifestStaticFilesStorage.post_process`:
//! * one pass per file instead of up to five whole-tree passes: CSS files are ordered so
//!   that every file a CSS file references is hashed before it (a depth-first post-order
//!   over CSS→CSS references); a reference that closes a cycle is left pointing at the
//!   unhashed name, with a warning, instead of Django's "Max post-process passes
//!   exceeded" error;
//! * the original name keeps the source's bytes; only the hashed copy of a CSS file is
//!   rewritten (as in Django), and the hash is of the rewritten bytes;
//! * a reference to a file that was not collected is a warning, not a failure;
//! * files are compared by content, not mtime, and written atomically (see `fsio`);
//! * precompressed `.gz`/`.br` variants are written beside both names (Django has none).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::PathBuf;

use crate::compress::{
    decompresses_to, is_compressible, CompressCache, Encoding, MIN_COMPRESS_BYTES,
};
use crate::css::{self, CssRef, Target};
use crate::error::StaticError;
use crate::fsio::OutDir;
use crate::hash::{content_hash, hashed_name, split_ext};
use crate::manifest::{Manifest, MANIFEST_NAME};
use crate::report::{FileReport, Report, Variant, VariantOutcome, Warning};
use crate::source::{self, Entry, Source};

/// What to collect and where to.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Directory that receives the collected files (`--static-root`); created if missing.
    /// It must not contain, or be inside, any [`Source::Dir`].
    pub static_root: PathBuf,
    /// Sources in priority order: for a name present in several sources the **first**
    /// source wins and the others are reported as shadowed, like Django's finders.
    pub sources: Vec<Source>,
}

/// Collect every source into `opts.static_root`: copies under the original names,
/// content-hashed copies (CSS references rewritten), `.gz`/`.br` variants and
/// `manifest.json`.
///
/// Idempotent: with unchanged inputs a second run writes nothing and every output keeps
/// its bytes and mtime. Files from earlier runs that no longer correspond to a source
/// (old hashed names, removed files) are left in place, as Django leaves them, so pages
/// rendered before a deploy keep working; only a precompressed variant whose base file
/// changed is replaced or removed, because it would otherwise serve stale bytes.
pub fn collect(opts: &CollectOptions) -> Result<Report, StaticError> {
    fs::create_dir_all(&opts.static_root)
        .map_err(|e| StaticError::io("create static root", &opts.static_root, e))?;
    let root = opts
        .static_root
        .canonicalize()
        .map_err(|e| StaticError::io("open static root", &opts.static_root, e))?;

    let gathered = source::gather(&opts.sources, &root)?;
    if gathered.entries.contains_key(MANIFEST_NAME) {
        return Err(StaticError::NameClash {
            name: MANIFEST_NAME.to_owned(),
            reason: "the manifest is written under this name at the top of the static root"
                .to_owned(),
        });
    }

    let mut run = Run {
        out: OutDir::new(root),
        entries: &gathered.entries,
        hashed: BTreeMap::new(),
        files: Vec::with_capacity(gathered.entries.len()),
        warnings: Vec::new(),
    };

    // Non-CSS files first: their hashed names are what CSS files get rewritten to.
    let mut css_files = BTreeMap::new();
    for (name, entry) in &gathered.entries {
        let bytes = entry.origin.read()?;
        if is_css(name) {
            let refs = css::find_refs(&bytes);
            css_files.insert(name.as_str(), (entry, bytes, refs));
        } else {
            run.process(name, entry, &bytes, &bytes, 0)?;
        }
    }

    for name in css_order(&css_files) {
        let Some((entry, bytes, refs)) = css_files.get(name) else {
            continue;
        };
        let (rewritten, count) = run.rewrite_css(name, bytes, refs);
        run.process(name, entry, bytes, &rewritten, count)?;
    }

    let Run {
        mut out,
        hashed,
        mut files,
        warnings,
        ..
    } = run;
    let manifest_json =
        Manifest::from_paths(hashed)
            .to_json()
            .map_err(|e| StaticError::ManifestParse {
                path: out.path_of(MANIFEST_NAME),
                source: e,
            })?;
    let manifest = out.write_if_changed(MANIFEST_NAME, &manifest_json)?;

    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Report {
        static_root: opts.static_root.clone(),
        files,
        skipped: gathered.skipped,
        manifest,
        warnings,
    })
}

fn is_css(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    split_ext(base).1.eq_ignore_ascii_case(".css")
}

type CssFiles<'n, 'e, 'a> = BTreeMap<&'n str, (&'e Entry<'a>, Cow<'a, [u8]>, Vec<CssRef>)>;

/// CSS names so that each comes after the CSS files it references (depth-first
/// post-order, names visited in sorted order, so the order is deterministic). Edges that
/// close a cycle are simply not waited for.
fn css_order<'n>(css_files: &CssFiles<'n, '_, '_>) -> Vec<&'n str> {
    let deps: BTreeMap<&'n str, Vec<&'n str>> = css_files
        .iter()
        .map(|(&name, (_, _, refs))| {
            let targets = refs
                .iter()
                .filter_map(|r| match css::resolve(name, &r.url) {
                    Target::Local { name: target, .. } => {
                        css_files.get_key_value(target.as_str()).map(|(k, _)| *k)
                    }
                    _ => None,
                })
                .collect();
            (name, targets)
        })
        .collect();

    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        OnStack,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = HashMap::with_capacity(deps.len());
    let mut order = Vec::with_capacity(deps.len());
    for &start in deps.keys() {
        if marks.contains_key(start) {
            continue;
        }
        marks.insert(start, Mark::OnStack);
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        while let Some(&(node, next)) = stack.last() {
            let node_deps = deps.get(node).map_or(&[][..], Vec::as_slice);
            if let Some(&dep) = node_deps.get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                if !marks.contains_key(dep) {
                    marks.insert(dep, Mark::OnStack);
                    stack.push((dep, 0));
                }
            } else {
                marks.insert(node, Mark::Done);
                order.push(node);
                stack.pop();
            }
        }
    }
    debug_assert!(marks.values().all(|m| *m == Mark::Done));
    order
}

struct Run<'g, 'a> {
    out: OutDir,
    entries: &'g BTreeMap<String, Entry<'a>>,
    /// name → hashed name, filled as files are processed.
    hashed: BTreeMap<String, String>,
    files: Vec<FileReport>,
    warnings: Vec<Warning>,
}

impl Run<'_, '_> {
    /// The CSS with every reference to an already hashed file replaced by its hashed name.
    fn rewrite_css(&mut self, name: &str, bytes: &[u8], refs: &[CssRef]) -> (Vec<u8>, usize) {
        let mut replacements = Vec::new();
        for r in refs {
            let (target, path_len) = match css::resolve(name, &r.url) {
                Target::External => continue,
                Target::Local { name, path_len } => (name, path_len),
                Target::Unresolvable => {
                    self.warnings.push(Warning::MissingReference {
                        css: name.to_owned(),
                        url: r.url.clone(),
                    });
                    continue;
                }
            };
            if let Some(hashed) = self.hashed.get(&target) {
                let new_url = css::rewrite_url(name, &r.url, path_len, &target, hashed);
                replacements.push((r.start, r.end, new_url));
            } else if self.entries.contains_key(&target) {
                // Collected but not hashed yet: only CSS in a cycle gets here.
                self.warnings.push(Warning::CircularReference {
                    css: name.to_owned(),
                    url: r.url.clone(),
                });
            } else {
                self.warnings.push(Warning::MissingReference {
                    css: name.to_owned(),
                    url: r.url.clone(),
                });
            }
        }
        let count = replacements.len();
        (css::splice(bytes, &replacements), count)
    }

    /// Write the original, the hashed copy and their variants; record the hashed name.
    fn process(
        &mut self,
        name: &str,
        entry: &Entry<'_>,
        original: &[u8],
        processed: &[u8],
        references_rewritten: usize,
    ) -> Result<(), StaticError> {
        let hashed_name = hashed_name(name, &content_hash(processed));
        if self.entries.contains_key(&hashed_name) {
            return Err(StaticError::NameClash {
                name: hashed_name,
                reason: format!("a source file has the name of the hashed copy of '{name}'"),
            });
        }

        let original_outcome = self.out.write_if_changed(name, original)?;
        let hashed_outcome = self.out.write_if_changed(&hashed_name, processed)?;

        let mut variants = Vec::new();
        let mut cache = CompressCache::default();
        self.precompress(name, original, &mut cache, &mut variants)?;
        if processed != original {
            cache = CompressCache::default();
        }
        self.precompress(&hashed_name, processed, &mut cache, &mut variants)?;

        self.hashed.insert(name.to_owned(), hashed_name.clone());
        self.files.push(FileReport {
            name: name.to_owned(),
            source_index: entry.source_index,
            original: original_outcome,
            hashed_name,
            hashed: hashed_outcome,
            references_rewritten,
            variants,
        });
        Ok(())
    }

    /// Make the `.gz`/`.br` variants of `base` match `bytes` (or not exist).
    fn precompress(
        &mut self,
        base: &str,
        bytes: &[u8],
        cache: &mut CompressCache,
        variants: &mut Vec<Variant>,
    ) -> Result<(), StaticError> {
        let wanted = is_compressible(base) && bytes.len() >= MIN_COMPRESS_BYTES;
        for encoding in Encoding::ALL {
            let name = format!("{base}{}", encoding.suffix());
            let outcome = if self.entries.contains_key(&name) {
                // The source ships its own variant; it is collected under this name.
                if !wanted {
                    continue;
                }
                VariantOutcome::ProvidedBySource
            } else if !wanted {
                if !self.out.remove_if_exists(&name)? {
                    continue;
                }
                VariantOutcome::Removed
            } else if self.existing_variant_matches(&name, encoding, bytes)? {
                VariantOutcome::Unchanged
            } else {
                let compressed = cache
                    .get(encoding, bytes)
                    .map_err(|e| StaticError::io("compress", self.out.path_of(base), e))?;
                if compressed.len() < bytes.len() {
                    self.out.write_if_changed(&name, compressed)?;
                    VariantOutcome::Written
                } else if self.out.remove_if_exists(&name)? {
                    VariantOutcome::Removed
                } else {
                    VariantOutcome::NotSmaller
                }
            };
            variants.push(Variant {
                name,
                encoding,
                outcome,
            });
        }
        Ok(())
    }

    /// True when `name` exists, is smaller than `bytes`, and decompresses to exactly `bytes`.
    /// This keeps a second run from recompressing (brotli 11 is slow) while never keeping a
    /// variant that would serve other bytes than its base file.
    fn existing_variant_matches(
        &self,
        name: &str,
        encoding: Encoding,
        bytes: &[u8],
    ) -> Result<bool, StaticError> {
        match self.out.regular_file_len(name)? {
            Some(len) if len < bytes.len() as u64 => {
                let existing = self.out.read(name)?;
                Ok(decompresses_to(encoding, &existing, bytes))
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn css_detection() {
        assert!(is_css("a/site.css"));
        assert!(is_css("A.CSS"));
        assert!(!is_css("css"));
        assert!(!is_css("a/site.css.map"));
        assert!(!is_css("a.scss"));
    }
}
