//! The configuration's tests: layering, errors with their origins, `keel config`, and
//! every declared key walked from the file, its variable and its flag.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use std::collections::HashMap;

struct FakeEnv(HashMap<&'static str, &'static str>);
impl Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| (*v).to_owned())
    }
}

fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn load(
    text: &str,
    env: &[(&'static str, &'static str)],
    flags: Flags,
) -> Result<Settings, ConfigError> {
    let (_dir, path) = write(text);
    let mut flags = flags;
    flags.config = Some(path);
    Settings::load(flags, &FakeEnv(env.iter().copied().collect()))
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let text = "[serve]\nworkers = 3\nthreads = 7\ntimeout = \"5s\"\n";
    let flags = Flags::default().with("serve.workers", "--workers", "9");
    let s = load(text, &[("KEEL_WORKERS", "5"), ("KEEL_THREADS", "8")], flags).unwrap();
    assert_eq!(s.serve.workers.value.get(), 9);
    assert_eq!(s.serve.workers.origin, Origin::Flag("--workers"));
    assert_eq!(s.serve.threads.value.get(), 8);
    assert_eq!(s.serve.threads.origin, Origin::Env("KEEL_THREADS"));
    assert_eq!(s.serve.timeout.value.0, Duration::from_secs(5));
    assert!(matches!(
        s.serve.timeout.origin,
        Origin::File { line: 4, .. }
    ));
    assert_eq!(s.serve.upstream_timeout.value.0, Duration::from_secs(10));
    assert_eq!(s.serve.upstream_timeout.origin, Origin::Default);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let err = load(
        "[serve]\nworkers = 2\nbnid = \"x\"\n",
        &[],
        Flags::default(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("keel.toml:3"), "{text}");
    assert!(text.contains("serve"), "{text}");
    assert!(text.contains("bnid"), "{text}");
}

#[test]
fn bad_address_names_file_line_and_key() {
    let err = load(
        "\n[serve]\nbind = \"localhost:eighty\"\n",
        &[],
        Flags::default(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("keel.toml:3: serve.bind:"), "{text}");
    assert!(text.contains("invalid socket address"), "{text}");
}

#[test]
fn bad_duration_and_zero_values_are_refused() {
    let err = load("[serve]\ntimeout = \"soon\"\n", &[], Flags::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("keel.toml:2: serve.timeout: invalid duration"),
        "{err}"
    );
    let err = load("[serve]\ntimeout = \"0s\"\n", &[], Flags::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("keel.toml:2: serve.timeout: must be greater than 0"),
        "{err}"
    );
    let err = load("[serve]\nworkers = 0\n", &[], Flags::default()).unwrap_err();
    assert!(
        err.to_string().contains("keel.toml:2: serve.workers:"),
        "{err}"
    );
}

#[test]
fn bad_env_value_names_the_variable() {
    let err = load("", &[("KEEL_WORKERS", "many")], Flags::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("environment variable KEEL_WORKERS: serve.workers:"),
        "{text}"
    );
}

#[test]
fn upstream_url_scheme_is_checked_and_password_masked() {
    let err = load(
        "[serve]\nupstream_url = \"ftp://x/y\"\n",
        &[],
        Flags::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("only http and https"), "{err}");
    let s = load(
        "[serve]\nupstream_url = \"https://user:hunter2@api.example/todos/1\"\n",
        &[],
        Flags::default(),
    )
    .unwrap();
    let shown = s.render();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("user:****@api.example"), "{shown}");
}

#[test]
fn rendered_config_parses_back_to_the_same_values() {
    let s = load(
        "[serve]\nworkers = 3\n[mock_upstream]\nlatency = \"250ms\"\n",
        &[],
        Flags::default(),
    )
    .unwrap();
    let rendered = s.render();
    let again = load(&rendered, &[], Flags::default()).unwrap();
    assert_eq!(again.serve.workers.value.get(), 3);
    assert_eq!(again.mock.latency.value.0, Duration::from_millis(250));
    assert_eq!(again.serve.bind.value, s.serve.bind.value);
}

#[test]
fn byte_sizes_parse_like_nginx() {
    assert_eq!("1m".parse::<ByteSize>().unwrap().0, 1024 * 1024);
    assert_eq!("64K".parse::<ByteSize>().unwrap().0, 64 * 1024);
    assert_eq!("0".parse::<ByteSize>().unwrap().0, 0);
    assert_eq!(ByteSize(2 * 1024 * 1024).to_string(), "2m");
    assert!("1t".parse::<ByteSize>().is_err());
    assert!("m".parse::<ByteSize>().is_err());
    let buffers = "4 8k".parse::<HeaderBuffers>().unwrap();
    assert_eq!((buffers.count, buffers.size.0), (4, 8192));
    assert_eq!(buffers.to_string(), "4 8k");
    for bad in ["8k", "0 8k", "4 100", "4 8k 1", "x 8k", "4096 8m"] {
        assert!(bad.parse::<HeaderBuffers>().is_err(), "{bad}");
    }
    let err = load(
        "[edge]\nclient_max_body_size = \"lots\"\n",
        &[],
        Flags::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("keel.toml:2: edge.client_max_body_size: invalid size"),
        "{err}"
    );
}

#[test]
fn zones_and_per_path_limits_are_read_and_checked() {
    let text = "[edge]\nrate = \"off\"\n[edge.zones.login]\nrate = \"6r/m\"\nsize = \"1m\"\n\n[[edge.limits]]\npath = \"/accounts/login/\"\nzone = \"login\"\nburst = 3\n";
    let s = load(text, &[], Flags::default()).unwrap();
    assert_eq!(s.edge.zones.len(), 1);
    assert_eq!(s.edge.limits[0].burst, 3);
    assert!(
        matches!(s.edge.limits[0].origin, Origin::File { line: 7, .. }),
        "{:?}",
        s.edge.limits[0].origin
    );
    let limits = s.limit_config().unwrap().unwrap();
    assert!(limits.route_for("/accounts/login/").is_some());
    assert!(
        limits.route_for("/").is_none(),
        "rate = off leaves other paths alone"
    );
    let again = load(&s.render(), &[], Flags::default()).unwrap();
    assert_eq!(again.edge.limits[0].zone, "login");

    let err = load(
        "[[edge.limits]]\npath = \"/x\"\nzone = \"nope\"\n",
        &[],
        Flags::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains(":1: edge.limits[0].zone: no zone named \"nope\""),
        "{err}"
    );
}

#[test]
fn the_rate_and_the_zones_make_one_limit_spec() {
    let text = "[edge]\nrate = \"5r/s\"\nburst = 7\ndry_run = true\n[edge.zones.login]\nrate = \"6r/m\"\n\n[[edge.limits]]\npath = \"/login\"\nzone = \"login\"\n";
    let s = load(text, &[], Flags::default()).unwrap();
    let spec = s.limit_config().unwrap().unwrap();
    let names: Vec<&str> = spec.zones.iter().map(|z| z.name.as_str()).collect();
    assert_eq!(names, ["keel", "login"]);
    assert_eq!(spec.route_for("/about").unwrap().limits[0].burst, 7);
    assert_eq!(spec.route_for("/login/x").unwrap().limits[0].zone, "login");
    assert!(spec.dry_run);

    // The zone of edge.rate is found by its name: a file zone may not take it, and
    // the configuration refuses it at load (keel config too), not only the edge.
    let clash = "[edge.zones.keel]\nrate = \"1r/s\"\n";
    let err = load(clash, &[], Flags::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains(":2: edge.zones.keel: \"keel\" is the zone of edge.rate"),
        "{err}"
    );
}

#[test]
fn limit_conn_is_off_by_default_and_read_from_every_layer() {
    let s = load("", &[], Flags::default()).unwrap();
    assert!(s.conn_limit_config().unwrap().is_none());

    let s = load("", &[("KEEL_LIMIT_CONN", "2")], Flags::default()).unwrap();
    let limits = s.conn_limit_config().unwrap().unwrap();
    assert_eq!(limits.status.as_u16(), 503);
    assert_eq!(limits.for_path("/stream/").unwrap().limits[0].1, 2);

    let text = "[edge]\nlimit_conn_status = 429\nlimit_conn_dry_run = true\n[edge.conn_zones.streams]\nsize = \"1m\"\n\n[[edge.conn_limits]]\npath = \"/stream/\"\nzone = \"streams\"\nconn = 4\n";
    let s = load(text, &[], Flags::default()).unwrap();
    let limits = s.conn_limit_config().unwrap().unwrap();
    assert_eq!(limits.status.as_u16(), 429);
    assert!(limits.dry_run);
    assert!(limits.for_path("/").is_none());
    let route = limits.for_path("/stream/").unwrap();
    assert_eq!(route.limits[0].0.name(), "streams");
    assert_eq!(route.limits[0].1, 4);
    let again = load(&s.render(), &[], Flags::default()).unwrap();
    assert_eq!(again.edge.conn_limits[0].conn, 4);
    assert_eq!(again.edge.conn_zones[0].name, "streams");

    let flags = Flags::default().with("edge.limit_conn", "--limit-conn", "off");
    let s = load("[edge]\nlimit_conn = 3\n", &[], flags).unwrap();
    assert!(s.conn_limit_config().unwrap().is_none(), "the flag wins");

    let err = load(
        "[[edge.conn_limits]]\npath = \"/x\"\nzone = \"nope\"\nconn = 1\n",
        &[],
        Flags::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains(":1: edge.conn_limits[0].zone: no conn zone named \"nope\""),
        "{err}"
    );
    let err = load("", &[("KEEL_LIMIT_CONN", "70000")], Flags::default()).unwrap_err();
    assert!(err.to_string().contains("KEEL_LIMIT_CONN"), "{err}");
}

#[test]
fn forwarded_allow_ips_default_to_loopback_and_take_cidrs_or_a_star() {
    let s = load("", &[], Flags::default()).unwrap();
    assert_eq!(
        s.serve.forwarded_allow_ips.value.to_string(),
        "127.0.0.1/32,::1/128"
    );
    let s = load(
        "[serve]\nforwarded_allow_ips = [\"10.0.0.0/8\", \"192.0.2.1\"]\n",
        &[],
        Flags::default(),
    )
    .unwrap();
    let trusted = s.serve.forwarded_allow_ips.value.trusted();
    assert!(trusted.trusts("10.1.2.3".parse().unwrap()));
    assert!(trusted.trusts("192.0.2.1".parse().unwrap()));
    assert!(!trusted.trusts("127.0.0.1".parse().unwrap()));
    let s = load("", &[("KEEL_FORWARDED_ALLOW_IPS", "*")], Flags::default()).unwrap();
    assert_eq!(s.serve.forwarded_allow_ips.value, AllowIps::Any);
    let again = load(&s.render(), &[], Flags::default()).unwrap();
    assert_eq!(again.serve.forwarded_allow_ips.value, AllowIps::Any);
    let err = load(
        "[serve]\nforwarded_allow_ips = \"10.0.0.0/33\"\n",
        &[],
        Flags::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("forwarded_allow_ips"), "{err}");
}

#[test]
fn serve_timeouts_have_defaults_and_a_zero_head_timeout_is_refused() {
    let s = load("", &[], Flags::default()).unwrap();
    assert_eq!(s.serve.keep_alive.value.0, Duration::from_secs(5));
    assert_eq!(s.serve.header_timeout.value.0, Duration::from_secs(10));
    let cfg = s.app_config(s.serve.bind.value, None);
    assert_eq!(cfg.keep_alive, Duration::from_secs(5));
    let s = load("[serve]\nkeep_alive = \"0s\"\n", &[], Flags::default()).unwrap();
    assert!(
        s.serve.keep_alive.value.0.is_zero(),
        "0 turns keep-alive off"
    );
    let err = load("", &[("KEEL_HEADER_TIMEOUT", "0s")], Flags::default()).unwrap_err();
    assert!(err.to_string().contains("serve.header_timeout"), "{err}");
}

/// Whatever `keel config` accepts, the server starts with: values the server would
/// refuse are refused here, naming where they came from.
#[test]
fn values_the_server_would_refuse_are_refused_by_the_configuration() {
    let err = load("[stream]\nheartbeat = \"1ns\"\n", &[], Flags::default()).unwrap_err();
    assert!(err.to_string().contains(":2: stream.heartbeat"), "{err}");
    let err = load("", &[("KEEL_STREAM_MAX_CLIENTS", "0")], Flags::default()).unwrap_err();
    assert!(err.to_string().contains("stream.max_clients"), "{err}");
    let s = load("[stream]\nmax_clients_per_ip = 0\n", &[], Flags::default()).unwrap();
    assert_eq!(
        s.stream_config().max_clients_per_ip,
        0,
        "0 is off, not refused"
    );
    keel_stream::Hub::new(
        std::sync::Arc::new(keel_stream::MemoryBroker::new(Default::default())),
        s.stream_config(),
    )
    .map(|_| ())
    .unwrap_or_else(|e| panic!("the hub refused what the configuration accepted: {e}"));
    let err = load(
        "[site]\ntemplates = \"/nonexistent/templates\"\n",
        &[],
        Flags::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("site.templates") && err.to_string().contains("not a directory"),
        "{err}"
    );
    let err = load(
        "[edge]\ntls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n",
        &[],
        Flags::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("edge.tls_cert") && err.to_string().contains("cannot read"),
        "{err}"
    );
}

#[test]
fn a_reload_tells_what_it_applies_and_what_needs_a_restart() {
    let old = load(
        "[edge]\nrate = \"10r/s\"\nupstream = [\"127.0.0.1:8000\"]\n",
        &[],
        Flags::default(),
    )
    .unwrap();
    let new = load(
        "[edge]\nrate = \"5r/s\"\nupstream = [\"127.0.0.1:8001\"]\nheader_timeout = \"20s\"\nworkers = 3\n[[edge.limits]]\npath = \"/x/\"\nzone = \"z\"\n[edge.zones.z]\nrate = \"1r/s\"\n",
        &[],
        Flags::default(),
    )
    .unwrap();
    let changes = old.reload_changes(&new);
    assert_eq!(
        changes.applied,
        [
            "edge.limits[0].burst",
            "edge.limits[0].delay",
            "edge.limits[0].path",
            "edge.limits[0].zone",
            "edge.rate",
            "edge.upstream",
            "edge.zones.z.rate",
            "edge.zones.z.size",
        ]
    );
    assert_eq!(
        changes.need_restart,
        ["edge.header_timeout", "edge.workers"]
    );
    assert_eq!(old.reload_changes(&old), ReloadChanges::default());
}

#[test]
fn missing_explicit_file_is_an_error() {
    let mut flags = Flags::default();
    flags.config = Some(PathBuf::from("/nonexistent/keel.toml"));
    let err = Settings::load(flags, &FakeEnv(HashMap::new())).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/keel.toml"), "{err}");
}

/// The module doc's table as [`KEYS`] makes it.
fn doc_table() -> String {
    let mut out = String::from(
        "| key (file) | environment | flag | default | range | help |\n|---|---|---|---|---|---|\n",
    );
    for key in KEYS {
        out.push_str(&format!(
            "| `{}` | `{}` | {} | `{}` | {} | {} |\n",
            key.name,
            key.env,
            if key.flags.is_empty() {
                "none".to_owned()
            } else {
                let names: Vec<String> =
                    key.flags.iter().map(|f| format!("`{}`", f.long)).collect();
                names.join(", ")
            },
            key.default,
            key.range
                .map_or("".to_owned(), |(low, high)| format!("`{low}` to `{high}`")),
            key.help
        ));
    }
    out
}

#[test]
fn every_range_takes_its_ends_and_refuses_beyond_them_naming_the_origin() {
    for key in KEYS {
        let Some((low, high)) = key.range else {
            continue;
        };
        for end in [low, high] {
            // One worker and one thread, so that the other end of serve.workers × threads
            // stays under its product's cap.
            let mut env = vec![("KEEL_WORKERS", "1"), ("KEEL_THREADS", "1")];
            env.push((key.env, end));
            load("", &env, Flags::default())
                .unwrap_or_else(|e| panic!("{}: {end} is its own bound: {e}", key.name));
        }
    }
    let cases: &[(&str, &str, &str)] = &[
        (
            "KEEL_STREAM_HEARTBEAT",
            "1ns",
            "stream.heartbeat: 1ns is less than 1s",
        ),
        (
            "KEEL_STREAM_HEARTBEAT",
            "301s",
            "stream.heartbeat: 5m 1s is more than 5m",
        ),
        (
            "KEEL_TIMEOUT",
            "0s",
            "serve.timeout: must be greater than 0",
        ),
        (
            "KEEL_TIMEOUT",
            "2days",
            "serve.timeout: 2days is more than 1day",
        ),
        (
            "KEEL_CLIENT_MAX_BODY_SIZE",
            "2g",
            "edge.client_max_body_size",
        ),
        (
            "KEEL_MAX_CONNECTIONS",
            "0",
            "edge.max_connections: 0 is less than 1",
        ),
        ("KEEL_MAX_FAILS", "0", "edge.max_fails"),
        (
            "KEEL_EDGE_WORKERS",
            "5000",
            "edge.workers: 5000 is more than 1024",
        ),
        ("KEEL_HEALTH_INTERVAL", "1ms", "edge.health_interval"),
        ("KEEL_STREAM_RETENTION", "1000001", "stream.retention"),
    ];
    for (var, value, expected) in cases {
        let err = load("", &[(var, value)], Flags::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("environment variable {var}")) && err.contains(expected),
            "{var}={value}: {err}"
        );
    }
    let err = load("[edge]\nworkers = 2000\n", &[], Flags::default()).unwrap_err();
    assert!(
        err.to_string().contains("keel.toml:2: edge.workers"),
        "{err}"
    );
    let flags = Flags::default().with("serve.keep_alive", "--keep-alive", "2h");
    let err = load("", &[], flags).unwrap_err();
    assert!(err.to_string().contains("flag --keep-alive"), "{err}");
}

/// The value and the origin `keel config` shows for `section.field`.
fn shown(rendered: &str, section: &str, field: &str) -> Option<(String, String)> {
    let mut current = "";
    for line in rendered.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name;
        } else if current == section {
            if let Some(rest) = line.strip_prefix(&format!("{field} = ")) {
                let (value, origin) = rest.rsplit_once(" # ")?;
                return Some((value.trim().to_owned(), origin.to_owned()));
            }
        }
    }
    None
}

#[test]
fn the_module_doc_lists_every_key() {
    let expected = doc_table();
    let source = include_str!("mod.rs");
    let doc: String = source
        .lines()
        .filter_map(|line| line.strip_prefix("//! |"))
        .map(|line| format!("|{line}\n"))
        .collect();
    if doc != expected && std::env::var_os("UPDATE_EXPECT").is_some() {
        // expect-test's convention: `UPDATE_EXPECT=1 cargo test` writes the table.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/mod.rs");
        let mut out = String::new();
        let mut written = false;
        for line in source.lines() {
            if line.starts_with("//! |") {
                if !written {
                    for row in expected.lines() {
                        out.push_str(&format!("//! {row}\n"));
                    }
                    written = true;
                }
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        std::fs::write(&path, out).unwrap();
        return;
    }
    if doc != expected {
        // The first row that differs, not two 60-row tables side by side.
        let row = doc
            .lines()
            .zip(expected.lines().chain(std::iter::repeat("(missing)")))
            .find(|(have, want)| have != want)
            .map_or_else(
                || {
                    format!(
                        "missing row: {}",
                        expected.lines().nth(doc.lines().count()).unwrap_or("")
                    )
                },
                |(have, want)| format!("have: {have}\nwant: {want}"),
            );
        panic!(
            "config/mod.rs's table is not KEYS; `UPDATE_EXPECT=1 cargo test -p keel --bin keel \
             the_module_doc` writes it\n{row}"
        );
    }
    let help = keys_help();
    for key in KEYS {
        assert!(
            help.contains(key.env),
            "keel config --help lacks {}",
            key.env
        );
    }
}

#[test]
fn every_declared_key_is_set_from_its_file_key_variable_and_flag() {
    let cli = crate::cli::command();
    let mut names = std::collections::BTreeSet::new();
    for key in KEYS {
        assert!(names.insert(key.name), "{} declared twice", key.name);
        let (section, field) = key.name.split_once('.').unwrap();
        let (toml, expected) = sample_as_toml(key.name)
            .unwrap_or_else(|e| panic!("{}: sample {:?}: {e}", key.name, key.sample));

        // The file.
        let text = format!("[{section}]\n{field} = {toml}\n");
        let s = load(&text, &[], Flags::default())
            .unwrap_or_else(|e| panic!("{}: from the file: {e}", key.name));
        let (value, origin) = shown(&s.render(), section, field)
            .unwrap_or_else(|| panic!("keel config does not show {}", key.name));
        assert_eq!(value, expected, "{} from the file", key.name);
        assert!(
            origin.ends_with("keel.toml:2"),
            "{}: origin {origin}",
            key.name
        );

        // The variable.
        let s = load("", &[(key.env, key.sample)], Flags::default())
            .unwrap_or_else(|e| panic!("{}: from {}: {e}", key.name, key.env));
        let (value, origin) = shown(&s.render(), section, field).unwrap();
        assert_eq!(value, expected, "{} from {}", key.name, key.env);
        assert_eq!(origin, format!("environment variable {}", key.env));

        // Each flag, on each subcommand its declaration names: it is there, its help
        // names the variable, and the real command line sets the key.
        for flag in key.flags {
            // A global flag is on the top command, and clap gives it to every subcommand.
            let commands = if flag.commands == GLOBAL {
                &["config"]
            } else {
                flag.commands
            };
            for &sub_name in commands {
                // `quiz import` is the subcommand `import` of `quiz`.
                let mut sub = &cli;
                for part in sub_name.split(' ') {
                    sub = sub
                        .find_subcommand(part)
                        .unwrap_or_else(|| panic!("{}: no subcommand {sub_name}", key.name));
                }
                let owner = if flag.commands == GLOBAL { &cli } else { sub };
                let arg = owner
                    .get_arguments()
                    .find(|a| a.get_long() == Some(flag.id()))
                    .unwrap_or_else(|| {
                        panic!("{}: keel {sub_name} has no {}", key.name, flag.long)
                    });
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                assert!(
                    help.contains(&format!("[env: {}", key.env)),
                    "{}: {}'s help {help:?}",
                    key.name,
                    flag.long
                );
                let mut argv = vec!["keel".to_owned()];
                argv.extend(sub_name.split(' ').map(str::to_owned));
                let sets = match flag.kind {
                    FlagKind::Switch { sets, .. } => {
                        argv.push(flag.long.to_owned());
                        sets
                    }
                    FlagKind::Repeat { .. } => {
                        for item in key.sample.split(',') {
                            argv.extend([flag.long.to_owned(), item.to_owned()]);
                        }
                        key.sample
                    }
                    FlagKind::Value { .. } => {
                        argv.extend([flag.long.to_owned(), key.sample.to_owned()]);
                        key.sample
                    }
                };
                // `keel publish --token T CHANNEL MESSAGE`: the required positionals.
                let positionals = sub.get_positionals().filter(|a| a.is_required_set());
                argv.extend(positionals.map(|_| "site".to_owned()));
                let (_, flags) = crate::cli::try_parse_from(&argv)
                    .unwrap_or_else(|e| panic!("{}: {argv:?}: {e}", key.name));
                let s = load("", &[], flags)
                    .unwrap_or_else(|e| panic!("{}: from {argv:?}: {e}", key.name));
                let (value, origin) = shown(&s.render(), section, field).unwrap();
                assert_eq!(
                    origin,
                    format!("flag {}", flag.long),
                    "{}: {argv:?}",
                    key.name
                );
                // The flag sets what its variable's text would.
                let s = load("", &[(key.env, sets)], Flags::default()).unwrap();
                let (from_env, _) = shown(&s.render(), section, field).unwrap();
                assert_eq!(value, from_env, "{}: {argv:?}", key.name);
            }
        }
    }
}
