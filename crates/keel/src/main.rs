//! The `keel` binary: parses the command line, layers configuration, installs logging,
//! builds the runtime and calls the start-up API of the crate that owns the job.
//!
//! Nothing here serves a request. Library crates return typed errors; this is the one
//! place that turns them into `anyhow` reports, prints them with their causes (`{:#}`)
//! and exits non-zero.

mod cli;
mod config;
mod interview;
mod load;
mod run;
mod superuser;

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::cli::Cli;
use crate::config::{Flags, LogFormat, ProcessEnv, Settings};

// glibc's malloc showed up as lock contention between worker threads under load
// (perf: __lll_lock_wait_private under malloc/free); mimalloc keeps per-thread heaps.
// Built with `no_thp`: transparent huge pages doubled the resident memory of each idle
// SSE connection (about 31 KiB against 18 KiB).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let (cli, flags) = cli::parse();
    match try_main(cli, flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keel: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main(cli: Cli, flags: Flags) -> anyhow::Result<()> {
    // The load tester takes its flags as hey does and needs no configuration file.
    match cli.command {
        cli::Command::Bench(args) => return load::bench(*args),
        cli::Command::Compare(args) => return load::compare(*args),
        // The terminal interviewer reads nothing but its flags and the shipped tracks.
        cli::Command::Interview(args) => return interview::run(args),
        _ => {}
    }
    let settings = Settings::load(flags, &ProcessEnv)?;
    if matches!(cli.command, cli::Command::Config) {
        print!("{}", settings.render());
        return Ok(());
    }
    init_logging(&settings);
    run::command(cli.command, &settings)
}

fn init_logging(settings: &Settings) {
    // The level string was checked when the configuration was loaded.
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log.level.value.0)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.log.format.value {
        LogFormat::Json => builder.json().with_current_span(false).init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .init(),
    }
}
