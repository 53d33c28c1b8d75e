//! Checks of the deployment files in `deploy/` that need no Docker engine: the compose
//! topology (services, ports, networks, volumes), every `keel …` command line in the
//! compose file, the Dockerfile and the systemd units against the real CLI, every `KEEL_*`
//! name against `--help`, the nginx alternative with `nginx -t` and a live SSE run through
//! it, and the units with `systemd-analyze verify`. Tools that are missing are skipped
//! with a message.

// Test helpers outside #[test] fns panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::keel;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The keel binary, run away from any keel.toml and without the caller's KEEL_* variables.
fn tool_exists(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------
// A purpose-built reader for the YAML subset deploy/docker-compose.yml keeps to: block
// maps, `- scalar` lists, `- key: scalar` list items (one-entry maps, as compose's
// `ipam.config` wants), `[flow, "lists"]` of scalars, quoted or plain scalars, comments.
// Anything else fails loudly, so the file cannot drift out of what this test understands.

#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Map(Vec<(String, Yaml)>),
    List(Vec<Yaml>),
    Str(String),
    Null,
}

impl Yaml {
    fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn at(&self, path: &str) -> &Yaml {
        path.split('.').fold(self, |node, key| {
            node.get(key)
                .unwrap_or_else(|| panic!("compose: no `{path}` (missing `{key}`)"))
        })
    }
    fn keys(&self) -> Vec<&str> {
        match self {
            Yaml::Map(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }
    fn str(&self) -> &str {
        match self {
            Yaml::Str(s) => s,
            other => panic!("expected a scalar, got {other:?}"),
        }
    }
    fn strings(&self) -> Vec<String> {
        match self {
            Yaml::List(items) => items.iter().map(|i| i.str().to_owned()).collect(),
            other => panic!("expected a list, got {other:?}"),
        }
    }
}

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].replace("\\\"", "\"");
        }
    }
    assert!(
        !s.starts_with('{') && !s.starts_with('&') && !s.starts_with('*') && !s.starts_with('|'),
        "compose: unsupported YAML value {s:?}"
    );
    s.to_owned()
}

fn parse_value(s: &str) -> Yaml {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .expect("a flow list ends on its line");
        let mut items = Vec::new();
        let mut current = String::new();
        let mut quote = None;
        for c in inner.chars() {
            match (quote, c) {
                (None, '"' | '\'') => {
                    quote = Some(c);
                    current.push(c);
                }
                (Some(q), _) if c == q => {
                    quote = None;
                    current.push(c);
                }
                (None, ',') => items.push(Yaml::Str(unquote(&std::mem::take(&mut current)))),
                _ => current.push(c),
            }
        }
        if !current.trim().is_empty() {
            items.push(Yaml::Str(unquote(&current)));
        }
        return Yaml::List(items);
    }
    Yaml::Str(unquote(s))
}

fn parse_yaml(text: &str) -> Yaml {
    let lines: Vec<(usize, String)> = text
        .lines()
        .filter_map(|raw| {
            let line = strip_comment(raw).trim_end();
            let content = line.trim_start();
            (!content.is_empty()).then(|| (line.len() - content.len(), content.to_owned()))
        })
        .collect();
    assert!(
        lines.iter().all(|(_, l)| !l.contains('\t')),
        "compose: tabs"
    );
    let mut pos = 0;
    let doc = parse_block(&lines, &mut pos, 0);
    assert_eq!(
        pos,
        lines.len(),
        "compose: could not read {:?}",
        lines.get(pos)
    );
    doc
}

fn parse_block(lines: &[(usize, String)], pos: &mut usize, indent: usize) -> Yaml {
    if lines[*pos].1.starts_with("- ") {
        let mut items = Vec::new();
        while *pos < lines.len() && lines[*pos].0 == indent && lines[*pos].1.starts_with("- ") {
            let item = &lines[*pos].1[2..];
            *pos += 1;
            match item.find(": ") {
                Some(i) if !item.starts_with('"') => {
                    assert!(
                        *pos >= lines.len() || lines[*pos].0 <= indent,
                        "compose: list items with several keys are outside the supported subset: {item:?}"
                    );
                    items.push(Yaml::Map(vec![(
                        item[..i].to_owned(),
                        parse_value(&item[i + 2..]),
                    )]));
                }
                _ => items.push(parse_value(item)),
            }
        }
        return Yaml::List(items);
    }
    let mut entries = Vec::new();
    while *pos < lines.len() && lines[*pos].0 >= indent {
        let (ind, line) = &lines[*pos];
        assert_eq!(*ind, indent, "compose: unexpected indentation at {line:?}");
        let (key, rest) = match line.find(": ") {
            Some(i) => (&line[..i], &line[i + 2..]),
            None => (
                line.strip_suffix(':')
                    .unwrap_or_else(|| panic!("compose: not `key: value`: {line:?}")),
                "",
            ),
        };
        *pos += 1;
        let value = if !rest.trim().is_empty() {
            parse_value(rest)
        } else if *pos < lines.len() && lines[*pos].0 > indent {
            let child = lines[*pos].0;
            parse_block(lines, pos, child)
        } else {
            Yaml::Null
        };
        assert!(
            !entries.iter().any(|(k, _)| k == key),
            "compose: duplicate key {key:?}"
        );
        entries.push((unquote(key), value));
    }
    Yaml::Map(entries)
}

/// Compose's `${VAR:-default}` / `${VAR-default}` / `${VAR}`, resolved to the default.
fn interpolate(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let expr = &rest[start + 2..end];
        let default = expr
            .split_once(":-")
            .or_else(|| expr.split_once('-'))
            .map_or("", |(_, d)| d);
        out.push_str(default);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out.replace("$$", "$")
}

fn compose() -> Yaml {
    parse_yaml(&read("deploy/docker-compose.yml"))
}

#[test]
fn yaml_reader_reads_the_subset_it_claims() {
    let doc = parse_yaml(
        "a:\n  b: \"x: y\" # c\n  l:\n    - one\n    - \"two\"\n  f: [\"p\", 'q', r]\n  n:\nz: 1\n",
    );
    assert_eq!(doc.at("a.b").str(), "x: y");
    assert_eq!(doc.at("a.l").strings(), ["one", "two"]);
    assert_eq!(doc.at("a.f").strings(), ["p", "q", "r"]);
    assert_eq!(doc.at("a.n"), &Yaml::Null);
    assert_eq!(doc.at("z").str(), "1");
    assert_eq!(interpolate("${A:-10r/s} ${B} x$$y"), "10r/s  x$y");
}

#[test]
fn compose_has_the_classic_topology() {
    let doc = compose();
    let services = doc.at("services");
    assert_eq!(services.keys(), ["edge", "web", "redis", "postgres"]);

    // Only the edge publishes a port, and it is host port 80.
    assert_eq!(services.at("edge.ports").strings(), ["80:8080"]);
    for name in ["web", "redis", "postgres"] {
        assert!(
            services.at(name).get("ports").is_none(),
            "{name} must not publish ports"
        );
    }
    assert_eq!(services.at("web.expose").strings(), ["8000"]);

    // restart: always everywhere; postgres only with its profile.
    for name in services.keys() {
        assert_eq!(
            services.at(&format!("{name}.restart")).str(),
            "always",
            "{name}"
        );
    }
    assert_eq!(services.at("postgres.profiles").strings(), ["postgres"]);
    for name in ["edge", "web", "redis"] {
        assert!(
            services.at(name).get("profiles").is_none(),
            "{name} always runs"
        );
    }

    // Networks: the edge on the external one and the backend; the rest on the backend.
    assert_eq!(doc.at("networks.public.external").str(), "true");
    assert_eq!(
        services.at("edge.networks").strings(),
        ["public", "backend"]
    );
    for name in ["web", "redis", "postgres"] {
        assert_eq!(
            services.at(&format!("{name}.networks")).strings(),
            ["backend"]
        );
    }

    // Who the client is: web believes forwarding headers from the backend subnet only,
    // and that subnet is the one the backend network is pinned to.
    let Yaml::List(pools) = doc.at("networks.backend.ipam.config") else {
        panic!("networks.backend.ipam.config is not a list");
    };
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0].at("subnet").str(), "172.30.80.0/24");
    assert_eq!(
        services
            .at("web.environment.KEEL_FORWARDED_ALLOW_IPS")
            .str(),
        "${KEEL_FORWARDED_ALLOW_IPS:-172.30.80.0/24}"
    );
    assert!(services
        .at("edge.environment")
        .get("KEEL_FORWARDED_ALLOW_IPS")
        .is_none());

    // Volumes: static root and logs on the edge; every named volume is declared.
    let edge_volumes = services.at("edge.volumes").strings();
    assert!(edge_volumes.contains(&"static:/srv/keel/static".to_owned()));
    assert!(edge_volumes.contains(&"logs:/var/log/keel".to_owned()));
    let declared = doc.at("volumes").keys();
    for name in services.keys() {
        if let Some(volumes) = services.at(name).get("volumes") {
            for volume in volumes.strings() {
                let source = volume.split(':').next().unwrap();
                if !source.starts_with('.') && !source.starts_with('/') {
                    assert!(
                        declared.contains(&source),
                        "{name}: volume {source} not declared"
                    );
                }
            }
        }
        if let Some(depends) = services.at(name).get("depends_on") {
            for dep in depends.keys() {
                assert!(
                    services.get(dep).is_some(),
                    "{name} depends on unknown {dep}"
                );
            }
        }
    }

    // The edge proxies to web:8000 and the web server binds 0.0.0.0:8000 with 4 × 10.
    let edge = compose_keel_commands(&doc, "edge");
    assert!(edge
        .iter()
        .any(|c| c.sub == "edge" && c.args.windows(2).any(|w| w == ["--upstream", "web:8000"])));
    let web = compose_keel_commands(&doc, "web");
    assert_eq!(
        web[0].args,
        [
            "--bind",
            "0.0.0.0:8000",
            "--workers",
            "4",
            "--threads",
            "10"
        ]
    );
    assert_eq!(
        services.at("web.environment.KEEL_REDIS_URL").str(),
        "redis://redis:6379"
    );
}

// ---------------------------------------------------------------------------------------
// `keel …` command lines in the deployment files.

#[derive(Debug)]
struct KeelCommand {
    origin: String,
    sub: String,
    args: Vec<String>,
}

/// Splits a shell command line into words (quotes, no expansions).
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in s.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), _) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            _ => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Every `keel SUB ARGS…` in a shell command line (split at `&&`, `||`, `;`, `|`).
fn keel_commands_in(origin: &str, words: &[String]) -> Vec<KeelCommand> {
    let mut found = Vec::new();
    for segment in words.split(|w| ["&&", "||", ";", "|"].contains(&w.as_str())) {
        // The program is the first word after `exec` and `NAME=value` assignments.
        let Some(i) = segment.iter().position(|w| w != "exec" && !w.contains('=')) else {
            continue;
        };
        if segment[i] == "keel" || segment[i].ends_with("/keel") {
            let sub = segment
                .get(i + 1)
                .unwrap_or_else(|| panic!("{origin}: `keel` without a subcommand"));
            found.push(KeelCommand {
                origin: origin.to_owned(),
                sub: sub.clone(),
                args: segment[i + 2..].to_vec(),
            });
        }
    }
    found
}

fn compose_keel_commands(doc: &Yaml, service: &str) -> Vec<KeelCommand> {
    let svc = doc.at("services").at(service);
    let Some(command) = svc.get("command") else {
        return Vec::new();
    };
    let command: Vec<String> = command.strings().iter().map(|s| interpolate(s)).collect();
    let origin = format!("docker-compose.yml services.{service}");
    match svc.get("entrypoint").map(Yaml::strings) {
        // sh -c "…": the command is one shell line.
        Some(entry) if entry.last().is_some_and(|e| e == "-c") => {
            keel_commands_in(&origin, &shell_words(&command.join(" ")))
        }
        Some(entry) => panic!("{origin}: unexpected entrypoint {entry:?}"),
        // The image's ENTRYPOINT is ["keel"].
        None if svc
            .get("image")
            .is_some_and(|i| i.str().starts_with("keel")) =>
        {
            let mut words = vec!["keel".to_owned()];
            words.extend(command);
            keel_commands_in(&origin, &words)
        }
        None => Vec::new(),
    }
}

fn dockerfile_keel_commands() -> Vec<KeelCommand> {
    let text = read("deploy/Dockerfile");
    // Join `\` continuations; drop comments.
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(line);
            instructions.push(std::mem::take(&mut current));
        }
    }
    let mut entrypoint = Vec::new();
    let mut found = Vec::new();
    for instr in &instructions {
        let (op, rest) = instr.trim().split_once(' ').unwrap_or((instr.trim(), ""));
        let json = || -> Vec<String> {
            let v: serde_json::Value = serde_json::from_str(rest.trim()).expect("JSON form");
            v.as_array()
                .expect("array")
                .iter()
                .map(|s| s.as_str().expect("string").to_owned())
                .collect()
        };
        match op.to_ascii_uppercase().as_str() {
            "RUN" => found.extend(keel_commands_in("Dockerfile RUN", &shell_words(rest))),
            "ENTRYPOINT" => entrypoint = json(),
            "CMD" => {
                let mut words = entrypoint.clone();
                words.extend(json());
                found.extend(keel_commands_in("Dockerfile CMD", &words));
            }
            _ => {}
        }
    }
    assert_eq!(entrypoint, ["keel"], "the image's ENTRYPOINT is keel");
    found
}

const UNITS: [&str; 2] = ["keel-edge.service", "keel-serve.service"];

fn unit_lines(unit: &str) -> Vec<(String, String)> {
    read(&format!("deploy/systemd/{unit}"))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('[') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{unit}: {l:?}"));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

fn systemd_keel_commands() -> Vec<KeelCommand> {
    let mut found = Vec::new();
    for unit in UNITS {
        for (key, value) in unit_lines(unit) {
            if key.starts_with("Exec") {
                let value = value.trim_start_matches(['-', '@', '+', '!', ':']);
                found.extend(keel_commands_in(
                    &format!("{unit} {key}"),
                    &shell_words(value),
                ));
            }
        }
    }
    found
}

fn all_keel_commands() -> Vec<KeelCommand> {
    let doc = compose();
    let mut all = Vec::new();
    for service in doc.at("services").keys() {
        all.extend(compose_keel_commands(&doc, service));
    }
    all.extend(dockerfile_keel_commands());
    all.extend(systemd_keel_commands());
    all
}

fn help(sub: &str) -> String {
    let out = keel().args([sub, "--help"]).output().expect("run keel");
    assert!(
        out.status.success(),
        "keel {sub} --help failed: is `{sub}` a subcommand?"
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_keel_command_line_is_accepted_by_the_cli() {
    let commands = all_keel_commands();
    // The ones this test exists for must have been found.
    for (origin, sub) in [
        ("docker-compose.yml services.edge", "collectstatic"),
        ("docker-compose.yml services.edge", "edge"),
        ("docker-compose.yml services.web", "serve"),
        ("Dockerfile RUN", "collectstatic"),
        ("Dockerfile CMD", "serve"),
        ("keel-edge.service ExecStartPre", "collectstatic"),
        ("keel-edge.service ExecStart", "edge"),
        ("keel-serve.service ExecStart", "serve"),
    ] {
        assert!(
            commands.iter().any(|c| c.origin == origin && c.sub == sub),
            "no `keel {sub}` found in {origin}: {commands:#?}"
        );
    }
    for cmd in &commands {
        let text = help(&cmd.sub);
        // Every flag is one `keel SUB --help` documents…
        for arg in cmd.args.iter().filter(|a| a.starts_with('-')) {
            let name = arg.split('=').next().unwrap();
            let documented = text
                .lines()
                .any(|line| line.trim_start().split([' ', ',']).any(|word| word == name));
            assert!(
                documented,
                "{}: `keel {} {name}` is not in `keel {} --help`",
                cmd.origin, cmd.sub, cmd.sub
            );
        }
        // …and clap accepts the whole line, values included (it parses before --help).
        let out = keel()
            .arg(&cmd.sub)
            .args(&cmd.args)
            .arg("--help")
            .output()
            .expect("run keel");
        assert!(
            out.status.success(),
            "{}: `keel {} {}` is refused: {}",
            cmd.origin,
            cmd.sub,
            cmd.args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every `KEEL_*` name the deployment files and OPERATIONS.md mention is one keel reads.
/// What keel reads is what its help prints: every flag's `[env: …]`, and `keel config
/// --help`, which lists every declared key (`config::KEYS`) with its variable.
#[test]
fn every_keel_variable_is_one_keel_reads() {
    let mut known = String::new();
    for sub in [
        "up",
        "serve",
        "edge",
        "collectstatic",
        "publish",
        "mock-upstream",
        "config",
    ] {
        known.push_str(&help(sub));
    }
    let mut unknown = BTreeSet::new();
    for file in [
        "deploy/Dockerfile",
        "deploy/docker-compose.yml",
        "deploy/systemd/keel-edge.service",
        "deploy/systemd/keel-serve.service",
        "docs/OPERATIONS.md",
    ] {
        let text = read(file);
        let mut rest = text.as_str();
        while let Some(i) = rest.find("KEEL_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // `KEEL_*` (the family, not a name) needs no check.
            let documented = name == "KEEL_"
                || known.match_indices(name.as_str()).any(|(j, _)| {
                    !known[j + name.len()..]
                        .starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                });
            if !documented {
                unknown.insert(format!("{file}: {name}"));
            }
            rest = &rest[i + name.len()..];
        }
    }
    assert!(unknown.is_empty(), "not read by keel: {unknown:#?}");
}

/// The environment the compose file and the units set is one keel accepts: `keel config`
/// validates every section, so a bad value (a short token, a bad address) fails here.
#[test]
fn deployment_environments_pass_keel_config() {
    let doc = compose();
    let mut envs: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for service in ["edge", "web"] {
        let env = doc.at("services").at(service).at("environment");
        let Yaml::Map(entries) = env else {
            panic!("{service}.environment is a map")
        };
        let vars = entries
            .iter()
            .map(|(k, v)| (k.clone(), interpolate(v.str())))
            .collect();
        envs.push((format!("compose {service}"), vars));
    }
    for unit in UNITS {
        let mut vars = Vec::new();
        for (key, value) in unit_lines(unit) {
            if key == "Environment" {
                for word in shell_words(&value) {
                    let (k, v) = word.split_once('=').expect("NAME=value");
                    vars.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        assert!(
            !vars.is_empty(),
            "{unit} sets its defaults with Environment="
        );
        envs.push((unit.to_owned(), vars));
    }
    for (origin, vars) in envs {
        let out = keel()
            .arg("config")
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run keel config");
        assert!(
            out.status.success(),
            "{origin}: keel config refuses {vars:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------
// systemd

#[test]
fn systemd_units_verify_and_are_sandboxed() {
    for unit in UNITS {
        let lines = unit_lines(unit);
        let has = |k: &str, v: &str| lines.iter().any(|(key, val)| key == k && val == v);
        assert!(has("ProtectSystem", "strict"), "{unit}");
        assert!(has("NoNewPrivileges", "yes"), "{unit}");
        assert!(
            has("TimeoutStopSec", "35s"),
            "{unit}: longer than the 30 s drain"
        );
        assert!(
            lines.iter().any(|(k, _)| k == "User" || k == "DynamicUser"),
            "{unit}"
        );
    }
    assert!(unit_lines("keel-edge.service")
        .iter()
        .any(|(k, v)| k == "ExecReload" && v == "/bin/kill -HUP $MAINPID"));
    let logrotate = read("deploy/logrotate/keel");
    assert!(logrotate.contains("systemctl kill -s USR1 --kill-whom=main keel-edge.service"));

    if !tool_exists("systemd-analyze") {
        eprintln!("skipped: systemd-analyze not installed");
        return;
    }
    // Verify copies whose ExecStart points at the binary under test (verify insists the
    // program exists); unknown keys only warn, so any output about the unit fails.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for unit in UNITS {
        let text = read(&format!("deploy/systemd/{unit}"))
            .replace("/usr/local/bin/keel", env!("CARGO_BIN_EXE_keel"));
        let path = dir.path().join(unit);
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| UNITS.iter().any(|u| l.contains(u)))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// nginx

fn nginx_conf() -> String {
    read("deploy/nginx/default.conf")
}

#[test]
fn nginx_conf_is_commented_and_streams_unbuffered() {
    let text = nginx_conf();
    // Every directive line has a comment on the line above it (or on the same line).
    let mut previous = "";
    for line in text.lines().map(str::trim) {
        if !line.is_empty() && !line.starts_with('#') && line != "}" {
            assert!(
                previous.starts_with('#') || line.contains(" # "),
                "uncommented line in deploy/nginx/default.conf: {line:?}"
            );
        }
        if !line.is_empty() {
            previous = line;
        }
    }
    let has = |s: &str| text.lines().any(|l| l.trim() == s);
    assert!(has(
        "limit_req_zone $binary_remote_addr zone=mylimit:10m rate=10r/s;"
    ));
    assert!(has("limit_req zone=mylimit burst=20 nodelay;"));
    assert!(has("alias /srv/keel/static/;"));
    assert!(has("keepalive 32;"));
    assert!(has(
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"
    ));

    let stream = text
        .split("location /stream/ {")
        .nth(1)
        .expect("a /stream/ location")
        .split('}')
        .next()
        .unwrap();
    let directive = |name: &str| {
        stream
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_suffix(';')))
            .map(str::trim)
            .unwrap_or_else(|| panic!("/stream/ has no {name}"))
            .to_owned()
    };
    assert_eq!(directive("proxy_buffering "), "off");
    assert_eq!(directive("proxy_http_version "), "1.1");
    let timeout = humantime_secs(&directive("proxy_read_timeout "));
    assert!(
        timeout > 15,
        "proxy_read_timeout {timeout}s is not above the 15 s heartbeat"
    );
}

/// nginx time values used here: `Ns`, `Nm`, `Nh`, or bare seconds.
fn humantime_secs(v: &str) -> u64 {
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = num.parse().expect("a number");
    match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        other => panic!("unit {other:?}"),
    }
}

/// A wrapper nginx.conf around (a copy of) default.conf, with everything in `dir`.
fn nginx_wrapper(dir: &Path, conf: &str, listen: Option<u16>, upstream: Option<u16>) -> PathBuf {
    let mut conf = conf.to_owned();
    if let Some(port) = listen {
        conf = conf.replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    }
    if let Some(port) = upstream {
        conf = conf.replace(
            "server 127.0.0.1:8000 ",
            &format!("server 127.0.0.1:{port} "),
        );
    }
    let static_root = dir.join("static");
    std::fs::create_dir_all(&static_root).unwrap();
    // nginx's workers may run as `nobody` (when the test runs as root): let them read.
    for path in [dir, static_root.as_path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    conf = conf.replace("/srv/keel/static/", &format!("{}/", static_root.display()));
    std::fs::write(dir.join("default.conf"), conf).unwrap();
    let d = dir.display();
    let wrapper = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {d}/default.conf;\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, wrapper).unwrap();
    path
}

#[test]
fn nginx_accepts_the_config() {
    if !tool_exists("nginx") {
        eprintln!("skipped: nginx not installed (apt-get install nginx)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Test the file as shipped: only the static alias and temp paths are redirected.
    let wrapper = nginx_wrapper(dir.path(), &nginx_conf(), None, None);
    let out = Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&wrapper)
        .output()
        .expect("run nginx -t");
    assert!(
        out.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process stopped when the test ends: SIGTERM first (nginx then stops its
/// workers too, none is left behind), SIGKILL after 5 s.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An event published to keel serve reaches an SSE client through the shipped nginx
/// config at once, and a static file is served from the alias.
#[test]
fn sse_passes_through_nginx_unbuffered() {
    if !tool_exists("nginx") {
        eprintln!("skipped: nginx not installed (apt-get install nginx)");
        return;
    }
    const TOKEN: &str = "deploy-test-token-0123456789";
    let mut serve = keel()
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--threads",
            "2",
        ])
        .env("KEEL_PUBLISH_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start keel serve");
    let mut stdout = BufReader::new(serve.stdout.take().unwrap());
    let serve = Killed(serve);
    let app_port: u16 = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "keel serve exited"
        );
        if let Some(rest) = line.trim().strip_prefix("keel serve: listening on") {
            let url = rest.split_whitespace().next().unwrap();
            break url
                .rsplit(':')
                .next()
                .unwrap()
                .trim_end_matches('/')
                .parse()
                .unwrap();
        }
    };

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let wrapper = nginx_wrapper(dir.path(), &nginx_conf(), Some(port), Some(app_port));
    std::fs::write(dir.path().join("static/hello.txt"), "hello from the alias").unwrap();
    let nginx = Killed(
        Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&wrapper)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx"),
    );
    wait_for_port(port);

    let get = |path: &str| -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    };
    assert!(get("/static/hello.txt").ends_with("hello from the alias"));

    // Open the stream and wait for its first bytes (the retry hint).
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET /stream/ HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("\r\n\r\n") {
        let n = stream.read(&mut buf).expect("stream headers through nginx");
        assert!(n > 0, "nginx closed the stream: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(seen.contains("text/event-stream"), "{seen}");

    // Publish straight to the app; the event must come out of nginx well within 1 s.
    let body = r#"{"channel":"demo_stream","message":"through nginx"}"#;
    let mut publish = TcpStream::connect(("127.0.0.1", app_port)).unwrap();
    write!(
        publish,
        "POST /api/publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    publish.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "publish: {answer}");
    let published = Instant::now();

    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    while !seen.contains("data: through nginx") {
        let n = stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("event not through nginx within 1 s ({e}): {seen}"));
        assert!(n > 0, "nginx closed the stream: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(published.elapsed() < Duration::from_secs(1));
    drop(nginx);
    drop(serve);
}
