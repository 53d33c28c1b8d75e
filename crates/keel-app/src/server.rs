//! Serving a router on a listener with gunicorn's stop semantics.
//!
//! On the shutdown signal the listener closes at once (new connections are refused),
//! idle keep-alive connections are closed, and in-flight requests get up to
//! `shutdown_timeout` to finish — gunicorn's `graceful_timeout`. Past that bound the
//! server returns anyway so the process can exit instead of hanging on a stuck client.

use std::future::{Future, IntoFuture};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::AppError;

pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    shutdown_timeout: Duration,
) -> Result<(), AppError> {
    let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    };
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(signal)
    .into_future();

    // Only once the signal has fired does the drain clock start.
    let deadline = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(shutdown_timeout).await;
        } else {
            std::future::pending::<()>().await;
        }
    };

    tokio::select! {
        result = server => result.map_err(AppError::Serve),
        () = deadline => {
            tracing::warn!(
                timeout = ?shutdown_timeout,
                "shutdown timeout expired with requests still in flight; stopping anyway"
            );
            Ok(())
        }
    }
}
