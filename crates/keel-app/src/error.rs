//! The app crate's error type: what can stop a server from starting or running.
//!
//! Errors a *request* can cause are not here; they are responses (see `upstream.rs`).

use std::net::SocketAddr;

/// Why the application server could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The listen address could not be bound (in use, not local, no permission).
    #[error("could not listen on {addr}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// An outbound HTTP client could not be built (TLS roots, resolver).
    #[error("could not build the {which} upstream client")]
    Client {
        /// `sync` or `async`.
        which: &'static str,
        /// The client library's reason.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
