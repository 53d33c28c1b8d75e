//! Which files are taken, which are refused, and that nothing lands outside the root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::symlink;

use common::{contents, fixture, opts, read};
use keel_static::{collect, Manifest, SkipReason, Source, StaticError, VariantOutcome};

#[test]
fn first_source_wins() {
    let root = tempfile::tempdir().unwrap();
    let report = collect(&opts(
        root.path(),
        vec![Source::Dir(fixture("site")), Source::Dir(fixture("vendor"))],
    ))
    .unwrap();
    assert_eq!(
        read(root.path(), "js/app.js"),
        fs::read(fixture("site/js/app.js")).unwrap()
    );
    assert_eq!(report.file("js/vendor.js").unwrap().source_index, 1);
    let shadowed: Vec<_> = report
        .skipped
        .iter()
        .filter(|s| matches!(s.reason, SkipReason::Shadowed { .. }))
        .collect();
    assert_eq!(shadowed.len(), 1);
    assert_eq!(shadowed[0].name, "js/app.js");
    assert_eq!(shadowed[0].source_index, 1);
    assert_eq!(shadowed[0].reason, SkipReason::Shadowed { by_source: 0 });

    // Swapped order, swapped winner.
    let other = tempfile::tempdir().unwrap();
    collect(&opts(
        other.path(),
        vec![Source::Dir(fixture("vendor")), Source::Dir(fixture("site"))],
    ))
    .unwrap();
    assert_eq!(
        read(other.path(), "js/app.js"),
        fs::read(fixture("vendor/js/app.js")).unwrap()
    );
}

#[test]
fn hidden_backup_and_cvs_files_are_skipped() {
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    fs::create_dir_all(s.join(".git")).unwrap();
    fs::create_dir_all(s.join("css/CVS")).unwrap();
    fs::write(s.join(".env"), "SECRET=1").unwrap();
    fs::write(s.join(".git/config"), "[core]").unwrap();
    fs::write(s.join("css/.hidden.css"), "a{}").unwrap();
    fs::write(s.join("css/site.css~"), "a{}").unwrap();
    fs::write(s.join("css/CVS/Entries"), "x").unwrap();
    fs::write(s.join("css/site.css"), "a{}").unwrap();

    let root = tempfile::tempdir().unwrap();
    let report = collect(&opts(root.path(), vec![Source::Dir(s.into())])).unwrap();
    let names: Vec<_> = report.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["css/site.css"]);
    let mut skipped: Vec<_> = report
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason))
        .collect();
    skipped.sort_by_key(|s| s.0);
    assert_eq!(
        skipped,
        [
            (".env", SkipReason::Hidden),
            (".git", SkipReason::Hidden),
            ("css/.hidden.css", SkipReason::Hidden),
            ("css/CVS", SkipReason::VersionControl),
            ("css/site.css~", SkipReason::EditorBackup),
        ]
    );

    // Embedded names follow the same rules.
    let report = collect(&opts(
        root.path(),
        vec![Source::Memory(vec![
            (".well-known/x.txt".into(), b"x".to_vec()),
            ("notes.txt~".into(), b"x".to_vec()),
        ])],
    ))
    .unwrap();
    assert!(report.files.is_empty());
    assert_eq!(report.skipped.len(), 2);
}

#[test]
fn symlink_out_of_its_source_is_rejected() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret.txt"), "do not publish").unwrap();

    for link in ["leak.txt", "dir/leak"] {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("ok.txt"), "fine").unwrap();
        let path = src.path().join(link);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        if link.ends_with(".txt") {
            symlink(outside.path().join("secret.txt"), &path).unwrap();
        } else {
            symlink(outside.path(), &path).unwrap();
        }

        let root = tempfile::tempdir().unwrap();
        let err = collect(&opts(root.path(), vec![Source::Dir(src.path().into())])).unwrap_err();
        match &err {
            StaticError::SymlinkOutside { link: found, .. } => assert!(found.ends_with(link)),
            other => panic!("expected SymlinkOutside, got {other:?}"),
        }
        assert!(err
            .to_string()
            .contains("points outside its source directory"));
        let written = contents(root.path());
        assert!(
            written.values().all(|b| b != b"do not publish"),
            "secret was copied"
        );
    }
}

#[test]
fn symlink_inside_its_source_is_followed() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("real")).unwrap();
    fs::write(src.path().join("real/a.txt"), "inside").unwrap();
    symlink(src.path().join("real/a.txt"), src.path().join("alias.txt")).unwrap();
    symlink(src.path().join("real"), src.path().join("aliasdir")).unwrap();

    let root = tempfile::tempdir().unwrap();
    collect(&opts(root.path(), vec![Source::Dir(src.path().into())])).unwrap();
    for name in ["real/a.txt", "alias.txt", "aliasdir/a.txt"] {
        assert_eq!(read(root.path(), name), b"inside");
        assert!(!fs::symlink_metadata(root.path().join(name))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

#[test]
fn traversal_and_unclean_names_are_rejected() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("static");
    for bad in [
        "../evil.txt",
        "a/../../evil.txt",
        "/tmp/evil.txt",
        "a\\..\\evil.txt",
        "./evil.txt",
        "a//evil.txt",
        "",
    ] {
        let err = collect(&opts(
            &root,
            vec![
                Source::Memory(vec![("ok.txt".into(), b"ok".to_vec())]),
                Source::Memory(vec![(bad.into(), b"evil".to_vec())]),
            ],
        ))
        .unwrap_err();
        assert!(
            matches!(&err, StaticError::UnsafePath { path, .. } if path.as_os_str() == bad),
            "{bad:?}: {err:?}"
        );
    }
    static EMBEDDED: &[(&str, &[u8])] = &[("../../evil.txt", b"evil")];
    let err = collect(&opts(&root, vec![Source::Embedded(EMBEDDED)])).unwrap_err();
    assert!(matches!(err, StaticError::UnsafePath { .. }));
    assert!(err.to_string().contains("'..' component"), "{err}");

    // Nothing was written anywhere: names are checked before any file is.
    let entries: Vec<_> = fs::read_dir(parent.path()).unwrap().collect();
    assert_eq!(entries.len(), 1);
    assert!(contents(&root).is_empty());
}

#[test]
fn symlinked_directory_in_the_static_root_is_not_written_through() {
    let outside = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    symlink(outside.path(), root.path().join("css")).unwrap();

    let err = collect(&opts(root.path(), vec![Source::Dir(fixture("site"))])).unwrap_err();
    assert!(
        matches!(&err, StaticError::UnsafePath { path, .. } if path.ends_with("css")),
        "{err:?}"
    );
    assert!(contents(outside.path()).is_empty());
}

#[test]
fn static_root_and_source_must_not_overlap() {
    let src = common::site_copy();
    for root in [src.path().join("collected"), src.path().to_path_buf()] {
        let err = collect(&opts(&root, vec![Source::Dir(src.path().into())])).unwrap_err();
        assert!(
            matches!(err, StaticError::RootOverlapsSource { .. }),
            "{err:?}"
        );
    }
    let root = tempfile::tempdir().unwrap();
    let inner = root.path().join("vendor");
    fs::create_dir_all(&inner).unwrap();
    let err = collect(&opts(root.path(), vec![Source::Dir(inner)])).unwrap_err();
    assert!(
        matches!(err, StaticError::RootOverlapsSource { .. }),
        "{err:?}"
    );
}

#[test]
fn manifest_name_is_reserved() {
    let root = tempfile::tempdir().unwrap();
    let err = collect(&opts(
        root.path(),
        vec![Source::Memory(vec![(
            "manifest.json".into(),
            b"{}".to_vec(),
        )])],
    ))
    .unwrap_err();
    assert!(matches!(err, StaticError::NameClash { ref name, .. } if name == "manifest.json"));
    // Below the top level it is an ordinary file.
    collect(&opts(
        root.path(),
        vec![Source::Memory(vec![(
            "pwa/manifest.json".into(),
            b"{}".to_vec(),
        )])],
    ))
    .unwrap();
}

#[test]
fn variant_shipped_by_a_source_is_kept() {
    let js = "console.log('precompressed by the build');\n".repeat(20);
    let root = tempfile::tempdir().unwrap();
    let report = collect(&opts(
        root.path(),
        vec![Source::Memory(vec![
            ("app.js".into(), js.into_bytes()),
            ("app.js.gz".into(), b"the build's own gzip".to_vec()),
        ])],
    ))
    .unwrap();
    assert_eq!(read(root.path(), "app.js.gz"), b"the build's own gzip");
    let app = report.file("app.js").unwrap();
    let outcome = |name: &str| {
        app.variants
            .iter()
            .find(|v| v.name == name)
            .unwrap()
            .outcome
    };
    assert_eq!(outcome("app.js.gz"), VariantOutcome::ProvidedBySource);
    assert_eq!(outcome("app.js.br"), VariantOutcome::Written);
    assert_eq!(
        outcome(&format!("{}.gz", app.hashed_name)),
        VariantOutcome::Written
    );
}

#[test]
fn manifest_errors_name_the_file() {
    let root = tempfile::tempdir().unwrap();
    let err = Manifest::load(root.path()).unwrap_err();
    assert!(matches!(
        err,
        StaticError::Io {
            op: "read manifest",
            ..
        }
    ));
    assert!(err.to_string().contains("manifest.json"), "{err}");

    fs::write(root.path().join("manifest.json"), b"{\"paths\": [").unwrap();
    let err = Manifest::load(root.path()).unwrap_err();
    assert!(matches!(err, StaticError::ManifestParse { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("cannot parse manifest '"),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn missing_source_directory_is_named() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("nope");
    let err = collect(&opts(
        &root.path().join("static"),
        vec![Source::Dir(missing.clone())],
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot open source directory '{}'", missing.display())
    );
}
