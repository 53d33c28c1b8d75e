//! The edge's HTTP/1 codec: what a request head may be, and how a message body is framed.
//!
//! Laid out as pingora-core's `protocols/http/v1/`: [`request`] holds the rules every
//! request head passes before any phase sees it (the server side), [`framing`] the one
//! body framing both sides share (a client's chunked body, an upstream's answer), and
//! `upstream.rs` the client side over this worker's keep-alive pool.
//!
//! # Why one set of rules, checked on the bytes as read
//! A proxy is only as strict as the most lenient parser in front of the backend. nginx
//! refuses `Content-Length` beside `Transfer-Encoding`, a second `Host`, a target that
//! climbs above `/`, and answers that say more than their framing allows; an edge that
//! forwards any of them lets a front proxy and a backend disagree on where a message
//! ends (request smuggling), or hands one client's answer to another (response queue
//! poisoning). hyper's parser cannot serve as the rules: it drops `Content-Length` when
//! `Transfer-Encoding` is present, before a service sees the request. So every plain
//! HTTP/1 head is checked here on its wire form; requests that arrive through hyper
//! (TLS, HTTP/2) are checked on the same view built from their parts.

pub(crate) mod framing;
#[cfg(test)]
mod props;
pub(crate) mod request;
