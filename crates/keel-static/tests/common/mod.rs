//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use keel_static::{CollectOptions, Source};

/// A committed fixture directory under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn opts(static_root: &Path, sources: Vec<Source>) -> CollectOptions {
    CollectOptions {
        static_root: static_root.to_path_buf(),
        sources,
    }
}

/// Bytes and mtime of one file in a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub bytes: Vec<u8>,
    pub modified: SystemTime,
}

/// Every file below `root` (hidden ones included, so leftover temp files show up).
pub fn snapshot(root: &Path) -> BTreeMap<String, FileState> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(root).unwrap();
            let name = rel.to_str().unwrap().replace('\\', "/");
            out.insert(
                name,
                FileState {
                    bytes: fs::read(entry.path()).unwrap(),
                    modified: entry.metadata().unwrap().modified().unwrap(),
                },
            );
        }
    }
    out
}

/// Just the bytes of [`snapshot`].
pub fn contents(root: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(root)
        .into_iter()
        .map(|(k, v)| (k, v.bytes))
        .collect()
}

pub fn read(root: &Path, name: &str) -> Vec<u8> {
    fs::read(root.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

pub fn read_string(root: &Path, name: &str) -> String {
    String::from_utf8(read(root, name)).unwrap()
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Copy a directory tree (regular files only).
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let dest = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            fs::create_dir_all(&dest).unwrap();
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// `fixtures/site` copied into a fresh temp dir, so a test can change it.
pub fn site_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("site"), dir.path());
    dir
}
