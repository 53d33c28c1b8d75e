//! Precompression: `.gz` (gzip, level 9) and `.br` (brotli, quality 11) beside a file,
//! for the edge to serve by `Accept-Encoding` without compressing per request.
//!
//! Django's collectstatic does not compress at all (whitenoise's `CompressedManifest…`
//! storage does, with the same "only if smaller" rule); nginx would need `gzip_static` and
//! the third-party brotli module to serve these.
//!
//! * Which files: an allow-list of text-like types, see [`is_compressible`]. Formats that
//!   are already compressed (png, jpg, gif, webp, avif, woff, woff2, gz, br, zip, media)
//!   gain nothing and are left alone. `ico` and `ttf/otf/eot` are on the list: they are
//!   usually uncompressed bitmaps/tables and shrink well.
//! * How small: files under [`MIN_COMPRESS_BYTES`] are skipped: a response that fits in
//!   one packet gains nothing measurable and the variant costs a file and a stat.
//! * Only when smaller: a variant is written only if it is strictly smaller than its base.
//!   A larger "compressed" file would make the edge send more bytes and make the client
//!   spend CPU to decode them; the edge treats "no variant on disk" as "serve identity".
//! * Deterministic: the gzip header carries no name and mtime 0, brotli has no header
//!   fields, so the same input gives the same bytes on every run and machine.

use std::io::{self, Read, Write};

use flate2::write::GzEncoder;
use flate2::Compression;

/// Files smaller than this many bytes get no precompressed variants.
pub const MIN_COMPRESS_BYTES: usize = 256;

/// Extensions (lowercase, without the dot) that get precompressed variants.
pub const COMPRESSIBLE_EXTENSIONS: &[&str] = &[
    "css",
    "js",
    "mjs",
    "cjs",
    "json",
    "map",
    "svg",
    "html",
    "htm",
    "txt",
    "xml",
    "csv",
    "wasm",
    "ico",
    "ttf",
    "otf",
    "eot",
    "webmanifest",
];

/// A precompressed encoding written beside a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encoding {
    /// gzip (RFC 1952), suffix `.gz`, `Content-Encoding: gzip`.
    Gzip,
    /// Brotli (RFC 7932), suffix `.br`, `Content-Encoding: br`.
    Brotli,
}

impl Encoding {
    /// Both encodings, in the order variants are produced and reported.
    pub const ALL: [Encoding; 2] = [Encoding::Gzip, Encoding::Brotli];

    /// The file-name suffix of this variant (`".gz"` or `".br"`).
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Gzip => ".gz",
            Encoding::Brotli => ".br",
        }
    }

    /// The `Content-Encoding` token for this variant (`"gzip"` or `"br"`).
    pub fn content_encoding(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
        }
    }

    fn index(self) -> usize {
        match self {
            Encoding::Gzip => 0,
            Encoding::Brotli => 1,
        }
    }
}

/// True when `name`'s extension is in [`COMPRESSIBLE_EXTENSIONS`] (case-insensitive).
pub fn is_compressible(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    let (_, ext) = crate::hash::split_ext(base);
    let ext = ext.trim_start_matches('.');
    !ext.is_empty()
        && COMPRESSIBLE_EXTENSIONS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(ext))
}

/// Compress `bytes` with `encoding` at its best setting.
pub(crate) fn compress(encoding: Encoding, bytes: &[u8]) -> io::Result<Vec<u8>> {
    match encoding {
        Encoding::Gzip => {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
            encoder.write_all(bytes)?;
            encoder.finish()
        }
        Encoding::Brotli => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: 11,
                lgwin: 22,
                size_hint: bytes.len(),
                ..Default::default()
            };
            let mut out = Vec::new();
            let mut input = bytes;
            brotli::BrotliCompress(&mut input, &mut out, &params)?;
            Ok(out)
        }
    }
}

/// True when `compressed` decodes with `encoding` to exactly `expected`.
///
/// Reads at most one byte more than `expected`, so a corrupt or hostile file in the
/// static root cannot make this allocate without bound.
pub(crate) fn decompresses_to(encoding: Encoding, compressed: &[u8], expected: &[u8]) -> bool {
    let limit = u64::try_from(expected.len())
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut out = Vec::with_capacity(expected.len());
    let read = match encoding {
        Encoding::Gzip => flate2::read::GzDecoder::new(compressed)
            .take(limit)
            .read_to_end(&mut out),
        Encoding::Brotli => brotli::Decompressor::new(compressed, 4096)
            .take(limit)
            .read_to_end(&mut out),
    };
    read.is_ok() && out == expected
}

/// Compressed bodies for one input, computed at most once per encoding (the original
/// and the hashed copy of a file usually have the same bytes).
#[derive(Default)]
pub(crate) struct CompressCache {
    bodies: [Option<Vec<u8>>; 2],
}

impl CompressCache {
    pub(crate) fn get(&mut self, encoding: Encoding, bytes: &[u8]) -> io::Result<&[u8]> {
        let slot = &mut self.bodies[encoding.index()];
        if slot.is_none() {
            *slot = Some(compress(encoding, bytes)?);
        }
        Ok(slot.as_deref().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_determinism() {
        let text = "body { color: red; }\n".repeat(50);
        for encoding in Encoding::ALL {
            let a = compress(encoding, text.as_bytes()).unwrap();
            let b = compress(encoding, text.as_bytes()).unwrap();
            assert_eq!(a, b, "{encoding:?} is deterministic");
            assert!(a.len() < text.len());
            assert!(decompresses_to(encoding, &a, text.as_bytes()));
            assert!(!decompresses_to(encoding, &a, b"other"));
            assert!(!decompresses_to(encoding, b"garbage", text.as_bytes()));
        }
    }

    #[test]
    fn compressible_types() {
        assert!(is_compressible("css/site.css"));
        assert!(is_compressible("JS/APP.JS"));
        assert!(is_compressible("favicon.ico"));
        assert!(!is_compressible("img/a.png"));
        assert!(!is_compressible("fonts/f.woff2"));
        assert!(!is_compressible("app.js.gz"));
        assert!(!is_compressible("LICENSE"));
        assert!(!is_compressible("css.d/noext"));
    }
}
