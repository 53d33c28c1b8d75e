//! [`StaticFiles::load`]: one walk of the static root into an in-memory index of every
//! servable file, with everything a response needs computed once.
//!
//! Per file the index holds its Content-Type, length, strong ETag, Last-Modified,
//! Cache-Control, and its `.br`/`.gz` variants; small files' bytes, or an open handle for
//! large ones. Serving is then a map lookup and a few header clones.
//!
//! # What gets in
//! * Regular files below the root, found by following symlinks, whose *canonical* path
//!   is still inside the canonical root and has no dot-component. A symlink out of the
//!   root (or to `.env` inside it) is left out and listed in [`StaticFiles::skipped`].
//! * Not dotfiles or anything below a dot-directory: they are never even opened.
//!   collectstatic's temp files (`.name.keel-tmp.*`) are dotfiles.
//! * Only names a request can spell: UTF-8, no backslash or control characters.
//! * `name.br` / `name.gz` beside `name` become its variants, and are still servable under
//!   their own names (as nginx would serve them).
//! * `manifest.json` is served like any file: it only lists public names.
//!
//! # ETags
//! `"<first 16 hex digits of SHA-256 of the bytes>"`, for every file including variants
//! (so br, gzip and identity have distinct ETags, as representations must). Hashing the
//! content rather than using `mtime-size` (nginx) keeps ETags equal across edges and
//! deploys that did not change a file, and makes them change whenever the bytes do,
//! even within one second. For hashed names it costs one read of bytes we read anyway
//! (small files) or one extra pass at load (large ones); the name's own hash would do for
//! those, but one rule is simpler to trust than two.
//!
//! # Memory
//! Files ≤ [`StaticOptions::memory_limit_per_file_bytes`] are read into `Bytes`, until
//! [`StaticOptions::memory_limit_total_bytes`] is spent (files in name order); identical
//! contents — a file and its hashed copy — share one buffer. Everything else keeps an
//! open file handle, read per request; that is one file descriptor per large file for
//! the life of the index (a deleted file's blocks are freed at the next reload).
//!
//! # Reloading
//! An index never changes. A file added to the root after load is a 404 until the next
//! load (nginx would find it at once); to reload, build a new `StaticFiles` and swap it
//! in with [`crate::StaticHandle`]. Loading does blocking file I/O: call it from
//! `tokio::task::spawn_blocking` when a runtime is running.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderValue;
use keel_static::{Encoding, Manifest, MANIFEST_NAME};
use sha2::{Digest, Sha256};
use walkdir::WalkDir;

use crate::error::{SkipReason, Skipped, StaticError};
use crate::options::StaticOptions;

/// `Cache-Control` of content-hashed names: one year (the longest value HTTP/1.1 caches
/// were historically required to honour) and `immutable`, so browsers skip revalidation
/// even on reload.
pub(crate) const CACHE_IMMUTABLE: HeaderValue =
    HeaderValue::from_static("public, max-age=31536000, immutable");

/// An immutable index of one static root. Cheap to share (`Arc`); see the module docs.
pub struct StaticFiles {
    pub(crate) root: PathBuf,
    pub(crate) opts: StaticOptions,
    pub(crate) entries: HashMap<Box<str>, Entry>,
    skipped: Vec<Skipped>,
    memory_bytes: u64,
    streamed_files: usize,
}

/// One servable name.
pub(crate) struct Entry {
    pub(crate) content_type: HeaderValue,
    pub(crate) cache_control: HeaderValue,
    pub(crate) last_modified: Option<LastModified>,
    pub(crate) identity: Rep,
    pub(crate) br: Option<Rep>,
    pub(crate) gzip: Option<Rep>,
    /// The header lines of a full `200` for each form (identity, br, gzip), written once
    /// at load by the same code as every other answer; see [`StaticFiles::plain_hit`].
    pub(crate) wire: [Bytes; 3],
}

impl Entry {
    pub(crate) fn has_variants(&self) -> bool {
        self.br.is_some() || self.gzip.is_some()
    }

    pub(crate) fn rep(&self, encoding: Option<Encoding>) -> &Rep {
        match encoding {
            Some(Encoding::Brotli) => self.br.as_ref().unwrap_or(&self.identity),
            Some(Encoding::Gzip) => self.gzip.as_ref().unwrap_or(&self.identity),
            None => &self.identity,
        }
    }
}

/// `Last-Modified` as sent, and as whole seconds for comparisons.
#[derive(Clone)]
pub(crate) struct LastModified {
    pub(crate) header: HeaderValue,
    pub(crate) secs: u64,
}

/// One representation: the identity bytes, or a precompressed variant.
#[derive(Clone)]
pub(crate) struct Rep {
    pub(crate) etag: HeaderValue,
    pub(crate) len: u64,
    pub(crate) content_length: HeaderValue,
    pub(crate) data: Data,
}

#[derive(Clone)]
pub(crate) enum Data {
    Memory(Bytes),
    File(Arc<File>),
}

impl StaticFiles {
    /// Walk `root` once and index every servable file (see the module docs for what is
    /// left out). Fails when the options are invalid, the root cannot be opened or is not
    /// a directory, or `manifest.json` exists but is invalid; problems with single files
    /// only leave those files out ([`StaticFiles::skipped`]).
    pub fn load(root: &Path, opts: StaticOptions) -> Result<StaticFiles, StaticError> {
        opts.validate()?;
        let canonical_root = root.canonicalize().map_err(|source| StaticError::Io {
            op: "open static root",
            path: root.to_path_buf(),
            source,
        })?;
        if !canonical_root.is_dir() {
            return Err(StaticError::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        let manifest = load_manifest(root, &canonical_root)?;

        let mut builder = Builder {
            opts: &opts,
            canonical_root: &canonical_root,
            files: Vec::new(),
            skipped: Vec::new(),
            by_digest: HashMap::new(),
            memory_bytes: 0,
            streamed_files: 0,
        };
        builder.walk();

        let Builder {
            files,
            skipped,
            memory_bytes,
            streamed_files,
            ..
        } = builder;
        let entries = assemble(files, &manifest, &opts);
        tracing::info!(
            root = %root.display(),
            files = entries.len(),
            memory_bytes,
            streamed_files,
            skipped = skipped.len(),
            "static root indexed"
        );
        Ok(StaticFiles {
            root: root.to_path_buf(),
            opts,
            entries,
            skipped,
            memory_bytes,
            streamed_files,
        })
    }

    /// Load the same root again with the same options (what SIGHUP does).
    pub fn reload(&self) -> Result<StaticFiles, StaticError> {
        StaticFiles::load(&self.root, self.opts.clone())
    }

    /// The static root as given to [`StaticFiles::load`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The options this index was built with.
    pub fn options(&self) -> &StaticOptions {
        &self.opts
    }

    /// Number of servable names (variants count under their own names too).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is servable.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when `name` (decoded, relative, `/`-separated) is servable.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Servable names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|k| &**k)
    }

    /// Bytes of file content held in memory.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    /// Number of files (including variants) streamed from disk, each holding an open
    /// file descriptor.
    pub fn streamed_files(&self) -> usize {
        self.streamed_files
    }

    /// Files below the root that are not served, and why (dotfiles are not listed).
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }
}

impl fmt::Debug for StaticFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticFiles")
            .field("root", &self.root)
            .field("files", &self.entries.len())
            .field("memory_bytes", &self.memory_bytes)
            .field("streamed_files", &self.streamed_files)
            .field("skipped", &self.skipped.len())
            .finish()
    }
}

fn load_manifest(root: &Path, canonical_root: &Path) -> Result<Manifest, StaticError> {
    match fs::symlink_metadata(canonical_root.join(MANIFEST_NAME)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Manifest::default()),
        _ => Manifest::load(canonical_root).map_err(|source| StaticError::Manifest {
            root: root.to_path_buf(),
            source,
        }),
    }
}

/// A file read (or opened) during the walk, before variants are paired.
struct Loaded {
    name: String,
    rep: Rep,
    modified: Option<SystemTime>,
}

struct Builder<'a> {
    opts: &'a StaticOptions,
    canonical_root: &'a Path,
    files: Vec<Loaded>,
    skipped: Vec<Skipped>,
    /// Identical contents share one buffer (a file and its hashed copy).
    by_digest: HashMap<[u8; 32], Bytes>,
    memory_bytes: u64,
    streamed_files: usize,
}

impl Builder<'_> {
    fn walk(&mut self) {
        let walker = WalkDir::new(self.canonical_root)
            .follow_links(true)
            .sort_by_file_name()
            .min_depth(1)
            .into_iter()
            // Dotfiles and dot-directories are never opened, let alone served.
            .filter_entry(|e| e.file_name().as_encoded_bytes().first() != Some(&b'.'));
        for item in walker {
            let entry = match item {
                Ok(entry) => entry,
                Err(error) => {
                    let path = error.path().map(Path::to_path_buf).unwrap_or_default();
                    self.skip(
                        path,
                        SkipReason::Unreadable {
                            error: error.to_string(),
                        },
                    );
                    continue;
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            let Some(name) = servable_name(path, self.canonical_root) else {
                self.skip(path.to_path_buf(), SkipReason::UnservableName);
                continue;
            };
            if let Err(reason) = self.check_containment(path) {
                self.skip(path.to_path_buf(), reason);
                continue;
            }
            match self.load_file(path) {
                Ok((rep, modified)) => self.files.push(Loaded {
                    name,
                    rep,
                    modified,
                }),
                Err(error) => self.skip(
                    path.to_path_buf(),
                    SkipReason::Unreadable {
                        error: error.to_string(),
                    },
                ),
            }
        }
    }

    fn skip(&mut self, path: PathBuf, reason: SkipReason) {
        tracing::warn!(path = %path.display(), %reason, "static file not served");
        self.skipped.push(Skipped { path, reason });
    }

    /// The file's real location must be inside the root and not hidden: this is what
    /// keeps a symlink (to a file, or to a directory above the file) from publishing
    /// `/etc/passwd` or `.env`.
    fn check_containment(&self, path: &Path) -> Result<(), SkipReason> {
        let target = path.canonicalize().map_err(|e| SkipReason::Unreadable {
            error: e.to_string(),
        })?;
        let inside = target.strip_prefix(self.canonical_root).is_ok_and(|rel| {
            rel.components().all(|c| match c {
                Component::Normal(part) => part.as_encoded_bytes().first() != Some(&b'.'),
                _ => false,
            })
        });
        if inside {
            Ok(())
        } else {
            Err(SkipReason::SymlinkOutsideRoot { target })
        }
    }

    /// Open the file once; read it into memory if it fits the budget, else keep the
    /// handle. Length and mtime come from the open handle, so they describe the bytes
    /// that will be served.
    fn load_file(&mut self, path: &Path) -> io::Result<(Rep, Option<SystemTime>)> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        let modified = meta.modified().ok();
        let len = meta.len();
        let fits = len <= self.opts.memory_limit_per_file_bytes
            && self.memory_bytes.saturating_add(len) <= self.opts.memory_limit_total_bytes;
        if fits {
            let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            // Never read more than was measured, so a file growing under us cannot
            // blow the memory budget; the hash covers exactly what is served.
            (&mut file).take(len).read_to_end(&mut bytes)?;
            let digest: [u8; 32] = Sha256::digest(&bytes).into();
            let bytes = match self.by_digest.get(&digest) {
                Some(shared) => shared.clone(),
                None => {
                    let bytes = Bytes::from(bytes);
                    self.memory_bytes += bytes.len() as u64;
                    self.by_digest.insert(digest, bytes.clone());
                    bytes
                }
            };
            let len = bytes.len() as u64;
            Ok((rep(&digest, len, Data::Memory(bytes)), modified))
        } else {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut reader = (&file).take(len);
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                hasher.update(buf.get(..n).unwrap_or_default());
            }
            let digest: [u8; 32] = hasher.finalize().into();
            self.streamed_files += 1;
            Ok((rep(&digest, len, Data::File(Arc::new(file))), modified))
        }
    }
}

fn rep(digest: &[u8; 32], len: u64, data: Data) -> Rep {
    Rep {
        etag: etag(digest),
        len,
        content_length: HeaderValue::from(len),
        data,
    }
}

/// `"` + 16 lowercase hex digits (64 bits) of the digest + `"`.
fn etag(digest: &[u8; 32]) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [b'"'; 18];
    for (i, byte) in digest.iter().take(8).enumerate() {
        if let Some(pair) = text.get_mut(1 + 2 * i..3 + 2 * i) {
            pair.copy_from_slice(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0x0f)]]);
        }
    }
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// The `/`-separated name of `path` relative to the root, if a request can spell it.
fn servable_name(path: &Path, root: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut name = String::new();
    for component in rel.components() {
        let Component::Normal(part) = component else {
            return None;
        };
        let part = part.to_str()?;
        if part.is_empty() || part.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\') {
            return None;
        }
        if !name.is_empty() {
            name.push('/');
        }
        name.push_str(part);
    }
    (!name.is_empty()).then_some(name)
}

/// Pair variants with their base names and compute per-name headers.
fn assemble(
    files: Vec<Loaded>,
    manifest: &Manifest,
    opts: &StaticOptions,
) -> HashMap<Box<str>, Entry> {
    let reps: HashMap<&str, &Rep> = files.iter().map(|f| (f.name.as_str(), &f.rep)).collect();
    let short_cache = HeaderValue::try_from(format!("public, max-age={}", opts.max_age.as_secs()))
        .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=60"));

    let mut entries = HashMap::with_capacity(files.len());
    for file in &files {
        let name = file.name.as_str();
        // `x.css.br` served under its own name is cached like `x.css`: it changes exactly
        // when `x.css` does.
        let base = Encoding::ALL
            .iter()
            .find_map(|e| name.strip_suffix(e.suffix()))
            .filter(|base| reps.contains_key(base))
            .unwrap_or(name);
        let immutable = manifest.is_hashed(base)
            || (opts.trust_hashed_names && keel_static::looks_hashed(base));
        let variant = |encoding: Encoding| {
            reps.get(format!("{name}{}", encoding.suffix()).as_str())
                .map(|r| (*r).clone())
        };
        let mut entry = Entry {
            content_type: content_type(name),
            cache_control: if immutable {
                CACHE_IMMUTABLE
            } else {
                short_cache.clone()
            },
            last_modified: file.modified.and_then(last_modified),
            identity: file.rep.clone(),
            br: variant(Encoding::Brotli),
            gzip: variant(Encoding::Gzip),
            wire: Default::default(),
        };
        entry.wire = [
            crate::serve::wire_head(&entry, None),
            crate::serve::wire_head(&entry, Some(Encoding::Brotli)),
            crate::serve::wire_head(&entry, Some(Encoding::Gzip)),
        ];
        entries.insert(Box::from(name), entry);
    }
    entries
}

fn last_modified(time: SystemTime) -> Option<LastModified> {
    let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let header = HeaderValue::try_from(httpdate::fmt_http_date(time)).ok()?;
    Some(LastModified { header, secs })
}

/// Content-Type from the extension (mime_guess's table, close to nginx's `mime.types`),
/// with `charset=utf-8` on text types: collectstatic's outputs are UTF-8 and without a
/// charset browsers guess from the locale (nginx adds it only with `charset utf-8;`).
pub(crate) fn content_type(name: &str) -> HeaderValue {
    let Some(mime) = mime_guess::from_path(name).first() else {
        return HeaderValue::from_static("application/octet-stream");
    };
    let essence = mime.essence_str();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/manifest+json"
                | "application/xml"
                | "application/rss+xml"
                | "application/atom+xml"
                | "image/svg+xml"
        );
    let text = if textual {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    };
    HeaderValue::try_from(text)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let ct = |n: &str| content_type(n).to_str().unwrap().to_owned();
        assert_eq!(ct("a.css"), "text/css; charset=utf-8");
        assert_eq!(ct("a.html"), "text/html; charset=utf-8");
        assert_eq!(ct("a.json"), "application/json; charset=utf-8");
        assert_eq!(ct("a.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(ct("a.png"), "image/png");
        assert_eq!(ct("a.woff2"), "font/woff2");
        assert_eq!(ct("a.wasm"), "application/wasm");
        assert_eq!(ct("LICENSE"), "application/octet-stream");
        assert!(
            ct("a.js").starts_with("text/javascript")
                || ct("a.js").starts_with("application/javascript")
        );
        assert!(ct("a.js").ends_with("; charset=utf-8"));
    }

    #[test]
    fn etag_shape() {
        let digest: [u8; 32] = Sha256::digest(b"").into();
        assert_eq!(etag(&digest).to_str().unwrap(), "\"e3b0c44298fc1c14\"");
    }

    #[test]
    fn names() {
        let root = Path::new("/srv/static");
        assert_eq!(
            servable_name(Path::new("/srv/static/css/a b.css"), root).as_deref(),
            Some("css/a b.css")
        );
        assert_eq!(servable_name(Path::new("/srv/static/a\\b"), root), None);
        assert_eq!(servable_name(Path::new("/srv/static/a\nb"), root), None);
        assert_eq!(servable_name(Path::new("/elsewhere/a"), root), None);
    }
}
