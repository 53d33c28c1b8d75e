//! What the edge's black-box test files share: a server on a loopback port (an edge, or a
//! backend of the test's own) and the way to start an edge and stop it again.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;

use keel_edge::{Edge, EdgeConfig};
use tokio::sync::oneshot;

/// Loopback, port 0.
pub const LOCAL: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

/// A running server of a test.
pub struct Server {
    pub addr: SocketAddr,
    /// The edge's HTTPS address, when it has one.
    pub tls_addr: Option<SocketAddr>,
    /// The edge's reload handle (None for backends).
    pub reloader: Option<keel_edge::Reloader>,
    /// Stops it gracefully; `None` for a server that is cut off instead (one whose
    /// endless streams would hold a graceful stop forever).
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn stop(mut self) {
        match self.stop.take() {
            Some(stop) => {
                let _ = stop.send(());
                let _ = self.task.await;
            }
            None => self.task.abort(),
        }
    }
}

/// Builds and runs an edge for `cfg` until its [`Server`] is stopped.
pub async fn spawn_edge(cfg: EdgeConfig) -> Server {
    let edge = Edge::build(cfg).await.unwrap();
    let addr = edge.local_addr();
    let tls_addr = edge.tls_local_addr();
    let reloader = Some(edge.reloader());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(edge.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        tls_addr,
        reloader,
        stop: Some(stop),
        task,
    }
}
