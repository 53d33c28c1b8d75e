//! The one error type of this crate: configuration that nginx would refuse.
//!
//! Every variant carries the offending text so that the config layer can print it next to
//! the file, line and key it came from. The wording follows nginx's own `nginx -t` messages
//! (`invalid rate "…"`, `invalid zone size "…"`, `invalid burst value "…"`, `invalid
//! parameter "…"`, `… is duplicate`), with a hint of what would be accepted. Deciding on a
//! request never fails: a full zone is a [`crate::Decision`], not an error.

/// A `limit_req_zone` / `limit_req` value that nginx would refuse at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `rate` is not a positive integer followed by `r/s` or `r/m` (or a bare integer,
    /// which nginx reads as r/s), or it is too large to count in thousandths.
    #[error(
        "invalid rate \"{0}\": expected a positive integer followed by r/s or r/m, e.g. 10r/s"
    )]
    InvalidRate(String),

    /// The zone size is not a byte count optionally followed by `k`/`K` or `m`/`M`.
    #[error("invalid zone size \"{0}\": expected bytes, or a number followed by k or m, e.g. 10m")]
    InvalidZoneSize(String),

    /// The zone size parses but is below nginx's minimum of 8 memory pages.
    #[error("zone size \"{text}\" is too small: at least {min_bytes} bytes (8 pages) are needed")]
    ZoneTooSmall {
        /// The size as written.
        text: String,
        /// The smallest size accepted, in bytes.
        min_bytes: u64,
    },

    /// `burst=` is not a positive integer (nginx refuses `burst=0`: leave it out instead).
    #[error("invalid burst value \"{0}\": expected a positive integer, e.g. burst=20")]
    InvalidBurst(String),

    /// `delay=` is not a positive integer (nginx refuses `delay=0`: leave it out instead).
    #[error("invalid delay value \"{0}\": expected a positive integer, e.g. delay=8")]
    InvalidDelay(String),

    /// A `limit_req` argument that is none of `burst=N`, `delay=N`, `nodelay`.
    #[error("invalid parameter \"{0}\": expected burst=N, delay=N or nodelay")]
    InvalidParameter(String),

    /// The same zone is listed twice in one [`crate::Limiter`] (nginx: "is duplicate").
    #[error("limit_req zone \"{0}\" is duplicate: list each zone once per limiter")]
    DuplicateZone(String),

    /// A zone asked to hold no state at all: every new address would be refused.
    #[error("limit_req zone \"{0}\" must be able to hold at least one state")]
    ZeroCapacity(String),
}
