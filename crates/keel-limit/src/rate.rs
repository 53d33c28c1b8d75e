//! Configuration values of `limit_req_zone` and `limit_req`, parsed the way nginx parses them.
//!
//! Owns [`Rate`] (the `rate=` of `limit_req_zone`), [`ZoneSize`] (the `:size` of
//! `zone=name:size`), [`LimitParams`] and [`DelayPolicy`] (the `burst=`, `delay=` and
//! `nodelay` of `limit_req`). Maps to `ngx_http_limit_req_zone()` and `ngx_http_limit_req()`
//! in `ngx_http_limit_req_module.c`, and to `ngx_parse_size()` in `ngx_parse.c`.
//!
//! Units are nginx's: a rate is kept in thousandths of a request per second and one request
//! is [`ONE_REQUEST`] = 1000, so that `30r/m` becomes `30 * 1000 / 60 = 500` with the same
//! integer truncation nginx applies (`7r/m` is 116, not 116.67). Keeping nginx's integer
//! units, rather than floats, is what makes decisions match nginx's to the request.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// One request, in the thousandths that `excess`, `burst` and `delay` are counted in.
pub const ONE_REQUEST: u64 = 1000;

/// Bytes of zone memory one state takes in nginx on a 64-bit build.
///
/// An `ngx_rbtree_node_t` up to its `color` field (32 bytes), the
/// `ngx_http_limit_req_node_t` header up to `data` (48 bytes) and the key
/// (`$binary_remote_addr`: 4 bytes for IPv4, 16 for IPv6) make 84 or 96 bytes, which the
/// slab allocator rounds up to its 128-byte size class.
pub const BYTES_PER_STATE: u64 = 128;

/// nginx refuses a zone smaller than 8 pages (`8 * ngx_pagesize`, 4 KiB pages assumed).
pub const MIN_ZONE_BYTES: u64 = 8 * 4096;

/// nginx's `ngx_atoi`: ASCII digits only (no sign, no spaces, not empty), overflow refused.
fn atoi(digits: &str) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.bytes().try_fold(0u64, |acc, b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// A `limit_req_zone` rate, in thousandths of a request per second.
///
/// ```
/// use keel_limit::Rate;
/// assert_eq!("10r/s".parse::<Rate>().unwrap().millis_per_sec(), 10_000);
/// assert_eq!("30r/m".parse::<Rate>().unwrap().millis_per_sec(), 500);
/// assert_eq!("7r/m".parse::<Rate>().unwrap().millis_per_sec(), 116); // truncated like nginx
/// assert!("0r/s".parse::<Rate>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    millis_per_sec: u64,
}

impl Rate {
    /// `n` requests per second (`nr/s`); `n` must be positive.
    pub fn per_second(n: u64) -> Result<Self, Error> {
        Self::scaled(n, 1).ok_or_else(|| Error::InvalidRate(format!("{n}r/s")))
    }

    /// `n` requests per minute (`nr/m`), truncated to thousandths of r/s as nginx does.
    pub fn per_minute(n: u64) -> Result<Self, Error> {
        Self::scaled(n, 60).ok_or_else(|| Error::InvalidRate(format!("{n}r/m")))
    }

    /// A rate given directly in thousandths of a request per second; must be positive.
    pub fn from_millis_per_sec(millis_per_sec: u64) -> Result<Self, Error> {
        if millis_per_sec == 0 {
            return Err(Error::InvalidRate("0.000r/s".to_owned()));
        }
        Ok(Self { millis_per_sec })
    }

    /// The rate in thousandths of a request per second (nginx's `ctx->rate`).
    pub fn millis_per_sec(self) -> u64 {
        self.millis_per_sec
    }

    // `rate * 1000 / scale`, as in ngx_http_limit_req_zone(). nginx accepts any positive
    // ngx_int_t and lets the multiplication overflow; we refuse what would not fit instead.
    fn scaled(n: u64, scale: u64) -> Option<Self> {
        if n == 0 {
            return None;
        }
        let millis_per_sec = n.checked_mul(ONE_REQUEST)? / scale;
        Some(Self { millis_per_sec })
    }
}

impl FromStr for Rate {
    type Err = Error;

    /// Parses the value of `rate=` the way nginx does: a trailing `r/s` or `r/m` (case
    /// sensitive) picks the scale, and a bare integer with neither suffix is requests per
    /// second, because nginx only strips a suffix it recognises and then reads the rest.
    fn from_str(text: &str) -> Result<Self, Error> {
        let (digits, scale) = if let Some(d) = text.strip_suffix("r/s") {
            (d, 1)
        } else if let Some(d) = text.strip_suffix("r/m") {
            (d, 60)
        } else {
            (text, 1)
        };
        atoi(digits)
            .and_then(|n| Self::scaled(n, scale))
            .ok_or_else(|| Error::InvalidRate(text.to_owned()))
    }
}

impl fmt::Display for Rate {
    /// Whole rates print as nginx config (`10r/s`); truncated per-minute rates print the
    /// thousandths nginx really uses (`0.116r/s` for `7r/m`) so nothing looks rounder than it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.millis_per_sec / 1000, self.millis_per_sec % 1000);
        if frac == 0 {
            write!(f, "{whole}r/s")
        } else {
            write!(f, "{whole}.{frac:03}r/s")
        }
    }
}

/// The shared-memory size of a `limit_req_zone` (`zone=name:10m`), and the number of
/// states that fits in it.
///
/// nginx stores states in a slab pool carved from the zone; this crate stores them on the
/// heap and only uses the size to bound how many there may be:
/// [`states`](Self::states) = bytes / [`BYTES_PER_STATE`]. That is an upper bound on what
/// nginx fits: the slab pool's own header and per-page descriptors take roughly 1 % of the
/// zone, so a real `10m` nginx zone holds a little under the 81,920 states counted here.
///
/// ```
/// use keel_limit::ZoneSize;
/// assert_eq!("10m".parse::<ZoneSize>().unwrap().states(), 81_920);
/// assert_eq!("64k".parse::<ZoneSize>().unwrap().states(), 512);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ZoneSize {
    bytes: u64,
}

impl ZoneSize {
    /// A size in bytes; at least [`MIN_ZONE_BYTES`], as nginx requires.
    pub fn from_bytes(bytes: u64) -> Result<Self, Error> {
        if bytes < MIN_ZONE_BYTES {
            return Err(Error::ZoneTooSmall {
                text: bytes.to_string(),
                min_bytes: MIN_ZONE_BYTES,
            });
        }
        Ok(Self { bytes })
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.bytes
    }

    /// How many per-address states the zone may hold (bytes / 128).
    pub fn states(self) -> usize {
        usize::try_from(self.bytes / BYTES_PER_STATE).unwrap_or(usize::MAX)
    }
}

impl FromStr for ZoneSize {
    type Err = Error;

    /// Parses like `ngx_parse_size()`: bytes, or a number followed by `k`/`K` (KiB) or
    /// `m`/`M` (MiB). nginx has no `g` suffix for sizes, so neither has this.
    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidZoneSize(text.to_owned());
        let (digits, scale) = match text.as_bytes().last() {
            Some(b'k' | b'K') => (&text[..text.len() - 1], 1024),
            Some(b'm' | b'M') => (&text[..text.len() - 1], 1024 * 1024),
            _ => (text, 1),
        };
        let bytes = atoi(digits)
            .and_then(|n| n.checked_mul(scale))
            .ok_or_else(invalid)?;
        Self::from_bytes(bytes).map_err(|_| Error::ZoneTooSmall {
            text: text.to_owned(),
            min_bytes: MIN_ZONE_BYTES,
        })
    }
}

impl fmt::Display for ZoneSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: u64 = 1024 * 1024;
        if self.bytes.is_multiple_of(MIB) {
            write!(f, "{}m", self.bytes / MIB)
        } else if self.bytes.is_multiple_of(1024) {
            write!(f, "{}k", self.bytes / 1024)
        } else {
            write!(f, "{}", self.bytes)
        }
    }
}

/// When an accepted request that is over the rate waits: `limit_req`'s `nodelay` / `delay=N`.
///
/// nginx folds both into one number, `limit->delay` in thousandths, and an accepted request
/// waits only when its excess is above it: `nodelay` sets it to a value no excess can reach,
/// `delay=N` to `N * 1000`, and leaving both out to 0 (every excess waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DelayPolicy {
    /// `nodelay`: accepted requests never wait.
    NoDelay,
    /// `delay=N`: the first `N` requests of excess pass at once, later ones wait.
    /// `Delay(0)` is nginx's default when neither `nodelay` nor `delay=` is given.
    Delay(u32),
}

impl Default for DelayPolicy {
    /// nginx's default: no `nodelay`, no `delay=`, so every request of excess waits.
    fn default() -> Self {
        DelayPolicy::Delay(0)
    }
}

impl DelayPolicy {
    /// The excess (thousandths) up to which an accepted request does not wait.
    pub fn threshold_millis(self) -> u64 {
        match self {
            DelayPolicy::NoDelay => u64::MAX,
            DelayPolicy::Delay(n) => u64::from(n) * ONE_REQUEST,
        }
    }
}

/// The per-route arguments of `limit_req` besides `zone=`: `burst=N`, `delay=N`, `nodelay`.
///
/// ```
/// use keel_limit::{DelayPolicy, LimitParams};
/// let p: LimitParams = "burst=20 nodelay".parse().unwrap();
/// assert_eq!((p.burst, p.delay), (20, DelayPolicy::NoDelay));
/// assert!("burst=0".parse::<LimitParams>().is_err()); // nginx refuses it too
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LimitParams {
    /// `burst=N`, in requests; 0 when left out.
    pub burst: u32,
    /// `nodelay` / `delay=N`; [`DelayPolicy::Delay(0)`](DelayPolicy::Delay) when left out.
    pub delay: DelayPolicy,
}

impl FromStr for LimitParams {
    type Err = Error;

    /// Parses whitespace-separated arguments as `ngx_http_limit_req()` does: `burst=` and
    /// `delay=` take positive integers, and of `nodelay` and `delay=N` the last one written
    /// wins. `zone=` is not accepted here: the caller resolves zones by name.
    fn from_str(text: &str) -> Result<Self, Error> {
        let mut params = LimitParams::default();
        for arg in text.split_whitespace() {
            if let Some(v) = arg.strip_prefix("burst=") {
                params.burst =
                    positive_u32(v).ok_or_else(|| Error::InvalidBurst(arg.to_owned()))?;
            } else if let Some(v) = arg.strip_prefix("delay=") {
                let n = positive_u32(v).ok_or_else(|| Error::InvalidDelay(arg.to_owned()))?;
                params.delay = DelayPolicy::Delay(n);
            } else if arg == "nodelay" {
                params.delay = DelayPolicy::NoDelay;
            } else {
                return Err(Error::InvalidParameter(arg.to_owned()));
            }
        }
        Ok(params)
    }
}

fn positive_u32(digits: &str) -> Option<u32> {
    atoi(digits)
        .filter(|n| *n > 0)
        .and_then(|n| u32::try_from(n).ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rate(s: &str) -> u64 {
        s.parse::<Rate>().unwrap().millis_per_sec()
    }

    #[test]
    fn rates_use_nginx_units_and_truncation() {
        // ngx_http_limit_req_zone(): ctx->rate = rate * 1000 / scale, scale 1 or 60.
        assert_eq!(rate("10r/s"), 10_000);
        assert_eq!(rate("1r/s"), 1_000);
        assert_eq!(rate("30r/m"), 500); // 30_000 / 60
        assert_eq!(rate("7r/m"), 116); // 7_000 / 60 = 116.67, truncated
        assert_eq!(rate("1r/m"), 16); // 1_000 / 60 = 16.67, truncated
        assert_eq!(rate("60r/m"), 1_000);
        // nginx strips only a suffix it knows, then ngx_atoi()s the rest: "10" is 10r/s.
        assert_eq!(rate("10"), 10_000);
        assert_eq!(Rate::per_minute(30).unwrap().millis_per_sec(), 500);
        assert_eq!(Rate::per_second(10).unwrap(), "10r/s".parse().unwrap());
    }

    #[test]
    fn bad_rates_are_refused_with_the_text_named() {
        for bad in [
            "0r/s",
            "0r/m",
            "",
            "r/s",
            "-1r/s",
            "+1r/s",
            "10 r/s",
            "10r/h",
            "10R/S",
            "1.5r/s",
            "ten r/s",
            "10r/s ",
            "99999999999999999999r/s",
        ] {
            let err = bad.parse::<Rate>().unwrap_err();
            assert_eq!(err, Error::InvalidRate(bad.to_owned()));
            assert!(err.to_string().contains(&format!("\"{bad}\"")), "{err}");
        }
        assert!(Rate::per_second(0).is_err());
        assert!(Rate::from_millis_per_sec(0).is_err());
        // 18446744073709552 * 1000 overflows u64.
        assert!(Rate::per_second(u64::MAX / 1000 + 1).is_err());
    }

    #[test]
    fn rates_display_what_nginx_really_uses() {
        assert_eq!(Rate::per_second(10).unwrap().to_string(), "10r/s");
        assert_eq!(Rate::per_minute(60).unwrap().to_string(), "1r/s");
        assert_eq!(Rate::per_minute(7).unwrap().to_string(), "0.116r/s");
    }

    #[test]
    fn zone_sizes_parse_like_ngx_parse_size() {
        let size = |s: &str| s.parse::<ZoneSize>().unwrap();
        assert_eq!(size("10m").bytes(), 10 * 1024 * 1024);
        assert_eq!(size("10M").bytes(), 10 * 1024 * 1024);
        assert_eq!(size("64k").bytes(), 64 * 1024);
        assert_eq!(size("64K").bytes(), 64 * 1024);
        assert_eq!(size("32768").bytes(), 32_768);
        // 10 MiB / 128 bytes per state.
        assert_eq!(size("10m").states(), 81_920);
        assert_eq!(size("1m").states(), 8_192);
        assert_eq!(size("32k").states(), 256);
        assert_eq!(size("10m").to_string(), "10m");
        assert_eq!(size("64k").to_string(), "64k");
        assert_eq!(size("40000").to_string(), "40000");
    }

    #[test]
    fn bad_zone_sizes_are_refused_with_the_text_named() {
        for bad in ["", "m", "10g", "10G", "10mb", "-1m", "1.5m", "ten", "10 m"] {
            let err = bad.parse::<ZoneSize>().unwrap_err();
            assert_eq!(err, Error::InvalidZoneSize(bad.to_owned()));
            assert!(err.to_string().contains(&format!("\"{bad}\"")), "{err}");
        }
        // Below 8 pages: nginx's "zone ... is too small".
        for small in ["0", "16k", "32767"] {
            let err = small.parse::<ZoneSize>().unwrap_err();
            assert!(matches!(err, Error::ZoneTooSmall { ref text, .. } if text == small));
            assert!(err.to_string().contains(small));
        }
        assert!(ZoneSize::from_bytes(MIN_ZONE_BYTES).is_ok());
        assert!(ZoneSize::from_bytes(MIN_ZONE_BYTES - 1).is_err());
    }

    #[test]
    fn limit_params_parse_like_the_limit_req_directive() {
        let p = |s: &str| s.parse::<LimitParams>().unwrap();
        assert_eq!(
            p(""),
            LimitParams {
                burst: 0,
                delay: DelayPolicy::Delay(0)
            }
        );
        assert_eq!(
            p("burst=20 nodelay"),
            LimitParams {
                burst: 20,
                delay: DelayPolicy::NoDelay
            }
        );
        assert_eq!(
            p("burst=12 delay=8"),
            LimitParams {
                burst: 12,
                delay: DelayPolicy::Delay(8)
            }
        );
        // ngx_http_limit_req(): nodelay and delay= write the same field, the last one wins.
        assert_eq!(p("nodelay delay=3").delay, DelayPolicy::Delay(3));
        assert_eq!(p("delay=3 nodelay").delay, DelayPolicy::NoDelay);

        assert_eq!(
            "burst=0".parse::<LimitParams>(),
            Err(Error::InvalidBurst("burst=0".into()))
        );
        assert_eq!(
            "burst=x".parse::<LimitParams>(),
            Err(Error::InvalidBurst("burst=x".into()))
        );
        assert_eq!(
            "delay=0".parse::<LimitParams>(),
            Err(Error::InvalidDelay("delay=0".into()))
        );
        assert_eq!(
            "burst=5 fast".parse::<LimitParams>(),
            Err(Error::InvalidParameter("fast".into()))
        );
        assert_eq!(
            "zone=one".parse::<LimitParams>(),
            Err(Error::InvalidParameter("zone=one".into()))
        );
    }

    #[test]
    fn delay_thresholds() {
        assert_eq!(DelayPolicy::default(), DelayPolicy::Delay(0));
        assert_eq!(DelayPolicy::Delay(0).threshold_millis(), 0);
        assert_eq!(DelayPolicy::Delay(8).threshold_millis(), 8_000);
        assert_eq!(DelayPolicy::NoDelay.threshold_millis(), u64::MAX);
    }
}
