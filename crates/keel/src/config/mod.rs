//! Configuration: `keel.toml`, then `KEEL_*` environment variables, then flags.
//!
//! Precedence is flag > environment > file > default, decided here and nowhere else.
//! Every value remembers where it came from ([`Origin`]), so a bad value is refused with
//! the file and line (or the variable, or the flag) and the key named, and `keel config`
//! can show the origin of each effective setting. The library crates never read files or
//! the environment: they receive the validated types built at the end of this module.
//!
//! Each key is declared once, in `keys.rs`; the rest is one file per concern:
//! `values.rs` (the value types), `file.rs` (`keel.toml`'s tables and its parse, with
//! file:line origins), `layering.rs` (flag > env > file > default), `settings.rs`
//! (`Settings::load`, validation, the libraries' configurations, reload) and `render.rs`
//! (`keel config`). The table below is [`KEYS`]; a test keeps it equal.
//!
//! | key (file) | environment | flag | default | range | help |
//! |---|---|---|---|---|---|
//! | `serve.bind` | `KEEL_BIND` | `--bind` | `127.0.0.1:8000` |  | Address to listen on |
//! | `serve.workers` | `KEEL_WORKERS` | `--workers` | `number of CPUs` | `1` to `1024` | Async worker threads |
//! | `serve.threads` | `KEEL_THREADS` | `--threads` | `10` | `1` to `10000` | Blocking threads per worker for synchronous handlers; workers × threads calls run at once |
//! | `serve.timeout` | `KEEL_TIMEOUT` | `--timeout` | `30s` | `1ms` to `24h` | Whole-request timeout; a request still running after it gets 503 |
//! | `serve.upstream_url` | `KEEL_UPSTREAM_URL` | `--upstream-url` | `http://127.0.0.1:9000/todos/1` |  | URL that /sync/test and /async/test GET |
//! | `serve.upstream_timeout` | `KEEL_UPSTREAM_TIMEOUT` | `--upstream-timeout` | `10s` | `1ms` to `1h` | Timeout of one upstream call; slower answers give 504 |
//! | `serve.backlog` | `KEEL_BACKLOG` | `--backlog` | `2048` | `1` to `65535` | Connections the kernel queues for accept before refusing more (gunicorn's --backlog) |
//! | `serve.shutdown_timeout` | `KEEL_SHUTDOWN_TIMEOUT` | `--shutdown-timeout` | `30s` | `0s` to `1h` | How long SIGTERM waits for in-flight requests |
//! | `serve.forwarded_allow_ips` | `KEEL_FORWARDED_ALLOW_IPS` | `--forwarded-allow-ips` | `127.0.0.1,::1` |  | Peers whose X-Forwarded-For, X-Real-IP and X-Forwarded-Proto are believed: networks, or `*` (then any client can claim any address) |
//! | `serve.keep_alive` | `KEEL_KEEP_ALIVE` | `--keep-alive` | `5s` | `0s` to `1h` | How long an idle keep-alive connection waits for its next request |
//! | `serve.header_timeout` | `KEEL_HEADER_TIMEOUT` | `--header-timeout` | `10s` | `1ms` to `1h` | How long a client may take to send a whole request head |
//! | `up.listen` | `KEEL_LISTEN` | `--listen` | `127.0.0.1:8080` |  | Address `keel up` listens on |
//! | `up.rate_limit` | `KEEL_UP_RATE_LIMIT` | `--no-rate-limit` | `true` |  | Whether `keel up`'s edge applies its rate limit |
//! | `up.publish_file` | `KEEL_UP_PUBLISH_FILE` | none | `keel-data/publish.json` |  | Where `keel up` writes its address and a publish token (owner-only) so that `keel publish` needs no flags |
//! | `edge.listen` | `KEEL_EDGE_LISTEN` | `--listen` | `0.0.0.0:80` |  | Address the edge listens on |
//! | `edge.upstream` | `KEEL_EDGE_UPSTREAM` | `--upstream` | `none` |  | App servers to proxy to, HOST:PORT, balanced by edge.balance |
//! | `edge.rate` | `KEEL_RATE` | `--rate` | `10r/s` |  | Requests per second or minute per client address, or `off` |
//! | `edge.burst` | `KEEL_BURST` | `--burst` | `20` | `0` to `1000000` | Requests beyond the rate allowed in a burst |
//! | `edge.delay` | `KEEL_DELAY` | `--delay`, `--nodelay` | `nodelay` |  | Excess requests passed at once before the rest are delayed, or `nodelay` |
//! | `edge.limit_status` | `KEEL_LIMIT_STATUS` | `--limit-status` | `503` |  | Status of a request refused by limit_req |
//! | `edge.zone_size` | `KEEL_ZONE_SIZE` | none | `10m` |  | Size of edge.rate's zone |
//! | `edge.dry_run` | `KEEL_DRY_RUN` | none | `false` |  | Log what limit_req would refuse, refuse nothing |
//! | `edge.limit_conn` | `KEEL_LIMIT_CONN` | `--limit-conn` | `off` |  | Requests in progress at once per client address, or `off` |
//! | `edge.limit_conn_status` | `KEEL_LIMIT_CONN_STATUS` | none | `503` |  | Status of a request refused by limit_conn |
//! | `edge.limit_conn_dry_run` | `KEEL_LIMIT_CONN_DRY_RUN` | none | `false` |  | Log what limit_conn would refuse, refuse nothing |
//! | `edge.trusted_proxies` | `KEEL_TRUSTED_PROXIES` | `--trusted-proxy` | `none` |  | Networks whose X-Forwarded-For / X-Real-IP are believed |
//! | `edge.response_timeout` | `KEEL_RESPONSE_TIMEOUT` | none | `60s` | `1ms` to `24h` | How long the edge waits for an upstream's response head |
//! | `edge.body_idle_timeout` | `KEEL_BODY_IDLE_TIMEOUT` | none | `0s (none)` | `0s` to `24h` | How long a response body may stay idle |
//! | `edge.access_log` | `KEEL_ACCESS_LOG` | `--no-access-log` | `true` |  | Whether the edge writes an access log |
//! | `edge.client_max_body_size` | `KEEL_CLIENT_MAX_BODY_SIZE` | none | `1m` | `0` to `1g` | Largest request body the edge accepts |
//! | `edge.large_client_header_buffers` | `KEEL_LARGE_CLIENT_HEADER_BUFFERS` | none | `4 8k` |  | Number and size of the buffers for a request head |
//! | `edge.max_connections` | `KEEL_MAX_CONNECTIONS` | none | `10000` | `1` to `1000000` | Connections the edge holds at once |
//! | `edge.header_timeout` | `KEEL_HEADER_TIMEOUT` | none | `10s` | `1ms` to `1h` | How long a client may take to send a whole request head |
//! | `edge.tls_listen` | `KEEL_TLS_LISTEN` | `--tls-listen` | `0.0.0.0:443` |  | Address for HTTPS |
//! | `edge.tls_cert` | `KEEL_TLS_CERT` | `--tls-cert` | `none` |  | PEM certificate chain for HTTPS (the file is read again on SIGHUP) |
//! | `edge.tls_key` | `KEEL_TLS_KEY` | `--tls-key` | `none` |  | PEM private key for HTTPS (the file is read again on SIGHUP) |
//! | `edge.redirect_http` | `KEEL_REDIRECT_HTTP` | `--redirect-http` | `false` |  | With TLS, answer plain HTTP with a redirect to HTTPS |
//! | `edge.workers` | `KEEL_EDGE_WORKERS` | `--workers` | `number of CPUs` | `1` to `1024` | Edge worker threads, each with its own event loop |
//! | `edge.balance` | `KEEL_BALANCE` | `--balance` | `round-robin` |  | How to pick an upstream: round-robin or least-conn |
//! | `edge.max_fails` | `KEEL_MAX_FAILS` | none | `1` | `1` to `1000` | Failures within fail_timeout that eject an upstream |
//! | `edge.fail_timeout` | `KEEL_FAIL_TIMEOUT` | none | `10s` | `100ms` to `24h` | Window of max_fails, and how long an ejected upstream stays out |
//! | `edge.health_check` | `KEEL_HEALTH_CHECK` | `--health-check` | `/healthz` |  | Path checked on an ejected upstream to bring it back, or `off` |
//! | `edge.health_interval` | `KEEL_HEALTH_INTERVAL` | none | `2s` | `100ms` to `1h` | How often the health check runs |
//! | `edge.log_dir` | `KEEL_LOG_DIR` | `--log-dir` | `none (stdout)` |  | Directory of access.log, instead of stdout |
//! | `static.root` | `KEEL_STATIC_ROOT` | `--static-root` | `keel-data/static` |  | Directory of the collected static files, served by the edge at /static/ (its index is read again on SIGHUP) |
//! | `static.sources` | `KEEL_STATIC_SOURCES` | `--source` | `none` |  | Directories of static files to collect |
//! | `stream.redis_url` | `KEEL_REDIS_URL` | `--redis-url` | `none (in-memory broker)` |  | Redis for live events, shared by every instance |
//! | `stream.channels` | `KEEL_STREAM_CHANNELS` | none | `demo_stream, site` |  | The channels clients may follow |
//! | `stream.default_channel` | `KEEL_STREAM_DEFAULT_CHANNEL` | none | `demo_stream` |  | The channel of /stream/ without a name |
//! | `stream.heartbeat` | `KEEL_STREAM_HEARTBEAT` | none | `15s` | `1s` to `300s` | Interval of the comment line that keeps an idle stream open |
//! | `stream.retention` | `KEEL_STREAM_RETENTION` | none | `1000` | `0` to `100000` | Messages kept per channel for Last-Event-ID |
//! | `stream.publish_token` | `KEEL_PUBLISH_TOKEN` | `--token` | `none` |  | Bearer token of POST /api/publish, which `keel publish --api` sends (masked in keel config) |
//! | `stream.max_clients` | `KEEL_STREAM_MAX_CLIENTS` | none | `20000` | `1` to `1000000` | Streams open at once |
//! | `stream.max_clients_per_ip` | `KEEL_STREAM_MAX_CLIENTS_PER_IP` | none | `0 (off)` | `0` to `1000000` | Streams open at once per client address, 0 for no cap |
//! | `site.database_url` | `KEEL_DATABASE_URL` | `--database-url` | `sqlite://keel-data/keel.db` |  | The site's database: sqlite://PATH or postgres://USER@HOST/DB |
//! | `site.templates` | `KEEL_TEMPLATES` | `--templates` | `none (built-in templates)` |  | A directory of templates that replace the built-in ones |
//! | `site.sample_data` | `KEEL_SAMPLE_DATA` | `--no-sample-data` | `true` |  | Add the sample posts to a new, empty database |
//! | `site.page_cache` | `KEEL_PAGE_CACHE` | none | `1s (0s turns it off)` | `0s` to `1h` | How long a rendered page is served from the cache |
//! | `site.name` | `KEEL_SITE_NAME` | none | `keel` |  | The site's name, in the navigation bar and every title |
//! | `site.tagline` | `KEEL_SITE_TAGLINE` | none | `A tech-learning blog served by one Rust binary` |  | One line under the name: the footer and the pages' meta description |
//! | `site.database_timeout` | `KEEL_DATABASE_TIMEOUT` | none | `2s` | `1ms` to `5m` | How long a request waits for a database connection before it gets 503 |
//! | `mock_upstream.listen` | `KEEL_MOCK_LISTEN` | `--listen` | `127.0.0.1:9000` |  | Address of the mock upstream |
//! | `mock_upstream.latency` | `KEEL_MOCK_LATENCY` | `--latency` | `100ms` | `0s` to `1h` | Delay before each of the mock's answers |
//! | `mock_upstream.token_interval` | `KEEL_MOCK_TOKEN_INTERVAL` | `--token-interval` | `20ms (50 tokens/s)` | `0s` to `10s` | Delay between two tokens the mock model streams (POST /v1/chat/completions) |
//! | `interviewer.api_base` | `KEEL_INTERVIEWER_API_BASE` | `--interviewer-api-base` | `none (rubric engine only)` |  | An OpenAI-compatible API (OpenAI, Ollama, llama.cpp, vLLM, LM Studio), ending in /v1 |
//! | `interviewer.model` | `KEEL_INTERVIEWER_MODEL` | none | `llama3.2` |  | The model name sent to the API |
//! | `interviewer.api_key` | `KEEL_INTERVIEWER_API_KEY` | none | `none` |  | Bearer key of the API (masked in keel config, never logged) |
//! | `interviewer.timeout` | `KEEL_INTERVIEWER_TIMEOUT` | none | `20s` | `1s` to `300s` | Longest a model call may take; past it the rubric engine answers alone |
//! | `interviewer.max_tokens` | `KEEL_INTERVIEWER_MAX_TOKENS` | none | `300` | `16` to `8192` | Most tokens one model reply may have |
//! | `interviewer.daily_turns` | `KEEL_INTERVIEWER_DAILY_TURNS` | none | `200` | `0` to `100000` | Answers per reader (or address) per day that may use the model; beyond, the rubric alone |
//! | `log.format` | `KEEL_LOG_FORMAT` | `--log-format` | `text` |  | Log format: text (human, coloured on a terminal) or json |
//! | `log.level` | `KEEL_LOG_LEVEL` | `--log-level` | `info` |  | Log filter, e.g. `info` or `keel_app=debug,info` |
//!
//! The file is `--config PATH`, else `$KEEL_CONFIG`, else `./keel.toml` when it exists.

use std::path::PathBuf;

mod file;
mod keys;
mod layering;
mod render;
mod settings;
mod values;

#[cfg(test)]
mod tests;

use file::*;
pub use keys::*;
pub use layering::*;
use render::rendered_values;
use render::{line, section};
pub use settings::*;
pub use values::*;

/// A configuration problem, worded for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {key}: {message}")]
    Invalid {
        location: String,
        key: String,
        message: String,
    },
}

pub(crate) fn invalid(key: &str, origin: &Origin, message: String) -> ConfigError {
    ConfigError::Invalid {
        location: origin.to_string(),
        key: key.to_owned(),
        message,
    }
}
