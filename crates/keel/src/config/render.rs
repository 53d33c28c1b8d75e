//! `keel config`'s output: the effective configuration as TOML, each line commented with
//! its origin, secrets masked. The declared keys' lines come from `keys.rs`
//! (`Settings::render_keys`, each value written by its [`RenderValue`]); the edge's tables
//! are written here. [`rendered_values`] reads the text back for `reload_changes`.

use std::fmt;

use super::*;

impl Settings {
    /// The effective configuration as TOML, each line commented with its origin.
    /// Secrets are masked by the value types' `Display`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match &self.file {
            Some(path) => out.push_str(&format!("# config file: {}\n", path.display())),
            None => out.push_str("# config file: none (./keel.toml not found)\n"),
        }
        self.render_keys(&mut out, render_tables);
        out
    }
}

/// The file-only tables that follow a section's keys: the edge's zones and limits.
fn render_tables(settings: &Settings, section_name: &str, out: &mut String) {
    if section_name != "edge" {
        return;
    }
    let e = &settings.edge;
    for zone in &e.zones {
        section(out, &format!("edge.zones.{}", zone.name));
        line(out, "rate", quoted(&zone.rate_text), &zone.origin);
        line(out, "size", quoted(&zone.size), &zone.origin);
    }
    for zone in &e.conn_zones {
        section(out, &format!("edge.conn_zones.{}", zone.name));
        line(out, "size", quoted(&zone.size), &zone.origin);
    }
    for limit in &e.conn_limits {
        section(out, "[edge.conn_limits]");
        line(out, "path", quoted(&limit.path), &limit.origin);
        line(out, "zone", quoted(&limit.zone), &limit.origin);
        line(out, "conn", limit.conn.to_string(), &limit.origin);
    }
    for limit in &e.limits {
        section(out, "[edge.limits]");
        line(out, "path", quoted(&limit.path), &limit.origin);
        line(out, "zone", quoted(&limit.zone), &limit.origin);
        line(out, "burst", limit.burst.to_string(), &limit.origin);
        line(out, "delay", quoted(&limit.delay), &limit.origin);
    }
}

/// `render`'s text as `section.key` → value, origins left out; the entries of an array
/// of tables are numbered (`edge.limits[0].path`).
pub(crate) fn rendered_values(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut values = std::collections::BTreeMap::new();
    let mut section = String::new();
    let mut tables: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            let n = tables.entry(name.to_owned()).or_insert(0);
            section = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, rest)) = line.split_once(" = ") {
            let value = rest.rsplit_once(" # ").map_or(rest, |(v, _)| v).trim();
            values.insert(format!("{section}.{key}"), value.to_owned());
        }
    }
    values
}

pub(crate) fn section(out: &mut String, name: &str) {
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(&format!("[{name}]\n"));
}

pub(crate) fn line(out: &mut String, key: &str, value: String, origin: &Origin) {
    let assignment = format!("{key} = {value}");
    out.push_str(&format!("{assignment:<48} # {origin}\n"));
}

pub(crate) fn array<T: fmt::Display>(items: &[T]) -> String {
    let quoted: Vec<String> = items.iter().map(quoted).collect();
    format!("[{}]", quoted.join(", "))
}

pub(crate) fn quoted(value: &impl fmt::Display) -> String {
    // TOML basic strings share JSON's escaping for everything a config value holds.
    serde_json::Value::String(value.to_string()).to_string()
}
