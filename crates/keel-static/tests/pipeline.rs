//! The happy path: gather, hash, rewrite CSS, precompress, manifest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{contents, fixture, gunzip, opts, read, read_string, unbrotli};
use keel_static::{
    collect, content_hash, hashed_name, looks_hashed, Manifest, Outcome, Source, VariantOutcome,
    Warning, HASH_HEX_LEN, MANIFEST_NAME,
};

fn collect_site(root: &std::path::Path) -> keel_static::Report {
    collect(&opts(root, vec![Source::Dir(fixture("site"))])).unwrap()
}

#[test]
fn hashed_copies_exist_with_stable_names() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let report = collect_site(a.path());
    collect_site(b.path());

    // Two fresh roots from the same inputs are byte-identical, names included.
    assert_eq!(contents(a.path()), contents(b.path()));

    assert_eq!(report.files.len(), 9);
    for file in &report.files {
        assert!(looks_hashed(&file.hashed_name), "{}", file.hashed_name);
        let original = read(a.path(), &file.name);
        assert_eq!(
            original,
            std::fs::read(fixture("site").join(&file.name)).unwrap()
        );
        let hashed = read(a.path(), &file.hashed_name);
        assert_eq!(
            file.hashed_name,
            hashed_name(&file.name, &content_hash(&hashed))
        );
        if !file.name.ends_with(".css") {
            assert_eq!(hashed, original, "{} hashed copy differs", file.name);
        }
    }

    let png = report.file("img/a b.png").unwrap();
    let hash = content_hash(&read(a.path(), "img/a b.png"));
    assert_eq!(hash.len(), HASH_HEX_LEN);
    assert_eq!(png.hashed_name, format!("img/a b.{hash}.png"));
    assert!(a
        .path()
        .join(format!(
            "deep/a/b/c/d/e/f/g/deep file.{}.txt",
            content_hash(&read(a.path(), "deep/a/b/c/d/e/f/g/deep file.txt"))
        ))
        .is_file());
}

#[test]
fn manifest_lists_every_collected_file() {
    let root = tempfile::tempdir().unwrap();
    let report = collect_site(root.path());
    assert_eq!(report.manifest, Outcome::Written);

    let raw: serde_json::Value = serde_json::from_slice(&read(root.path(), MANIFEST_NAME)).unwrap();
    assert_eq!(raw["version"], "1.0");
    let paths = raw["paths"].as_object().unwrap();
    assert_eq!(paths.len(), report.files.len());

    let manifest = Manifest::load(root.path()).unwrap();
    assert_eq!(manifest.len(), report.files.len());
    for file in &report.files {
        assert_eq!(manifest.get(&file.name), Some(file.hashed_name.as_str()));
        assert_eq!(paths[&file.name], file.hashed_name.as_str());
        assert!(manifest.is_hashed(&file.hashed_name));
        assert!(!manifest.is_hashed(&file.name));
    }
    let png = manifest.get("img/a b.png").unwrap();
    assert_eq!(
        manifest.url("img/a b.png").unwrap(),
        format!("/static/{}", png.replace(' ', "%20"))
    );
    assert_eq!(manifest.get("img/missing.png"), None);
    assert_eq!(manifest.url("img/missing.png"), None);
}

#[test]
fn css_references_are_rewritten_to_hashed_names() {
    let root = tempfile::tempdir().unwrap();
    let report = collect_site(root.path());
    let manifest = Manifest::load(root.path()).unwrap();
    let base = |name: &str| {
        let hashed = manifest.get(name).unwrap();
        hashed.rsplit('/').next().unwrap().to_owned()
    };
    let (png, font, svg, reset, dark) = (
        base("img/a b.png"),
        base("fonts/font.woff2"),
        base("img/logo.svg"),
        base("css/reset.css"),
        base("css/theme/dark.css"),
    );

    let site = report.file("css/site.css").unwrap();
    let css = read_string(root.path(), &site.hashed_name);
    for expected in [
        format!("@import \"{reset}\";"),
        format!("@import url('theme/{dark}') screen;"),
        format!("url('../img/{png}') no-repeat"),
        format!("url(\"../fonts/{font}?#iefix\") format(\"embedded-opentype\")"),
        format!("url(../fonts/{font}) format(\"woff2\")"),
        format!("url(../img/{}#frag)", png.replace(' ', "%20")),
        format!("url(\"/static/img/{svg}\")"),
    ] {
        assert!(css.contains(&expected), "missing {expected:?} in\n{css}");
    }
    for untouched in [
        "url(data:image/png;base64,iVBORw0KGgo",
        "url(http://x/remote.png)",
        "URL( \"https://cdn.example/y.png\" )",
        "url(//cdn.example/z.png)",
        "url(#shadow)",
        "url(/media/uploads/elsewhere.png)",
        "url(../img/missing.png)",
        "url(../img/gone.png)",
        "\"url(not-a-reference.png)\"",
    ] {
        assert!(
            css.contains(untouched),
            "{untouched:?} was changed in\n{css}"
        );
    }
    assert_eq!(site.references_rewritten, 7);

    // The original name keeps the source's bytes.
    assert_eq!(
        read(root.path(), "css/site.css"),
        std::fs::read(fixture("site/css/site.css")).unwrap()
    );

    // Nested CSS is rewritten relative to its own directory.
    let dark_css = read_string(root.path(), manifest.get("css/theme/dark.css").unwrap());
    assert!(
        dark_css.contains(&format!("@import \"../{reset}\";")),
        "{dark_css}"
    );
    assert!(
        dark_css.contains(&format!("url('../../img/{png}')")),
        "{dark_css}"
    );

    // A reference to a file nobody collected is a warning, not a failure.
    assert_eq!(
        report.warnings,
        vec![Warning::MissingReference {
            css: "css/site.css".into(),
            url: "../img/missing.png".into()
        }]
    );
}

#[test]
fn css_hash_covers_the_files_it_references() {
    let src = common::site_copy();
    let root = tempfile::tempdir().unwrap();
    let before = collect(&opts(root.path(), vec![Source::Dir(src.path().into())])).unwrap();

    // Change the image only: every CSS file pointing at it (directly or through an
    // import) gets a new hashed name; reset.css, which does not, keeps its name.
    std::fs::write(src.path().join("img/a b.png"), b"\x89PNG changed").unwrap();
    let after = collect(&opts(root.path(), vec![Source::Dir(src.path().into())])).unwrap();
    let hashed = |r: &keel_static::Report, n: &str| r.file(n).unwrap().hashed_name.clone();
    for changed in ["img/a b.png", "css/theme/dark.css", "css/site.css"] {
        assert_ne!(
            hashed(&before, changed),
            hashed(&after, changed),
            "{changed}"
        );
    }
    for same in ["css/reset.css", "js/app.js", "fonts/font.woff2"] {
        assert_eq!(hashed(&before, same), hashed(&after, same), "{same}");
    }
    // The original CSS did not change, so it is unmodified; its hashed copy is new.
    let site = after.file("css/site.css").unwrap();
    assert_eq!(site.original, Outcome::Unchanged);
    assert_eq!(site.hashed, Outcome::Written);
}

#[test]
fn css_cycles_are_broken_deterministically() {
    let sources = || {
        vec![Source::Memory(vec![
            (
                "a.css".into(),
                b"@import \"b.css\";\na { color: red }\n".to_vec(),
            ),
            (
                "b.css".into(),
                b"@import 'a.css';\nb { color: blue }\n".to_vec(),
            ),
            ("c.css".into(), b"c { background: url(a.css) }\n".to_vec()),
        ])]
    };
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let report = collect(&opts(one.path(), sources())).unwrap();
    collect(&opts(two.path(), sources())).unwrap();
    assert_eq!(contents(one.path()), contents(two.path()));

    // Depth-first from a.css: b.css is hashed first and keeps its link to a.css as is.
    assert_eq!(
        report.warnings,
        vec![Warning::CircularReference {
            css: "b.css".into(),
            url: "a.css".into()
        }]
    );
    let name = |n: &str| report.file(n).unwrap().hashed_name.clone();
    let b = read_string(one.path(), &name("b.css"));
    assert!(b.starts_with("@import 'a.css';"), "{b}");
    let a = read_string(one.path(), &name("a.css"));
    assert!(
        a.starts_with(&format!("@import \"{}\";", name("b.css"))),
        "{a}"
    );
    let c = read_string(one.path(), &name("c.css"));
    assert!(c.contains(&format!("url({})", name("a.css"))), "{c}");
}

#[test]
fn precompressed_variants_decompress_to_their_base() {
    let root = tempfile::tempdir().unwrap();
    let report = collect_site(root.path());
    let files = contents(root.path());

    let mut variants = 0;
    for (name, bytes) in &files {
        let (base, decoded) = if let Some(base) = name.strip_suffix(".gz") {
            (base, gunzip(bytes))
        } else if let Some(base) = name.strip_suffix(".br") {
            (base, unbrotli(bytes))
        } else {
            continue;
        };
        variants += 1;
        let original = files
            .get(base)
            .unwrap_or_else(|| panic!("{name} has no base"));
        assert_eq!(&decoded, original, "{name} does not decompress to {base}");
        assert!(bytes.len() < original.len(), "{name} is not smaller");
    }

    // Beside both names of: site.css, app.js, logo.svg, deep file.txt.
    let compressed = [
        "css/site.css",
        "js/app.js",
        "img/logo.svg",
        "deep/a/b/c/d/e/f/g/deep file.txt",
    ];
    assert_eq!(variants, compressed.len() * 2 * 2);
    for name in compressed {
        let file = report.file(name).unwrap();
        for base in [name, file.hashed_name.as_str()] {
            for suffix in [".gz", ".br"] {
                assert!(
                    files.contains_key(&format!("{base}{suffix}")),
                    "{base}{suffix}"
                );
            }
        }
        assert!(file
            .variants
            .iter()
            .all(|v| v.outcome == VariantOutcome::Written));
    }
    // Too small, incompressible type, or compression does not pay: no variants.
    for name in [
        "css/reset.css",
        "css/theme/dark.css",
        "img/a b.png",
        "fonts/font.woff2",
        "data/random.txt",
    ] {
        assert!(!files.contains_key(&format!("{name}.gz")), "{name}.gz");
        assert!(!files.contains_key(&format!("{name}.br")), "{name}.br");
    }
    let random = report.file("data/random.txt").unwrap();
    assert_eq!(random.variants.len(), 4);
    assert!(random
        .variants
        .iter()
        .all(|v| v.outcome == VariantOutcome::NotSmaller));
    // The hashed CSS's variants hold the rewritten CSS, not the original.
    let site = report.file("css/site.css").unwrap();
    assert_ne!(
        gunzip(&files[&format!("{}.gz", site.hashed_name)]),
        files["css/site.css"]
    );
}

static EMBEDDED: &[(&str, &[u8])] = &[
    (
        "js/app.js",
        b"console.log('embedded loses to the directory');\n",
    ),
    (
        "css/embedded.css",
        b".logo { background: url(../img/a%20b.png) }\n",
    ),
    (
        "img/embedded.bin",
        include_bytes!("fixtures/site/img/a b.png"),
    ),
];

#[test]
fn embedded_and_memory_sources_are_collected() {
    let root = tempfile::tempdir().unwrap();
    let report = collect(&opts(
        root.path(),
        vec![
            Source::Dir(fixture("site")),
            Source::Embedded(EMBEDDED),
            Source::Memory(vec![("robots.txt".into(), b"User-agent: *\n".to_vec())]),
        ],
    ))
    .unwrap();

    assert_eq!(
        read(root.path(), "img/embedded.bin"),
        include_bytes!("fixtures/site/img/a b.png")
    );
    assert_eq!(read(root.path(), "robots.txt"), b"User-agent: *\n");
    assert_eq!(report.file("robots.txt").unwrap().source_index, 2);
    assert_eq!(report.file("css/embedded.css").unwrap().source_index, 1);
    // The directory came first, so its app.js wins over the embedded one.
    assert_eq!(report.file("js/app.js").unwrap().source_index, 0);

    // Embedded CSS is rewritten against files from another source.
    let manifest = Manifest::load(root.path()).unwrap();
    let css = read_string(root.path(), manifest.get("css/embedded.css").unwrap());
    let png = manifest
        .get("img/a b.png")
        .unwrap()
        .replace("img/", "")
        .replace(' ', "%20");
    assert_eq!(css, format!(".logo {{ background: url(../img/{png}) }}\n"));
}

#[test]
fn report_summary_reads_like_djangos() {
    let root = tempfile::tempdir().unwrap();
    let first = collect_site(root.path());
    let shown = first.to_string();
    let mut lines = shown.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!(
            "9 static files copied to '{}', 9 post-processed.",
            root.path().display()
        )
    );
    assert_eq!(
        lines.next().unwrap(),
        "warning: css/site.css: '../img/missing.png' is not a collected file; reference left unchanged"
    );
    assert_eq!(lines.next(), None);

    let one = tempfile::tempdir().unwrap();
    let report = collect(&opts(
        one.path(),
        vec![Source::Memory(vec![("a.txt".into(), b"x".to_vec())])],
    ))
    .unwrap();
    assert_eq!(
        report.to_string(),
        format!(
            "1 static file copied to '{}', 1 post-processed.",
            one.path().display()
        )
    );
}
