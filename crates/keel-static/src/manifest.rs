//! `manifest.json`: original name → hashed name, written by [`crate::collect`] and read by
//! whoever renders URLs (the site's templates) or serves files (the edge).
//!
//! Format, as Django's `staticfiles.json` (version "1.0", without the later "hash" key):
//!
//! ```json
//! {
//!   "paths": {
//!     "css/site.css": "css/site.3f2a9c1e5b07.css"
//!   },
//!   "version": "1.0"
//! }
//! ```
//!
//! Differences from Django: the file is called `manifest.json` and lives at the top of
//! the static root (so a source may not contain a top-level `manifest.json`); keys are
//! sorted and the JSON is pretty-printed, so the file is byte-identical across runs and
//! diffs well; it is rewritten from scratch on each run, so names whose source file is
//! gone drop out of it (their files are left on disk, see the crate docs). Loading
//! validates every name, so a tampered manifest cannot point the edge outside the root.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::StaticError;
use crate::source::validate_name;
use crate::urlpath;

/// File name of the manifest, at the top of the static root.
pub const MANIFEST_NAME: &str = "manifest.json";
/// The only manifest version written and accepted.
pub const MANIFEST_VERSION: &str = "1.0";
/// URL prefix under which the static root is served (by `keel edge`); [`Manifest::url`]
/// builds on it and CSS references that start with it are rewritten like relative ones.
pub const STATIC_URL: &str = "/static/";

#[derive(Serialize, Deserialize)]
struct ManifestFile {
    paths: BTreeMap<String, String>,
    version: String,
}

/// The name → hashed-name map of a collected static root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    paths: BTreeMap<String, String>,
    hashed: BTreeSet<String>,
}

impl Manifest {
    pub(crate) fn from_paths(paths: BTreeMap<String, String>) -> Self {
        let hashed = paths.values().cloned().collect();
        Manifest { paths, hashed }
    }

    /// Read `<static_root>/manifest.json`.
    pub fn load(static_root: &Path) -> Result<Self, StaticError> {
        let path = static_root.join(MANIFEST_NAME);
        let bytes = fs::read(&path).map_err(|e| StaticError::io("read manifest", &path, e))?;
        Self::from_json(&bytes).map_err(|source| StaticError::ManifestParse { path, source })
    }

    fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        use serde::de::Error as _;
        let file: ManifestFile = serde_json::from_slice(bytes)?;
        if file.version != MANIFEST_VERSION {
            return Err(serde_json::Error::custom(format!(
                "unsupported manifest version {:?}, expected {MANIFEST_VERSION:?}",
                file.version
            )));
        }
        for (name, hashed) in &file.paths {
            for candidate in [name, hashed] {
                validate_name(candidate).map_err(|reason| {
                    serde_json::Error::custom(format!("unsafe name {candidate:?}: {reason}"))
                })?;
            }
        }
        Ok(Self::from_paths(file.paths))
    }

    /// The manifest as written to disk: pretty JSON, sorted keys, trailing newline.
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let file = ManifestFile {
            paths: self.paths.clone(),
            version: MANIFEST_VERSION.to_owned(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// The hashed name of `name` (`"css/site.css"` → `"css/site.3f2a9c1e5b07.css"`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.paths.get(name).map(String::as_str)
    }

    /// The URL of `name`'s hashed copy: `/static/` + the percent-encoded hashed name
    /// (`"img/a b.png"` → `"/static/img/a%20b.3f2a9c1e5b07.png"`), like Django's `static()`.
    /// `None` when `name` was not collected.
    pub fn url(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|hashed| format!("{STATIC_URL}{}", urlpath::encode_path(hashed, true)))
    }

    /// True when `name` is the hashed name of some file (so it may be cached forever).
    pub fn is_hashed(&self, name: &str) -> bool {
        self.hashed.contains(name)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// `(name, hashed name)` pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.paths.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut paths = BTreeMap::new();
        paths.insert(
            "img/a b.png".to_owned(),
            "img/a b.0123456789ab.png".to_owned(),
        );
        let manifest = Manifest::from_paths(paths);
        let json = manifest.to_json().unwrap();
        assert_eq!(Manifest::from_json(&json).unwrap(), manifest);
        assert_eq!(
            manifest.url("img/a b.png").as_deref(),
            Some("/static/img/a%20b.0123456789ab.png")
        );
        assert!(manifest.is_hashed("img/a b.0123456789ab.png"));
        assert!(!manifest.is_hashed("img/a b.png"));
    }

    #[test]
    fn rejects_bad_manifests() {
        assert!(Manifest::from_json(b"{").is_err());
        assert!(Manifest::from_json(br#"{"version":"1.0"}"#).is_err());
        assert!(Manifest::from_json(br#"{"paths":{},"version":"2.0"}"#).is_err());
        assert!(
            Manifest::from_json(br#"{"paths":{"a":"../../etc/passwd"},"version":"1.0"}"#).is_err()
        );
        assert!(Manifest::from_json(br#"{"paths":{},"version":"1.0"}"#).is_ok());
    }
}
