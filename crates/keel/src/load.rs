//! `keel bench` and `keel compare`: the command lines (hey's flags, hey's meaning) over
//! `keel-bench`, and their progress display. A progress bar appears only on a terminal,
//! so a pipe or a file gets exactly the report.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use keel_bench::compare::{parse_matrix, CompareEvent, CompareSink, CompareTarget, Ratio};
use keel_bench::{BenchOptions, CompareOptions, OutputFormat, Progress, ProgressSink};

use crate::config::HumanDuration;

/// `keel bench`: hey's flags.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The URL to load
    pub url: String,
    /// Number of requests to run (hey -n)
    #[arg(short = 'n', default_value_t = 200)]
    pub requests: u64,
    /// Number of workers running concurrently (hey -c)
    #[arg(short = 'c', default_value_t = 50)]
    pub concurrency: usize,
    /// Run for this long instead of -n requests, e.g. 10s (hey -z)
    #[arg(short = 'z', value_name = "DURATION")]
    pub duration: Option<HumanDuration>,
    /// Rate limit per worker, requests per second (hey -q)
    #[arg(short = 'q', value_name = "QPS")]
    pub qps_per_worker: Option<f64>,
    /// Total requests per second, open loop; latencies measured from the scheduled send time (wrk2's coordinated-omission correction)
    #[arg(long, value_name = "RPS")]
    pub rate: Option<f64>,
    /// HTTP method (hey -m)
    #[arg(short = 'm', default_value = "GET")]
    pub method: String,
    /// A header, "Name: value"; repeatable (hey -H)
    #[arg(short = 'H', value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Request body (hey -d)
    #[arg(short = 'd', value_name = "BODY")]
    pub body: Option<String>,
    /// Request body from a file (hey -D)
    #[arg(short = 'D', value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// Content-Type (hey -T)
    #[arg(short = 'T', default_value = "text/html")]
    pub content_type: String,
    /// Accept header (hey -A)
    #[arg(short = 'A')]
    pub accept: Option<String>,
    /// Timeout of each request in seconds (or a duration like 500ms); 0 for none (hey -t)
    #[arg(short = 't', default_value = "20", value_name = "SECONDS")]
    pub timeout: String,
    /// Output: text (hey's), csv (hey's, one row per request) or json (schema in crates/keel-bench/schema)
    #[arg(short = 'o', default_value = "text")]
    pub output: OutputFormat,
    /// Host header
    #[arg(long)]
    pub host: Option<String>,
    /// Open a new connection for every request
    #[arg(long)]
    pub disable_keepalive: bool,
    /// Threads for the load generator; 1 runs workers and aggregator on one thread
    #[arg(long, value_name = "N")]
    pub cpus: Option<usize>,
    #[command(flatten)]
    pub sse: SseArgs,
}

/// `keel bench --sse`: Server-Sent Events instead of requests.
#[derive(Debug, Args)]
pub struct SseArgs {
    /// Measure Server-Sent Events: open --clients streams on URL, publish --events messages, report time to first event, delivery latency, losses and reconnects
    #[arg(long)]
    pub sse: bool,
    /// Streams to open (with --sse)
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub clients: usize,
    /// Messages to publish (with --sse); 0 only holds the streams open for --settle
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub events: usize,
    /// Publish by POSTing {"channel","message"} here, e.g. http://127.0.0.1:8080/api/publish (with --sse)
    #[arg(long, value_name = "URL")]
    pub publish_url: Option<String>,
    /// Bearer token for --publish-url
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Channel for --publish-url
    #[arg(long, default_value = "demo_stream")]
    pub channel: String,
    /// Publish by running this command with the message appended, e.g. "redis-cli -p 6379 publish demo_stream" (no shell)
    #[arg(long, value_name = "COMMAND", conflicts_with = "publish_url")]
    pub publish_cmd: Option<String>,
    /// Time between two published messages
    #[arg(long, default_value = "100ms", value_name = "DURATION")]
    pub interval: HumanDuration,
    /// Streams opened per second (all at once when absent)
    #[arg(long, value_name = "PER_SEC")]
    pub connect_rate: Option<f64>,
    /// Deadline for one stream to connect and get its first frame
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub connect_timeout: HumanDuration,
    /// Deadline for the whole --sse run
    #[arg(long = "timeout", default_value = "120s", value_name = "DURATION")]
    pub run_timeout: HumanDuration,
    /// How long to wait for stragglers after the last message
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub settle: HumanDuration,
}

/// `keel compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// NAME=URL, or NAME=URL@CAP for a target that can serve at most CAP requests at once (e.g. a 4 x 10 sync server: @40); repeatable
    #[arg(long = "target", value_name = "NAME=URL[@CAP]", required = true)]
    pub targets: Vec<CompareTarget>,
    /// Cells as REQUESTSxCONCURRENCY
    #[arg(long, default_value = "150x30,300x50,1000x100")]
    pub matrix: String,
    /// The upstream's latency, for the physical limit min(c, cap) / L and the efficiency column
    #[arg(long, value_name = "DURATION")]
    pub upstream_latency: Option<HumanDuration>,
    /// Write report.md, results.json and the charts (SVG and PNG) here
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Divide every target's requests/s by this target's, per cell
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// An extra ratio line A/B per cell; repeatable
    #[arg(long = "ratio", value_name = "A/B")]
    pub ratios: Vec<Ratio>,
    /// Skip the warm-up run before each measured one
    #[arg(long)]
    pub no_warmup: bool,
    /// Pause between runs
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub settle: HumanDuration,
    /// Timeout of each request (0 for none)
    #[arg(short = 't', long, default_value = "20s", value_name = "DURATION")]
    pub timeout: HumanDuration,
    /// A note for report.md; repeatable
    #[arg(long = "note", value_name = "TEXT")]
    pub notes: Vec<String>,
    /// Print the table as Markdown instead of text
    #[arg(long)]
    pub markdown: bool,
    /// The command line to record in report.md (a wrapper script passes its own)
    #[arg(long, value_name = "TEXT")]
    pub command: Option<String>,
}

fn timeout(text: &str) -> anyhow::Result<Option<Duration>> {
    let duration = match text.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            text.parse::<HumanDuration>()
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("-t {text}"))?
                .0
        }
    };
    Ok((!duration.is_zero()).then_some(duration))
}

/// Runs `keel bench` and prints its report on stdout.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if args.sse.sse {
        return sse(args);
    }
    let opts = BenchOptions {
        url: args.url,
        requests: args.requests,
        concurrency: args.concurrency,
        duration: args.duration.map(|d| d.0),
        qps_per_worker: args.qps_per_worker,
        rate_per_sec: args.rate,
        method: args.method,
        headers: args.headers,
        body: args.body,
        body_file: args.body_file,
        content_type: args.content_type,
        accept: args.accept,
        timeout: timeout(&args.timeout)?,
        disable_keepalive: args.disable_keepalive,
        host: args.host,
        output: args.output,
        ..BenchOptions::default()
    };
    let runtime = runtime(args.cpus)?;
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| ProgressSink::new(Duration::from_millis(200), draw_bar));
    let format = opts.output;
    let report = runtime.block_on(keel_bench::run_until(opts, progress, async {
        // Ctrl-C, as in hey: stop starting requests and report what was done.
        let _ = tokio::signal::ctrl_c().await;
    }))?;
    print!("{}", report.render(format)?);
    // On standard error: the report itself stays hey's, byte for byte.
    if let Some(warning) = report.rate_limit_warning() {
        eprintln!("keel bench: warning: {warning}");
    }
    Ok(())
}

fn runtime(cpus: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    match cpus {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .context("could not start the async runtime")
}

/// `keel bench --sse`.
fn sse(args: BenchArgs) -> anyhow::Result<()> {
    let s = args.sse;
    let publish = match (s.publish_url, s.publish_cmd) {
        (Some(url), None) => keel_bench::Publisher::Url {
            url,
            token: s.token,
            channel: s.channel,
        },
        (None, Some(command)) => {
            keel_bench::Publisher::Command(command.split_whitespace().map(str::to_owned).collect())
        }
        _ => anyhow::bail!("keel bench --sse needs --publish-url URL or --publish-cmd COMMAND"),
    };
    let mut opts = keel_bench::SseOptions::new(args.url, publish);
    opts.clients = s.clients;
    opts.events = s.events;
    opts.interval = s.interval.0;
    opts.connect_rate_per_sec = s.connect_rate;
    opts.connect_timeout = s.connect_timeout.0;
    opts.timeout = s.run_timeout.0;
    opts.settle = s.settle.0;
    let json = matches!(args.output, OutputFormat::Json);
    let report = runtime(args.cpus)?.block_on(keel_bench::run_sse_until(opts, None, async {
        let _ = tokio::signal::ctrl_c().await;
    }))?;
    if json {
        println!("{}", report.to_json()?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

fn draw_bar(progress: &Progress) {
    const WIDTH: usize = 40;
    let fraction = progress.fraction().clamp(0.0, 1.0);
    let filled = (fraction * WIDTH as f64).round() as usize;
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\r[{}{}] {:>5.1}% {} requests, {} errors",
        "#".repeat(filled),
        " ".repeat(WIDTH - filled),
        fraction * 100.0,
        progress.requests,
        progress.errors
    );
    if progress.finished {
        let _ = write!(err, "\r{}\r", " ".repeat(WIDTH + 48));
    }
    let _ = err.flush();
}

/// Runs `keel compare` and prints the table on stdout.
pub fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let mut opts = CompareOptions {
        targets: args.targets,
        matrix: parse_matrix(&args.matrix).map_err(|e| anyhow::anyhow!("--matrix: {e}"))?,
        upstream_latency: args.upstream_latency.map(|d| d.0),
        out_dir: args.out,
        baseline: args.baseline,
        ratios: args.ratios,
        warmup: !args.no_warmup,
        settle: args.settle.0,
        notes: args.notes,
        command_line: Some(args.command.unwrap_or_else(|| {
            std::iter::once("keel".to_owned())
                .chain(std::env::args().skip(1).map(|a| shell_quote(&a)))
                .collect::<Vec<_>>()
                .join(" ")
        })),
        ..CompareOptions::default()
    };
    opts.bench.timeout = (!args.timeout.0.is_zero()).then_some(args.timeout.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let sink = CompareSink::new(Duration::from_millis(500), log_event);
    let report = runtime.block_on(keel_bench::run_compare(opts, Some(sink)))?;
    if args.markdown {
        print!("{}", report.to_markdown());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn log_event(event: &CompareEvent<'_>) {
    match event {
        CompareEvent::Started {
            step,
            steps,
            target,
            cell,
            warmup,
        } => {
            let what = if *warmup { "warm-up" } else { "measuring" };
            eprintln!("[{step}/{steps}] {cell} {}: {what}", target.name);
        }
        CompareEvent::Finished { step, steps, row } => {
            let p95 = row
                .p95_secs
                .map_or("n/a".to_owned(), |s| format!("{:.1} ms", s * 1000.0));
            let failed = match row.failures() {
                0 => String::new(),
                n => format!(", {n} failed"),
            };
            eprintln!(
                "[{step}/{steps}] {} {}: {:.1} req/s, p95 {p95}{failed}",
                row.test, row.target, row.requests_per_sec
            );
        }
        CompareEvent::Written(files) => {
            for path in &files.paths {
                eprintln!("wrote {}", path.display());
            }
            if files.png_font.is_none() {
                eprintln!("note: no font found, the PNG charts have no text (apt-get install fonts-dejavu-core)");
            }
        }
        CompareEvent::Progress(_) => {}
    }
}
