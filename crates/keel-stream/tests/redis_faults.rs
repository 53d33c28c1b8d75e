//! Redis going away and coming back, with clients connected: the behaviour a plain
//! `aio::PubSub` (and the classic Django view) does not have.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    eventually, quick_config, redis_config, redis_or_skip, spawn_app, Opts, Read, RedisServer,
    SseClient, WAIT,
};
use keel_stream::sse::Item;
use keel_stream::{Broker, BrokerError, RedisBroker, StreamConfig, StreamError};

const CH: &str = "demo_stream";

fn fast_heartbeats() -> StreamConfig {
    StreamConfig {
        heartbeat_interval: Duration::from_millis(200),
        subscribe_timeout: Duration::from_millis(300),
        ..quick_config()
    }
}

/// Reads until an event with `data` arrives, doing `poke` every 50 ms meanwhile; returns
/// how long it took. Panics if the stream ends or `wait` passes.
async fn until_event(
    client: &mut SseClient,
    data: &str,
    wait: Duration,
    mut poke: impl FnMut(),
) -> Duration {
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < wait,
            "no {data:?} within {wait:?}; raw:\n{}",
            client.tail()
        );
        poke();
        match client.read(Duration::from_millis(50)).await {
            Read::Item(Item::Event(e)) if e.data == data => return start.elapsed(),
            Read::Item(_) | Read::Timeout => {}
            Read::End => panic!("the stream ended; it should have survived"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_stream_keeps_clients_and_resumes_delivery() {
    let Some(mut server) = redis_or_skip() else {
        return;
    };
    let broker = RedisBroker::connect(redis_config(server.url(), &Opts::default()))
        .await
        .unwrap();
    let app = spawn_app(Arc::new(broker), fast_heartbeats()).await;
    let mut client = SseClient::connect(&app.url(""), None).await;
    app.hub.publish(CH, "before").await.unwrap();
    assert_eq!(client.event(WAIT).await.data, "before");

    server.stop();
    assert!(
        eventually(Duration::from_secs(3), || !app.hub.health().is_ok()).await,
        "health must say degraded"
    );
    let started = Instant::now();
    let err = app.hub.publish(CH, "while down").await.unwrap_err();
    assert!(
        matches!(err, StreamError::Broker(BrokerError::Unavailable { .. })),
        "{err:?}"
    );
    assert_eq!(err.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "publish fails fast"
    );
    // The stream stays open and keeps beating.
    let mut beats = 0;
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_millis(800) {
        match client.read(Duration::from_millis(100)).await {
            Read::Item(Item::Comment(c)) if c == "keepalive" => beats += 1,
            Read::Item(Item::Event(e)) => panic!("unexpected event {e:?}"),
            Read::End => panic!("stream ended while redis was down"),
            _ => {}
        }
    }
    assert!(
        beats >= 2,
        "heartbeats continue while redis is down ({beats})"
    );

    server.restart();
    let restarted = Instant::now();
    // Another instance publishes through keel at once, possibly before this one has
    // resubscribed: the event reaches the client live or from the stream.
    let other = RedisBroker::connect(redis_config(server.url(), &Opts::default()))
        .await
        .unwrap();
    other
        .publish(CH, "from B right after restart")
        .await
        .unwrap();
    until_event(&mut client, "from B right after restart", WAIT, || {}).await;
    let keel_resume = restarted.elapsed();
    // A raw publish (nothing kept) needs the subscription itself back.
    let raw_started = Instant::now();
    let mut last_poke = Instant::now() - Duration::from_secs(1);
    until_event(&mut client, "Test Event", WAIT, || {
        if last_poke.elapsed() >= Duration::from_millis(50) {
            server.cli(&["publish", CH, "Test Event"]);
            last_poke = Instant::now();
        }
    })
    .await;
    let raw_resume = restarted.elapsed();
    eprintln!(
        "RESUME: keel event delivered {keel_resume:?} after redis restart; raw PUBLISH delivered {raw_resume:?} after restart (raw loop {:?})",
        raw_started.elapsed()
    );
    assert!(keel_resume < Duration::from_secs(2), "{keel_resume:?}");
    assert!(raw_resume < Duration::from_secs(2), "{raw_resume:?}");
    assert!(eventually(Duration::from_secs(2), || app.hub.health().is_ok()).await);
    let id = app.hub.publish(CH, "after").await.unwrap();
    loop {
        let e = client.event(WAIT).await;
        if e.data == "after" {
            assert_eq!(e.id, id.map(|i| i.to_string()));
            break;
        }
        assert_eq!(
            e.data, "Test Event",
            "only the extra raw pokes may come before"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stored_while_the_subscription_was_cut_are_delivered_from_the_stream() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let opts = Opts::default();
    let broker = RedisBroker::connect(redis_config(server.url(), &opts))
        .await
        .unwrap();
    let key = broker.config().stream_key(CH);
    let app = spawn_app(Arc::new(broker), quick_config()).await;
    let mut client = SseClient::connect(&app.url(""), None).await;
    app.hub.publish(CH, "one").await.unwrap();
    assert_eq!(client.event(WAIT).await.data, "one");

    // Cut the pub/sub connection and, in the same pipeline (so before it can come back),
    // store an event the way another keel instance does. Its PUBLISH would reach nobody,
    // so it is left out: the event can only arrive through the catch-up read.
    let list = server.cli(&["client", "list"]);
    let sub_ids: Vec<&str> = list
        .lines()
        .filter(|l| l.contains(" sub=1 "))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .collect();
    assert_eq!(sub_ids.len(), 1, "one pub/sub connection: {list}");
    let mut plain = server.plain_connection().await;
    let (killed, missed_id): (i64, String) = redis::pipe()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(sub_ids[0])
        .cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("d")
        .arg("stored while cut off")
        .query_async(&mut plain)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    let cut = Instant::now();
    let e = client.event(WAIT).await;
    assert_eq!(
        (e.id.as_deref(), e.data.as_str()),
        (Some(missed_id.as_str()), "stored while cut off")
    );
    eprintln!("CATCH-UP: delivered {:?} after the cut", cut.elapsed());
    assert!(cut.elapsed() < Duration::from_secs(2));
    app.hub.publish(CH, "two").await.unwrap();
    assert_eq!(client.event(WAIT).await.data, "two");
    client.expect_quiet(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_started_before_redis_connects_when_it_appears() {
    if redis_or_skip().is_none() {
        return;
    }
    let mut server = RedisServer::not_started();
    let broker = RedisBroker::connect(redis_config(server.url(), &Opts::default()))
        .await
        .expect("a broker can start while redis is down");
    assert!(!broker.health().is_ok());
    assert!(broker.publish(CH, "x").await.unwrap_err().is_unavailable());
    let app = spawn_app(Arc::new(broker), fast_heartbeats()).await;
    // The stream opens anyway (after subscribe_timeout) and waits.
    let mut client = SseClient::connect(&app.url(""), None).await;

    server.start_now();
    assert!(eventually(Duration::from_secs(3), || app.hub.health().is_ok()).await);
    let mut last_poke = Instant::now() - Duration::from_secs(1);
    let took = until_event(&mut client, "hello", WAIT, || {
        if last_poke.elapsed() >= Duration::from_millis(100) {
            server.cli(&["publish", CH, "hello"]);
            last_poke = Instant::now();
        }
    })
    .await;
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_that_cannot_be_replayed_while_redis_is_down_is_asked_to_retry() {
    let Some(mut server) = redis_or_skip() else {
        return;
    };
    let broker = RedisBroker::connect(redis_config(server.url(), &Opts::default()))
        .await
        .unwrap();
    let app = spawn_app(Arc::new(broker), fast_heartbeats()).await;
    let mut first = SseClient::connect(&app.url(""), None).await;
    let id = app.hub.publish(CH, "seen").await.unwrap().unwrap();
    assert_eq!(first.event(WAIT).await.data, "seen");
    server.stop();
    // The browser reconnects with its id; the replay cannot run, so instead of a silent
    // gap it gets a 200 stream that ends at once with a retry hint (EventSource retries
    // after that, but would give up for good on a 503).
    let mut again = SseClient::connect(&app.url(""), Some(&id.to_string())).await;
    let items = again.until_end(WAIT).await;
    assert!(
        items
            .iter()
            .any(|i| matches!(i, Item::Comment(c) if c.contains("replay unavailable"))),
        "{items:?}"
    );
    assert!(
        items.iter().all(|i| !matches!(i, Item::Event(_))),
        "{items:?}"
    );
    // The client that was already connected is unaffected.
    assert!(matches!(
        first.read(Duration::from_millis(500)).await,
        Read::Item(Item::Comment(_))
    ));
}
