//! Sources of static files and gathering them into one sorted list of names.
//!
//! A [`Source`] is a directory on disk or a list of assets the application carries
//! (compiled in with `include_bytes!`, or built at run time). Gathering turns every
//! source into `/`-separated relative names, applies the ignore rules, refuses unsafe
//! names and outward symlinks, and resolves duplicates.
//!
//! How this differs from Django's finders:
//! * **First source wins**, as with Django's `STATICFILES_FINDERS` / `STATICFILES_DIRS`:
//!   a name found in an earlier source shadows the same name in every later one (Django's
//!   collectstatic says "Found another file with the destination path … It will be
//!   ignored"); here the shadowed file is listed in the report as
//!   [`SkipReason::Shadowed`].
//! * Ignored, like Django's default `ignore_patterns` (`.*`, `*~`, `CVS`): any file or
//!   directory whose name starts with `.` (and everything below it), editor backups
//!   ending in `~`, and `CVS` directories. They are listed in the report, not copied.
//! * Refused with an error rather than copied: names with `..`/`.`/empty components,
//!   absolute names, backslashes or NUL, names that are not UTF-8 (they could not be put
//!   in the manifest or a URL), and symlinks whose target is outside their source
//!   directory. Symlinks that stay inside are followed; loops are an error.
//!   Django follows every symlink and happily copies `/etc/passwd` if linked.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use walkdir::WalkDir;

use crate::error::StaticError;
use crate::report::{SkipReason, Skipped};

/// Where static files come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Every file below a directory, names relative to it.
    Dir(PathBuf),
    /// Assets compiled into the binary: `(relative name, bytes)`, e.g.
    /// `&[("css/site.css", include_bytes!("../static/css/site.css"))]`.
    Embedded(&'static [(&'static str, &'static [u8])]),
    /// Assets built at run time: `(relative name, bytes)`.
    Memory(Vec<(String, Vec<u8>)>),
}

/// Where one gathered file's bytes are.
#[derive(Debug)]
pub(crate) enum Origin<'a> {
    File(PathBuf),
    Bytes(&'a [u8]),
}

impl<'a> Origin<'a> {
    pub(crate) fn read(&self) -> Result<Cow<'a, [u8]>, StaticError> {
        match self {
            Origin::File(path) => fs::read(path)
                .map(Cow::Owned)
                .map_err(|e| StaticError::io("read", path, e)),
            Origin::Bytes(bytes) => Ok(Cow::Borrowed(bytes)),
        }
    }
}

/// One file to collect.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    pub(crate) source_index: usize,
    pub(crate) origin: Origin<'a>,
}

/// The result of gathering: files by name (sorted), and what was left out.
#[derive(Debug, Default)]
pub(crate) struct Gathered<'a> {
    pub(crate) entries: BTreeMap<String, Entry<'a>>,
    pub(crate) skipped: Vec<Skipped>,
}

/// Gather every source, in order, refusing sources that overlap `static_root` (canonical).
pub(crate) fn gather<'a>(
    sources: &'a [Source],
    static_root: &Path,
) -> Result<Gathered<'a>, StaticError> {
    let mut gathered = Gathered::default();
    for (index, source) in sources.iter().enumerate() {
        match source {
            Source::Dir(dir) => gather_dir(index, dir, static_root, &mut gathered)?,
            Source::Embedded(list) => {
                for (name, bytes) in list.iter() {
                    gather_named(index, name, bytes, &mut gathered)?;
                }
            }
            Source::Memory(list) => {
                for (name, bytes) in list {
                    gather_named(index, name, bytes, &mut gathered)?;
                }
            }
        }
    }
    Ok(gathered)
}

fn gather_named<'a>(
    index: usize,
    name: &str,
    bytes: &'a [u8],
    gathered: &mut Gathered<'a>,
) -> Result<(), StaticError> {
    validate_name(name).map_err(|reason| StaticError::unsafe_path(name, reason))?;
    if let Some(reason) = name.split('/').find_map(ignore_reason) {
        gathered.skipped.push(Skipped {
            name: name.to_owned(),
            source_index: index,
            reason,
        });
        return Ok(());
    }
    insert(gathered, name.to_owned(), index, Origin::Bytes(bytes));
    Ok(())
}

fn gather_dir(
    index: usize,
    dir: &Path,
    static_root: &Path,
    gathered: &mut Gathered<'_>,
) -> Result<(), StaticError> {
    let root = dir
        .canonicalize()
        .map_err(|e| StaticError::io("open source directory", dir, e))?;
    if !root.is_dir() {
        return Err(StaticError::io(
            "open source directory",
            dir,
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    if static_root.starts_with(&root) || root.starts_with(static_root) {
        return Err(StaticError::RootOverlapsSource {
            static_root: static_root.to_path_buf(),
            source_dir: root,
        });
    }

    let mut walk = WalkDir::new(&root)
        .follow_links(true)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(next) = walk.next() {
        let entry = next.map_err(|err| {
            let path = err.path().map_or_else(|| root.clone(), Path::to_path_buf);
            StaticError::io("walk", path, io::Error::from(err))
        })?;
        let is_dir = entry.file_type().is_dir();
        let rel = entry
            .path()
            .strip_prefix(&root)
            .map_err(|_| StaticError::unsafe_path(entry.path(), "not below its source"))?;

        if let Some(reason) = ignore_reason(&entry.file_name().to_string_lossy()) {
            if is_dir {
                walk.skip_current_dir();
            }
            gathered.skipped.push(Skipped {
                name: rel.to_string_lossy().replace('\\', "/"),
                source_index: index,
                reason,
            });
            continue;
        }

        if entry.path_is_symlink() {
            let target = fs::canonicalize(entry.path())
                .map_err(|e| StaticError::io("resolve symlink", entry.path(), e))?;
            if !target.starts_with(&root) {
                return Err(StaticError::SymlinkOutside {
                    link: entry.path().to_path_buf(),
                    target,
                    source_dir: root,
                });
            }
        }

        if is_dir {
            continue;
        }
        let name = rel_name(rel)?;
        if !entry.file_type().is_file() {
            gathered.skipped.push(Skipped {
                name,
                source_index: index,
                reason: SkipReason::NotAFile,
            });
            continue;
        }
        insert(
            gathered,
            name,
            index,
            Origin::File(entry.path().to_path_buf()),
        );
    }
    Ok(())
}

fn insert<'a>(gathered: &mut Gathered<'a>, name: String, index: usize, origin: Origin<'a>) {
    if let Some(first) = gathered.entries.get(&name) {
        let by_source = first.source_index;
        gathered.skipped.push(Skipped {
            name,
            source_index: index,
            reason: SkipReason::Shadowed { by_source },
        });
        return;
    }
    gathered.entries.insert(
        name,
        Entry {
            source_index: index,
            origin,
        },
    );
}

/// A relative filesystem path as a validated `/`-separated UTF-8 name.
fn rel_name(rel: &Path) -> Result<String, StaticError> {
    let mut parts = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(part) => parts.push(
                part.to_str()
                    .ok_or_else(|| StaticError::unsafe_path(rel, "name is not valid UTF-8"))?,
            ),
            _ => return Err(StaticError::unsafe_path(rel, "not a plain relative path")),
        }
    }
    let name = parts.join("/");
    validate_name(&name).map_err(|reason| StaticError::unsafe_path(rel, reason))?;
    Ok(name)
}

/// Check that `name` is a clean relative `/`-separated path that stays below its root.
pub(crate) fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.starts_with('/') {
        return Err("absolute path; names must be relative");
    }
    if name.contains('\\') {
        return Err("contains a backslash; use '/' as the separator");
    }
    if name.contains('\0') {
        return Err("contains a NUL byte");
    }
    for part in name.split('/') {
        match part {
            "" => return Err("empty path component ('//' or trailing '/')"),
            "." => return Err("'.' component; names must be normalised"),
            ".." => return Err("'..' component could escape the root"),
            _ => {}
        }
    }
    Ok(())
}

/// Django's default ignore patterns: `.*`, `*~`, `CVS`.
fn ignore_reason(part: &str) -> Option<SkipReason> {
    if part.starts_with('.') {
        Some(SkipReason::Hidden)
    } else if part.ends_with('~') {
        Some(SkipReason::EditorBackup)
    } else if part == "CVS" {
        Some(SkipReason::VersionControl)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("css/site.css").is_ok());
        assert!(validate_name("img/a b.png").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "a\\b",
            "a\0b",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ignores() {
        assert_eq!(ignore_reason(".git"), Some(SkipReason::Hidden));
        assert_eq!(ignore_reason("x.css~"), Some(SkipReason::EditorBackup));
        assert_eq!(ignore_reason("CVS"), Some(SkipReason::VersionControl));
        assert_eq!(ignore_reason("site.css"), None);
    }
}
