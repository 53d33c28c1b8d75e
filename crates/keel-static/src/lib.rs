//! keel's `collectstatic`: gather static files from directories and embedded assets into
//! one static root, add content-hashed copies (rewriting CSS references to them), add
//! precompressed `.gz`/`.br` variants, and write `manifest.json`.
//!
//! It is the job of Django's `collectstatic` with `ManifestStaticFilesStorage`, plus the
//! precompression nginx users get from a separate build step. After a run, for every
//! collected `css/site.css` the static root holds:
//!
//! | file | content |
//! |---|---|
//! | `css/site.css` | the source's bytes |
//! | `css/site.3f2a9c1e5b07.css` | CSS references rewritten to hashed names; name = SHA-256 prefix of these bytes |
//! | `…css.gz`, `…css.br` beside both | only for compressible types ≥ 256 bytes, only if smaller |
//! | `manifest.json` | `{"paths": {"css/site.css": "css/site.3f2a9c1e5b07.css", …}, "version": "1.0"}` |
//!
//! ```no_run
//! use keel_static::{collect, CollectOptions, Manifest, Source};
//!
//! static ASSETS: &[(&str, &[u8])] = &[("js/app.js", b"console.log('hi');")];
//! let opts = CollectOptions {
//!     static_root: "/srv/static".into(),
//!     sources: vec![Source::Dir("static".into()), Source::Embedded(ASSETS)],
//! };
//! let report = collect(&opts)?;
//! println!("{report}"); // 2 static files copied to '/srv/static', 2 post-processed.
//! let manifest = Manifest::load(&opts.static_root)?;
//! assert!(manifest.url("js/app.js").is_some()); // "/static/js/app.<hash>.js"
//! # Ok::<(), keel_static::StaticError>(())
//! ```
//!
//! # How this differs from Django's collectstatic
//! * Sources: the first source that has a name wins, as with Django's finders;
//!   dotfiles, `*~` and `CVS` are ignored, as by Django's default ignore patterns; unsafe names and symlinks out of a source are errors.
//! * Content, not mtime, decides whether a file is rewritten; writes are atomic; a second
//!   run with the same inputs writes nothing ([`collect`]).
//! * CSS is scanned, not regex-matched: references in comments are ignored; a missing
//!   reference is a warning, not a failed deploy; cycles are broken instead of failing
//!   ([`Warning`]).
//! * Hash: SHA-256, first 12 hex digits (Django: MD5, first 12) — see [`HASH_HEX_LEN`].
//! * Stale files (old hashed names, files whose source was deleted) are left in the
//!   static root, as Django leaves them: pages cached before a deploy keep loading their
//!   assets. Clearing is the operator's choice (Django's `--clear`), not done here.
//! * No `--link` (symlink) mode, no `--dry-run`, no storage backends other than a local
//!   directory.

#![forbid(unsafe_code)]

mod compress;
mod css;
mod error;
mod fsio;
mod hash;
mod manifest;
mod pipeline;
mod report;
mod source;
mod urlpath;

pub use compress::{is_compressible, Encoding, COMPRESSIBLE_EXTENSIONS, MIN_COMPRESS_BYTES};
pub use error::StaticError;
pub use hash::{content_hash, hashed_name, looks_hashed, HASH_HEX_LEN};
pub use manifest::{Manifest, MANIFEST_NAME, MANIFEST_VERSION, STATIC_URL};
pub use pipeline::{collect, CollectOptions};
pub use report::{
    FileReport, Outcome, Report, SkipReason, Skipped, Variant, VariantOutcome, Warning,
};
pub use source::Source;
