//! The raw client: writes bytes as they are, reads whatever comes back, every read bounded.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use crate::wire::{self, Response};

/// The longest a case waits for its answers.
const DEADLINE: Duration = Duration::from_secs(3);
/// Once the answers so far are complete, how long further bytes are waited for.
const QUIET: Duration = Duration::from_millis(150);

/// How the read of an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The front closed the connection.
    Closed,
    /// The connection was reset (or the write failed).
    Reset,
    /// Complete answers, then nothing for a while: the connection is kept alive.
    Quiet,
    /// An answer still incomplete (or none) at the deadline.
    Timeout,
    /// No connection.
    Refused,
}

/// Everything a client got for one write.
#[derive(Debug, Clone)]
pub struct Answer {
    pub raw: Vec<u8>,
    pub responses: Vec<Response>,
    /// Bytes after the last complete response.
    pub rest: Vec<u8>,
    pub end: End,
}

impl Answer {
    /// The statuses, or how it ended without one; trailing bytes noted.
    pub fn summary(&self) -> String {
        let mut out = if self.responses.is_empty() {
            match self.end {
                End::Closed => "closed".to_owned(),
                End::Reset => "reset".to_owned(),
                End::Quiet | End::Timeout => "timeout".to_owned(),
                End::Refused => "no connection".to_owned(),
            }
        } else {
            self.responses
                .iter()
                .map(|r| r.status.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.rest.is_empty() {
            out.push_str(&format!(" +{}B junk", self.rest.len()));
        }
        if !self.responses.is_empty() && self.end == End::Timeout {
            out.push_str(" (then timeout)");
        }
        out
    }
}

/// A connection to `addr`, or `None` within a second.
pub async fn connect(addr: SocketAddr) -> Option<TcpStream> {
    timeout(Duration::from_secs(1), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()
}

/// Sends `request` in one write on a new connection and reads the answers: until the
/// connection ends, the answers are complete and nothing more comes for a moment, or
/// the deadline. `head`: the requests are HEAD (their answers have no body).
pub async fn exchange(addr: SocketAddr, request: &[u8], head: bool) -> Answer {
    let Some(mut stream) = connect(addr).await else {
        return Answer {
            raw: Vec::new(),
            responses: Vec::new(),
            rest: Vec::new(),
            end: End::Refused,
        };
    };
    let deadline = Instant::now() + DEADLINE;
    let written = stream.write_all(request).await.is_ok();
    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let end = loop {
        let (responses, _, pending) = wire::parse_responses(&raw, head, false);
        let settled = !responses.is_empty() && !pending;
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = if settled { left.min(QUIET) } else { left };
        match timeout(wait, stream.read(&mut chunk)).await {
            Err(_) if settled => break End::Quiet,
            Err(_) => break End::Timeout,
            Ok(Ok(0)) if written => break End::Closed,
            Ok(Ok(0)) | Ok(Err(_)) => break End::Reset,
            Ok(Ok(n)) => raw.extend_from_slice(&chunk[..n]),
        }
    };
    let eof = matches!(end, End::Closed | End::Reset);
    let (responses, used, _) = wire::parse_responses(&raw, head, eof);
    Answer {
        rest: raw[used..].to_vec(),
        raw,
        responses,
        end,
    }
}

/// One response read from `stream` after the bytes already in `pending` (which keeps
/// what follows it); `None` when the connection ended or nothing whole came in time.
pub async fn read_one(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    head: bool,
    within: Duration,
) -> Option<Response> {
    let deadline = Instant::now() + within;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if let wire::Parsed::Whole(response, used) = wire::parse_response(pending, head, false) {
            pending.drain(..used);
            return Some(response);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => pending.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// Whatever arrives on `stream` within `within`.
pub async fn drain(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&chunk[..n]),
            _ => return out,
        }
    }
}
