//! [`StaticHandle`] (the swappable current index) and [`StaticService`] (a tower
//! `Service` that serves it under a mount prefix such as `/static/`).
//!
//! # Reloading
//! nginx re-reads the disk on every request, so new files appear at once and a
//! half-finished collectstatic can be observed. Here an index is immutable; SIGHUP
//! builds a new one off the request path (`StaticFiles::load` on the blocking pool) and
//! [`StaticHandle::store`]s it. Requests already running finish with the index they
//! started with (their bodies hold `Bytes`/file handles, not the index), new requests see
//! the new one, and no request ever waits for a lock: the handle is an
//! [`arc_swap::ArcSwap`], one atomic load per request. A failed reload changes nothing.
//!
//! # Mounting
//! The service strips its prefix itself, so the edge's phase function can hand it any
//! request whose path starts with `/static/`. Under axum, either mount it with
//! `Router::route_service("/static/{*path}", svc.mount("/static/"))`, or let
//! `Router::nest_service("/static", svc)` strip the prefix and keep the default mount
//! `/`. A request outside the prefix gets 404.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use tower_service::Service;

use crate::body::StaticBody;
use crate::error::StaticError;
use crate::index::StaticFiles;
use crate::serve::{plain, PlainHitRef};

/// The current [`StaticFiles`], shared by every connection and replaced on reload.
/// Cloning is cheap (one `Arc`).
#[derive(Clone, Debug)]
pub struct StaticHandle {
    current: Arc<ArcSwap<StaticFiles>>,
}

impl StaticHandle {
    /// A handle serving `files`.
    pub fn new(files: StaticFiles) -> Self {
        StaticHandle {
            current: Arc::new(ArcSwap::from_pointee(files)),
        }
    }

    /// The index in use now (keep it only as long as needed: it pins its memory).
    pub fn current(&self) -> Arc<StaticFiles> {
        self.current.load_full()
    }

    /// Serve from `files` from now on; returns the index it replaces.
    pub fn store(&self, files: StaticFiles) -> Arc<StaticFiles> {
        self.current.swap(Arc::new(files))
    }

    /// Rebuild the index from the same root and options and swap it in. Blocking file
    /// I/O: call from `tokio::task::spawn_blocking`. On error the old index stays.
    pub fn reload(&self) -> Result<(), StaticError> {
        // An owned Arc, not an arc-swap guard: loading can take seconds and guards are
        // meant to be short-lived.
        let fresh = self.current.load_full().reload()?;
        self.store(fresh);
        Ok(())
    }

    /// [`StaticFiles::serve`] on the current index.
    pub fn serve(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<StaticBody> {
        self.current.load().serve(method, path, headers)
    }

    /// [`StaticFiles::with_plain_hit`] on the current index.
    pub fn with_plain_hit<'a, R>(
        &self,
        path: &str,
        headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
        f: impl FnOnce(PlainHitRef<'_>) -> R,
    ) -> Option<R> {
        self.current.load().with_plain_hit(path, headers, f)
    }
}

/// A tower [`Service`] answering requests under a mount prefix from a [`StaticHandle`].
/// Never fails (`Error = Infallible`) and never waits: the future is ready at once.
#[derive(Clone, Debug)]
pub struct StaticService {
    handle: StaticHandle,
    prefix: Arc<str>,
}

impl StaticService {
    /// Serve `handle` with the mount prefix `/` (request path `/css/site.css` → name
    /// `css/site.css`), as under axum's `nest_service`.
    pub fn new(handle: StaticHandle) -> Self {
        StaticService {
            handle,
            prefix: Arc::from("/"),
        }
    }

    /// Serve under `prefix` instead (`"/static/"`; a missing leading or trailing `/` is
    /// added). Request paths that do not start with it get 404.
    pub fn mount(mut self, prefix: &str) -> Self {
        let mut normalized = String::with_capacity(prefix.len() + 2);
        if !prefix.starts_with('/') {
            normalized.push('/');
        }
        normalized.push_str(prefix);
        if !normalized.ends_with('/') {
            normalized.push('/');
        }
        self.prefix = Arc::from(normalized);
        self
    }

    /// The handle this service reads from (to reload it).
    pub fn handle(&self) -> &StaticHandle {
        &self.handle
    }

    /// [`StaticHandle::with_plain_hit`] for a request target (`/static/css/site.css?v=2`)
    /// under this service's prefix; `None` outside it.
    pub fn with_plain_hit<'a, R>(
        &self,
        target: &str,
        headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
        f: impl FnOnce(PlainHitRef<'_>) -> R,
    ) -> Option<R> {
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        self.handle
            .with_plain_hit(path.strip_prefix(&*self.prefix)?, headers, f)
    }

    /// Answer `req` (the `Service` impl without the `Ready` wrapper).
    pub fn handle_request<B>(&self, req: &Request<B>) -> Response<StaticBody> {
        match req.uri().path().strip_prefix(&*self.prefix) {
            Some(path) => self.handle.serve(req.method(), path, req.headers()),
            None => plain(
                StatusCode::NOT_FOUND,
                "Not Found\n",
                req.method() == Method::HEAD,
            ),
        }
    }
}

impl<B> Service<Request<B>> for StaticService {
    type Response = Response<StaticBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<StaticBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.handle_request(&req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StaticOptions;
    use http_body_util::BodyExt;

    fn request(path: &str) -> Request<()> {
        Request::builder().uri(path).body(()).unwrap()
    }

    #[tokio::test]
    async fn mount_prefix_and_swap() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"one").unwrap();
        let handle =
            StaticHandle::new(StaticFiles::load(dir.path(), StaticOptions::default()).unwrap());
        let mut svc = StaticService::new(handle.clone()).mount("static");
        let resp = svc.call(request("/static/a.txt")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            &resp.into_body().collect().await.unwrap().to_bytes()[..],
            b"one"
        );
        let resp = svc.call(request("/a.txt")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);

        // Default mount `/`, as behind axum's nest_service.
        let mut nested = StaticService::new(handle.clone());
        let resp = nested.call(request("/a.txt")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);

        std::fs::write(dir.path().join("a.txt"), b"two").unwrap();
        let old = handle.store(StaticFiles::load(dir.path(), StaticOptions::default()).unwrap());
        assert!(old.contains("a.txt"));
        let resp = svc.call(request("/static/a.txt")).await.unwrap();
        assert_eq!(
            &resp.into_body().collect().await.unwrap().to_bytes()[..],
            b"two"
        );
    }
}
