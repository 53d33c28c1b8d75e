//! The command line: one `enum Command` whose variants are keel's subcommands.
//!
//! The flags of configuration keys are not written here: each is declared with its key in
//! `config/keys.rs`, and [`command`] adds it to the subcommands it names, with help made
//! from the declaration. Every such flag is optional on purpose: an absent flag lets the
//! environment, then the config file, then the default decide (see `config/`, the one
//! place that layers them). What is written here is what is not configuration: the
//! arguments of one-shot commands (`publish`'s message, `createsuperuser`'s answers).

use std::path::PathBuf;

use clap::{ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{ChannelName, Flag, FlagKind, Flags, KeyDoc, GLOBAL, KEYS};

/// keel: one binary for the web stack of nginx + gunicorn + Django + Redis.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about, propagate_version = true)]
pub struct Cli {
    /// Config file [env: KEEL_CONFIG] [default: ./keel.toml when present]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// keel's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process on 127.0.0.1:8080, with a built-in mock upstream.
    Up,
    /// Run the application server (gunicorn's role).
    Serve,
    /// Run the edge (nginx's role): limit_req, forwarded headers, reverse proxy to --upstream.
    Edge,
    /// Serve a fixed todo JSON after a fixed latency, as the upstream of /sync/test and /async/test.
    MockUpstream,
    /// Load-test a URL with hey's flags and hey's report (plus --rate, -o json).
    Bench(Box<crate::load::BenchArgs>),
    /// Run a matrix of load tests against several targets; print the classic table, write report, JSON and charts.
    Compare(Box<crate::load::CompareArgs>),
    /// Publish a message to a live-event channel, through Redis or a keel server's /api/publish.
    Publish(PublishArgs),
    /// Gather the app's assets and every --source into the static root, hashed and precompressed.
    Collectstatic,
    /// Apply the site's database migrations that have not run yet (they also run at start).
    Migrate,
    /// Create a staff superuser for /admin/: asks on a terminal, or takes --username, --email and --password-stdin.
    Createsuperuser(SuperuserArgs),
    /// Practise an interview in the terminal: questions on standard output, answers on standard input, then the report.
    Interview(crate::interview::InterviewArgs),
    /// Import, export and list quizzes on the site's database (GIFT and Aiken files).
    #[command(subcommand)]
    Quiz(QuizCommand),
    /// Print the effective configuration (file, environment, defaults) with secrets masked.
    #[command(after_long_help = crate::config::keys_help())]
    Config,
}

/// `keel createsuperuser`.
#[derive(Debug, Args)]
pub struct SuperuserArgs {
    /// Username (asked for when absent and on a terminal)
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// Email address (asked for when absent and on a terminal)
    #[arg(long, value_name = "ADDRESS")]
    pub email: Option<String>,
    /// Read the password from the first line of standard input, for scripts (never pass it as an argument)
    #[arg(long)]
    pub password_stdin: bool,
    /// Never prompt: fail when a value is missing (Django's --noinput)
    #[arg(long, alias = "noinput")]
    pub no_input: bool,
}

/// `keel quiz …`.
#[derive(Debug, Subcommand)]
pub enum QuizCommand {
    /// Add the questions of FILE to a quiz (created, published unless --draft, when new); a file with errors stores nothing.
    Import(QuizImportArgs),
    /// Write a quiz's questions as GIFT to standard output.
    Export(QuizExportArgs),
    /// Print every quiz: slug, title, questions, finished attempts.
    List,
}

/// `keel quiz import`.
#[derive(Debug, Args)]
pub struct QuizImportArgs {
    /// The file's format
    #[arg(long, value_name = "FORMAT", default_value = "gift", value_parser = ["gift", "aiken"])]
    pub format: String,
    /// The quiz to create or extend [default: the file's name, e.g. limits.gift → limits]
    #[arg(long = "quiz", value_name = "SLUG")]
    pub quiz: Option<String>,
    /// Create a new quiz unpublished
    #[arg(long)]
    pub draft: bool,
    /// Check the file and report, storing nothing
    #[arg(long)]
    pub dry_run: bool,
    /// A GIFT or Aiken file
    pub file: PathBuf,
}

/// `keel quiz export`.
#[derive(Debug, Args)]
pub struct QuizExportArgs {
    /// The output format (GIFT only)
    #[arg(long, value_name = "FORMAT", default_value = "gift", value_parser = ["gift"])]
    pub format: String,
    /// The quiz's slug
    pub slug: String,
}

/// `keel publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Publish through this keel server's POST /api/publish (with --token) instead of Redis, e.g. http://127.0.0.1:8080
    #[arg(long, value_name = "URL", conflicts_with = "redis-url")]
    pub api: Option<String>,
    /// Channel, e.g. demo_stream
    pub channel: ChannelName,
    /// The message; several lines become several `data:` lines
    pub message: String,
}

/// keel's command line: the derived commands above, with every configuration key's flags
/// added to the subcommands its declaration names.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    // `--help` lists the flags in declaration order, the global ones last.
    let mut order = 0;
    for key in KEYS {
        for flag in key.flags {
            order += 1;
            for &name in flag.commands {
                let arg = flag_arg(key, flag).display_order(if flag.commands == GLOBAL {
                    1000 + order
                } else {
                    order
                });
                cmd = if flag.commands == GLOBAL {
                    cmd.arg(arg.global(true))
                } else {
                    // Two flags of one key (`--delay N`, `--nodelay`) exclude each other.
                    let siblings: Vec<&str> = key
                        .flags
                        .iter()
                        .filter(|other| other.long != flag.long && other.commands.contains(&name))
                        .map(Flag::id)
                        .collect();
                    let arg = arg.conflicts_with_all(siblings);
                    // `quiz import` is the subcommand `import` of `quiz`.
                    match name.split_once(' ') {
                        Some((outer, inner)) => cmd.mut_subcommand(outer, |sub| {
                            sub.mut_subcommand(inner, |sub| sub.arg(arg))
                        }),
                        None => cmd.mut_subcommand(name, |sub| sub.arg(arg)),
                    }
                };
            }
        }
    }
    cmd
}

/// The clap argument of one declared flag.
fn flag_arg(key: &'static KeyDoc, flag: &Flag) -> clap::Arg {
    let mut arg = clap::Arg::new(flag.id())
        .long(flag.id())
        .help(key.flag_help(flag));
    if let Some(short) = flag.short {
        arg = arg.short(short);
    }
    let check = key.check;
    let parser = move |text: &str| check(text).map(|()| text.to_owned());
    match flag.kind {
        FlagKind::Value { value_name } => arg
            .value_name(value_name)
            .action(ArgAction::Set)
            .value_parser(parser),
        FlagKind::Repeat { value_name } => arg
            .value_name(value_name)
            .action(ArgAction::Append)
            .value_parser(parser),
        FlagKind::Switch { .. } => arg.action(ArgAction::SetTrue),
    }
}

/// Parses the process's arguments (exiting with clap's message on a bad one).
pub fn parse() -> (Cli, Flags) {
    let matches = command().get_matches();
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => {
            let flags = flags(&cli, &matches);
            (cli, flags)
        }
        Err(e) => e.exit(),
    }
}

/// Parses `argv` as [`parse`] does, returning clap's error instead of exiting.
#[cfg(test)]
pub fn try_parse_from<I: IntoIterator<Item = T>, T: Into<std::ffi::OsString> + Clone>(
    argv: I,
) -> Result<(Cli, Flags), clap::Error> {
    let matches = command().try_get_matches_from(argv)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let flags = flags(&cli, &matches);
    Ok((cli, flags))
}

/// The declared flags given on the command line, as text per key.
fn flags(cli: &Cli, matches: &ArgMatches) -> Flags {
    let mut flags = Flags::default();
    flags.config = cli.config.clone();
    let Some((name, sub)) = matches.subcommand() else {
        return flags;
    };
    // The innermost subcommand, named by its path (`quiz import`).
    let (name, sub) = match sub.subcommand() {
        Some((inner, matches)) => (format!("{name} {inner}"), matches),
        None => (name.to_owned(), sub),
    };
    let name = name.as_str();
    for key in KEYS {
        for flag in key.flags {
            // clap hands a global flag's value to the subcommand's matches wherever it
            // was written (`keel --log-level debug migrate` or `keel migrate --log-level
            // debug`).
            if flag.commands == GLOBAL || flag.commands.contains(&name) {
                if let Some(values) = given(sub, flag) {
                    flags.set(key.name, flag.long, values);
                }
            }
        }
    }
    flags
}

/// The values of `flag` when it was on the command line.
fn given(matches: &ArgMatches, flag: &Flag) -> Option<Vec<String>> {
    if matches.value_source(flag.id()) != Some(clap::parser::ValueSource::CommandLine) {
        return None;
    }
    match flag.kind {
        FlagKind::Switch { sets, .. } => Some(vec![sets.to_owned()]),
        FlagKind::Value { .. } | FlagKind::Repeat { .. } => matches
            .try_get_many::<String>(flag.id())
            .ok()
            .flatten()
            .map(|values| values.cloned().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn gunicorn_style_flags_parse() {
        let (_, flags) = try_parse_from([
            "keel",
            "serve",
            "--workers",
            "4",
            "--threads",
            "10",
            "-b",
            "127.0.0.1:0",
            "--timeout",
            "30s",
            "--upstream-url",
            "http://127.0.0.1:9/todos/1",
            "--upstream-timeout",
            "250ms",
        ])
        .unwrap();
        let text = |key| {
            flags
                .given(key)
                .map(|(flag, values)| (flag, values.to_vec()))
        };
        assert_eq!(
            text("serve.workers"),
            Some(("--workers", vec!["4".to_owned()]))
        );
        assert_eq!(
            text("serve.bind"),
            Some(("--bind", vec!["127.0.0.1:0".to_owned()]))
        );
        assert_eq!(
            text("serve.upstream_timeout"),
            Some(("--upstream-timeout", vec!["250ms".to_owned()]))
        );
        assert_eq!(text("serve.keep_alive"), None, "absent flags are not given");
    }

    #[test]
    fn bad_flag_values_are_refused_by_name() {
        let err = try_parse_from(["keel", "serve", "--bind", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--bind"), "{err}");
        let err = try_parse_from(["keel", "serve", "--workers", "0"]).unwrap_err();
        assert!(err.to_string().contains("--workers"), "{err}");
        let err =
            try_parse_from(["keel", "edge", "--upstream", "a:1", "--upstream", "b"]).unwrap_err();
        assert!(err.to_string().contains("--upstream"), "{err}");
    }

    #[test]
    fn flags_of_one_key_exclude_each_other_and_global_flags_reach_every_command() {
        let err = try_parse_from(["keel", "edge", "--delay", "3", "--nodelay"]).unwrap_err();
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::ArgumentConflict,
            "{err}"
        );
        let (_, flags) = try_parse_from(["keel", "edge", "--nodelay"]).unwrap();
        assert_eq!(flags.given("edge.delay").map(|g| g.0), Some("--nodelay"));
        for argv in [
            ["keel", "--log-level", "debug", "migrate"],
            ["keel", "migrate", "--log-level", "debug"],
        ] {
            let (_, flags) = try_parse_from(argv).unwrap();
            assert_eq!(
                flags.given("log.level").map(|(_, v)| v.to_vec()),
                Some(vec!["debug".to_owned()]),
                "{argv:?}"
            );
        }
    }

    #[test]
    fn a_repeated_flag_keeps_each_item_whole() {
        let (_, flags) =
            try_parse_from(["keel", "collectstatic", "--source", "a,b", "--source", "c"]).unwrap();
        assert_eq!(
            flags.given("static.sources").map(|(_, v)| v.to_vec()),
            Some(vec!["a,b".to_owned(), "c".to_owned()])
        );
    }
}
