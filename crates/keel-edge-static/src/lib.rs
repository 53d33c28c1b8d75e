//! keel edge's static file serving: the job of nginx's `location /static/ { alias …; }`
//! for a static root written by `keel collectstatic` ([`keel_static`]).
//!
//! ```no_run
//! use keel_edge_static::{StaticFiles, StaticHandle, StaticOptions, StaticService};
//!
//! # fn main() -> Result<(), keel_edge_static::StaticError> {
//! let files = StaticFiles::load("/srv/static".as_ref(), StaticOptions::default())?;
//! let handle = StaticHandle::new(files);
//! // A tower Service for hyper (via hyper-util) or axum (`route_service`):
//! let service = StaticService::new(handle.clone()).mount("/static/");
//! // On SIGHUP, off the async threads (tokio::task::spawn_blocking):
//! handle.reload()?;
//! # drop(service);
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//! [`StaticFiles::load`] walks the root **once** and builds an in-memory index: every
//! servable name with its Content-Type, length, strong content-hash ETag, Last-Modified,
//! Cache-Control and `.br`/`.gz` variants, and the bytes of small files. A request is
//! then a path check, one hash-map lookup and a few header clones
//! ([`StaticFiles::serve`], synchronous, no syscalls); only files above
//! [`StaticOptions::memory_limit_per_file_bytes`] touch the disk, with positional reads
//! on a handle opened at load ([`StaticBody`]). Because a request path is only ever a
//! *key* into that map, no request can name a file outside what was indexed; the path
//! rules ([`normalize_path`]) refuse escape attempts explicitly on top of that.
//!
//! | module | owns |
//! |---|---|
//! | `index` | loading: walk, containment, hashing, memory budget, variants |
//! | `path` | request path → key; 400/404 decisions for traversal payloads |
//! | `serve` | the response: method, lookup, negotiation, preconditions, ranges |
//! | `negotiate` | `Accept-Encoding` → br / gzip / identity |
//! | `conditional` | `If-*` headers → 304 / 412, `If-Range` |
//! | `range` | one `bytes=` range → 206 / 416 / 200 |
//! | `body` | [`StaticBody`]: in-memory bytes or chunked positional file reads |
//! | `service` | [`StaticHandle`] (swap on reload), [`StaticService`] (tower, mount prefix) |
//!
//! # How this differs from nginx's static serving
//! * **Snapshot, not live disk.** nginx opens and stats the file per request; keel serves
//!   what was in the root at the last load. New files are 404 until a reload (SIGHUP),
//!   replaced files keep serving their indexed bytes until then.
//! * **Content ETags** (`"<16 hex of SHA-256>"`) instead of `"mtime-size"`: equal across
//!   edges and across deploys that left a file unchanged; distinct per encoding.
//! * **Stricter paths**: `..`, `.`, `//`, encoded `/` and `\`, NUL, bad escapes and double
//!   encoding are 400 (nginx merges and resolves most of them); dotfiles are always 404
//!   (nginx serves them unless told not to); symlinks are followed only inside the root.
//! * **Precompression built in**: `.br` and `.gz` picked by `Accept-Encoding`, br first
//!   (nginx: `gzip_static` plus the third-party brotli module). A request with `Range`
//!   gets identity bytes.
//! * **One range only**: several ranges get the whole file with 200 (nginx: multipart).
//! * **Caching policy built in**: hashed names (from the manifest, or shaped like one)
//!   get `public, max-age=31536000, immutable`, others `public, max-age=60` by default
//!   (nginx: `expires`/`add_header` per location). `charset=utf-8` on text types.
//! * **`If-Modified-Since`** per the RFC ("not modified since"), nginx's default wants the
//!   exact date. `If-Match`/`If-Unmodified-Since` → 412 as in nginx.
//! * No `sendfile`, no directory listings or index files, no `try_files`, no error pages.

#![forbid(unsafe_code)]

mod body;
mod conditional;
mod error;
mod index;
mod negotiate;
mod options;
mod path;
mod range;
mod serve;
mod service;

pub use body::StaticBody;
pub use error::{SkipReason, Skipped, StaticError};
pub use index::StaticFiles;
pub use options::{
    StaticOptions, DEFAULT_MAX_AGE, DEFAULT_MEMORY_LIMIT_PER_FILE_BYTES,
    DEFAULT_MEMORY_LIMIT_TOTAL_BYTES, DEFAULT_STREAM_CHUNK_BYTES,
};
pub use path::{normalize as normalize_path, PathRejection, MAX_PATH_BYTES};
pub use serve::{PlainHit, PlainHitRef};
pub use service::{StaticHandle, StaticService};
