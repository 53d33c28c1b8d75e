//! Content hashes and hashed file names (`css/site.css` → `css/site.3f2a9c1e5b07.css`).
//!
//! # Choice of hash
//! SHA-256 of the file's final bytes, first [`HASH_HEX_LEN`] = 12 hex digits (48 bits).
//! Django's `ManifestStaticFilesStorage` uses the first 12 hex digits of MD5; we keep its
//! length, so names look the same to a Django user, but use SHA-256 because MD5 trips
//! security scanners and FIPS builds, the speed difference is irrelevant at static-asset
//! sizes, and the rest of keel (ETags) can share one hash crate.
//!
//! Why 48 bits is enough: the hash only has to tell apart *versions of the same file*,
//! because the name itself is part of the hashed name. A clash needs two different
//! contents of one path to share the prefix; over `k` deploys of that file the chance is
//! about `k² / 2⁴⁹`, i.e. below 2·10⁻⁷ after 10,000 changes of one file. It is no security
//! boundary: whoever can change a source file already chooses what is served. The
//! 8-digit example in the design (`site.3f2a9c1e.css`, 32 bits) would still be fine for
//! one file but leaves less margin for nothing gained.
//!
//! The hashed name inserts `.<hash>` before the last extension of the base name, exactly
//! as Django does (`jquery.min.js` → `jquery.min.<hash>.js`, `LICENSE` → `LICENSE.<hash>`).

use sha2::{Digest, Sha256};

/// Number of hex digits of the SHA-256 digest used in hashed names.
pub const HASH_HEX_LEN: usize = 12;

/// The first [`HASH_HEX_LEN`] lowercase hex digits of the SHA-256 of `bytes`.
pub fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(HASH_HEX_LEN);
    for byte in digest.iter().take(HASH_HEX_LEN / 2) {
        out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(byte & 0x0f)]));
    }
    out
}

/// Split a base name into stem and extension like Python's `os.path.splitext`:
/// the extension starts at the last `.` that is not part of the leading dots.
pub(crate) fn split_ext(basename: &str) -> (&str, &str) {
    match basename.rfind('.') {
        Some(pos) if basename[..pos].bytes().any(|b| b != b'.') => basename.split_at(pos),
        _ => (basename, ""),
    }
}

/// `dir/stem.ext` → `dir/stem.<hash>.ext`.
pub fn hashed_name(name: &str, hash: &str) -> String {
    let (dir, base) = match name.rfind('/') {
        Some(pos) => name.split_at(pos + 1),
        None => ("", name),
    };
    let (stem, ext) = split_ext(base);
    format!("{dir}{stem}.{hash}{ext}")
}

/// True when `name`'s base name has the shape of a hashed name (`stem.<12 hex>.ext` or
/// `stem.<12 hex>`). The edge can use it to choose `immutable` caching without the
/// manifest; [`crate::Manifest::is_hashed`] is the exact answer.
pub fn looks_hashed(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    let is_hash = |s: &str| {
        s.len() == HASH_HEX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let (stem, ext) = split_ext(base);
    // `LICENSE.<hash>`: the hash is what splitext calls the extension.
    if !stem.is_empty() && is_hash(ext.trim_start_matches('.')) {
        return true;
    }
    // `site.<hash>.css`
    matches!(stem.rsplit_once('.'), Some((before, hash)) if !before.is_empty() && is_hash(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_prefix() {
        // sha256("") = e3b0c44298fc1c149afbf4c8996fb924...
        assert_eq!(content_hash(b""), "e3b0c44298fc");
    }

    #[test]
    fn names() {
        assert_eq!(hashed_name("css/site.css", "abc"), "css/site.abc.css");
        assert_eq!(hashed_name("jquery.min.js", "abc"), "jquery.min.abc.js");
        assert_eq!(hashed_name("LICENSE", "abc"), "LICENSE.abc");
        assert_eq!(hashed_name("a.b/c", "abc"), "a.b/c.abc");
        assert_eq!(hashed_name("img/a b.png", "abc"), "img/a b.abc.png");
        assert_eq!(split_ext("..x"), ("..x", ""));
        assert_eq!(split_ext("a."), ("a", "."));
    }

    #[test]
    fn recognises_hashed_names() {
        assert!(looks_hashed("css/site.3f2a9c1e5b07.css"));
        assert!(looks_hashed("LICENSE.3f2a9c1e5b07"));
        assert!(!looks_hashed("css/site.css"));
        assert!(!looks_hashed("css/site.3F2A9C1E5B07.css"));
        assert!(!looks_hashed(".3f2a9c1e5b07.css"));
    }
}
