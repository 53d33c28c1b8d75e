//! Re-running collect: nothing rewritten when nothing changed, only what changed otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::time::Duration;

use common::{fixture, gunzip, opts, read, snapshot, unbrotli};
use keel_static::{collect, Outcome, Source, VariantOutcome};

#[test]
fn second_run_rewrites_nothing() {
    let root = tempfile::tempdir().unwrap();
    let options = opts(
        root.path(),
        vec![Source::Dir(fixture("site")), Source::Dir(fixture("vendor"))],
    );
    let first = collect(&options).unwrap();
    assert!(!first.is_noop());
    let before = snapshot(root.path());

    // Long enough that any rewrite would show a different mtime on every filesystem.
    std::thread::sleep(Duration::from_millis(50));
    let second = collect(&options).unwrap();

    assert!(second.is_noop(), "{second:#?}");
    assert_eq!(second.manifest, Outcome::Unchanged);
    for file in &second.files {
        assert_eq!(file.original, Outcome::Unchanged, "{}", file.name);
        assert_eq!(file.hashed, Outcome::Unchanged, "{}", file.name);
        for variant in &file.variants {
            assert!(
                matches!(
                    variant.outcome,
                    VariantOutcome::Unchanged | VariantOutcome::NotSmaller
                ),
                "{variant:?}"
            );
        }
    }
    // Same names, same bytes, same mtimes, no temp files left behind.
    assert_eq!(snapshot(root.path()), before);
    assert_eq!(
        second.to_string().lines().next().unwrap(),
        format!(
            "0 static files copied to '{}', {} unmodified.",
            root.path().display(),
            second.files.len()
        )
    );
}

#[test]
fn touched_but_identical_source_is_unmodified() {
    let src = common::site_copy();
    let root = tempfile::tempdir().unwrap();
    let options = opts(root.path(), vec![Source::Dir(src.path().into())]);
    collect(&options).unwrap();
    let before = snapshot(root.path());

    // New mtime, same bytes (what a `git checkout` does): Django would copy it again.
    std::thread::sleep(Duration::from_millis(50));
    let css = fs::read(src.path().join("css/site.css")).unwrap();
    fs::write(src.path().join("css/site.css"), css).unwrap();

    assert!(collect(&options).unwrap().is_noop());
    assert_eq!(snapshot(root.path()), before);
}

#[test]
fn changed_source_updates_only_what_changed() {
    let src = common::site_copy();
    let root = tempfile::tempdir().unwrap();
    let options = opts(root.path(), vec![Source::Dir(src.path().into())]);
    let first = collect(&options).unwrap();
    let old_hashed = first.file("js/app.js").unwrap().hashed_name.clone();

    let new_js = "// rewritten\n".repeat(40);
    fs::write(src.path().join("js/app.js"), &new_js).unwrap();
    let second = collect(&options).unwrap();

    let app = second.file("js/app.js").unwrap();
    assert_eq!(app.original, Outcome::Written);
    assert_eq!(app.hashed, Outcome::Written);
    assert_ne!(app.hashed_name, old_hashed);
    assert!(app
        .variants
        .iter()
        .all(|v| v.outcome == VariantOutcome::Written));
    // The variants under the original name now hold the new bytes.
    assert_eq!(
        gunzip(&read(root.path(), "js/app.js.gz")),
        new_js.as_bytes()
    );
    assert_eq!(
        unbrotli(&read(root.path(), "js/app.js.br")),
        new_js.as_bytes()
    );
    // The old hashed copy stays, like Django: pages rendered before still load.
    assert!(root.path().join(&old_hashed).is_file());
    // Nothing else moved.
    assert_eq!(second.copied_count(), 1);
    assert_eq!(second.post_processed_count(), 1);
    assert_eq!(second.manifest, Outcome::Written);

    // Shrink it under the compression threshold: the stale variants must go, or the
    // edge would serve the old script to every client that accepts gzip or brotli.
    fs::write(src.path().join("js/app.js"), "x();\n").unwrap();
    let third = collect(&options).unwrap();
    let app = third.file("js/app.js").unwrap();
    assert!(!root.path().join("js/app.js.gz").exists());
    assert!(!root.path().join("js/app.js.br").exists());
    let removed: Vec<_> = app
        .variants
        .iter()
        .filter(|v| v.outcome == VariantOutcome::Removed)
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(removed, ["js/app.js.gz", "js/app.js.br"]);
}

#[test]
fn tampered_variant_is_repaired() {
    let root = tempfile::tempdir().unwrap();
    let options = opts(root.path(), vec![Source::Dir(fixture("site"))]);
    collect(&options).unwrap();
    let good = read(root.path(), "css/site.css.br");

    fs::write(root.path().join("css/site.css.br"), b"not brotli").unwrap();
    let report = collect(&options).unwrap();
    let site = report.file("css/site.css").unwrap();
    let br = site
        .variants
        .iter()
        .find(|v| v.name == "css/site.css.br")
        .unwrap();
    assert_eq!(br.outcome, VariantOutcome::Written);
    assert_eq!(read(root.path(), "css/site.css.br"), good);
    assert_eq!(report.post_processed_count(), 1);
}
