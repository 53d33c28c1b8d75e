//! `/stream/` over real TCP, on both backends: what a browser's EventSource sees.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use common::{
    eventually, get, quick_config, spawn_app, Fixture, Kind, Opts, Read, SseClient, WAIT,
};
use keel_stream::sse::Item;
use keel_stream::{EventId, StreamConfig};

const CH: &str = "demo_stream";

async fn raw_publish_reaches_the_browser_as_a_data_line(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let app = spawn_app(fx.broker.clone(), quick_config()).await;
    let mut client = SseClient::connect(&app.url(""), None).await;
    assert_eq!(client.headers["content-type"], "text/event-stream");
    assert_eq!(client.headers["cache-control"], "no-cache");
    assert_eq!(client.headers["x-accel-buffering"], "no");
    // The retry hint comes first, before any event.
    match client.read(WAIT).await {
        Read::Item(Item::Retry(ms)) => assert_eq!(ms, 1500),
        _ => panic!("expected a retry hint first"),
    }
    fx.raw_publish(CH, "Test Event").await;
    let e = client.event(WAIT).await;
    assert_eq!((e.id.as_deref(), e.data.as_str()), (None, "Test Event"));
    assert!(
        client.raw.ends_with("\n\ndata: Test Event\n\n"),
        "exact wire format: {:?}",
        client.raw
    );
}

async fn multi_line_payloads_become_several_data_lines(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let app = spawn_app(fx.broker.clone(), quick_config()).await;
    let mut client = SseClient::connect(&app.url(""), None).await;
    let id = app
        .hub
        .publish(CH, "line one\nline two\r\nline three\rline four")
        .await
        .unwrap()
        .unwrap();
    let e = client.event(WAIT).await;
    assert_eq!(e.data, "line one\nline two\nline three\nline four");
    assert!(
        client.raw.ends_with(&format!(
            "id: {id}\ndata: line one\ndata: line two\ndata: line three\ndata: line four\n\n"
        )),
        "{:?}",
        client.raw
    );
    fx.raw_publish(CH, "raw\nmulti").await;
    assert!(client.event(WAIT).await.data == "raw\nmulti");
    assert!(client.raw.ends_with("data: raw\ndata: multi\n\n"));
}

async fn reconnect_with_last_event_id_replays_what_was_missed(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let app = spawn_app(fx.broker.clone(), quick_config()).await;
    let mut first = SseClient::connect(&app.url(""), None).await;
    for i in 1..=3 {
        app.hub.publish(CH, &format!("e{i}")).await.unwrap();
    }
    let seen = first.events(3, WAIT).await;
    let last_id = seen[2].id.clone().unwrap();
    drop(first);
    for i in 4..=6 {
        app.hub.publish(CH, &format!("e{i}")).await.unwrap();
    }
    fx.raw_publish(CH, "raw while away").await; // not kept: not replayed

    // Header, as EventSource sends it.
    let mut again = SseClient::connect(&app.url(""), Some(&last_id)).await;
    let replayed = again.events(3, WAIT).await;
    let data: Vec<_> = replayed.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["e4", "e5", "e6"]);
    app.hub.publish(CH, "e7").await.unwrap();
    assert_eq!(again.event(WAIT).await.data, "e7");
    again.expect_quiet(Duration::from_millis(300)).await;

    // Query parameter, for clients that cannot set headers.
    let url = app.url(&format!("?lastEventId={last_id}"));
    let mut by_query = SseClient::connect(&url, None).await;
    let data: Vec<_> = by_query
        .events(4, WAIT)
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(data, ["e4", "e5", "e6", "e7"]);
}

async fn replay_and_live_meet_without_gaps_or_duplicates(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let app = spawn_app(fx.broker.clone(), quick_config()).await;
    let first = app.hub.publish(CH, "0").await.unwrap().unwrap();
    for i in 1..=20 {
        app.hub.publish(CH, &i.to_string()).await.unwrap();
    }
    // Keep publishing while the client connects and replays, so live events arrive
    // during the replay and some are both replayed and live.
    let hub = app.hub.clone();
    let publisher = tokio::spawn(async move {
        for i in 21..=120 {
            hub.publish(CH, &i.to_string()).await.unwrap();
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let mut client = SseClient::connect(&app.url(""), Some(&first.to_string())).await;
    let got: Vec<u32> = client
        .events(120, WAIT)
        .await
        .iter()
        .map(|e| e.data.parse().unwrap())
        .collect();
    assert_eq!(got, (1..=120).collect::<Vec<_>>());
    publisher.await.unwrap();
    client.expect_quiet(Duration::from_millis(300)).await;
}

async fn an_id_older_than_retention_gets_a_lost_event_then_what_is_kept(kind: Kind) {
    let opts = Opts {
        retention_events: 5,
        ..Opts::default()
    };
    let Some(fx) = Fixture::new(kind, opts).await else {
        return;
    };
    let app = spawn_app(fx.broker.clone(), quick_config()).await;
    let mut ids = Vec::new();
    for i in 1..=12 {
        ids.push(
            app.hub
                .publish(CH, &format!("e{i}"))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let mut client = SseClient::connect(&app.url(""), Some(&ids[0].to_string())).await;
    let lost = client.event(WAIT).await;
    assert_eq!(lost.event.as_deref(), Some("lost"));
    assert!(lost.data.contains(&ids[0].to_string()), "{}", lost.data);
    let kept: Vec<_> = client.events(5, WAIT).await;
    assert_eq!(
        kept.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["e8", "e9", "e10", "e11", "e12"]
    );
    assert_eq!(kept[4].id.as_deref(), Some(ids[11].to_string().as_str()));
    app.hub.publish(CH, "live").await.unwrap();
    assert_eq!(client.event(WAIT).await.data, "live");

    // A garbage id is ignored: plain live stream, no replay, no lost event.
    let mut junk = SseClient::connect(&app.url(""), Some("not-an-id")).await;
    app.hub.publish(CH, "after junk").await.unwrap();
    assert_eq!(junk.event(WAIT).await.data, "after junk");
}

async fn heartbeats_keep_an_idle_stream_alive(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let cfg = StreamConfig {
        heartbeat_interval: Duration::from_millis(150),
        allowed_channels: vec![CH.to_owned(), "news".to_owned()],
        ..quick_config()
    };
    let app = spawn_app(fx.broker.clone(), cfg).await;
    let mut client = SseClient::connect(&app.url(""), None).await;
    // Each channel's ring beats; a client of two channels still gets one beat a period.
    let mut both = SseClient::connect(&app.url(&format!("?channel={CH},news")), None).await;
    let mut beats = 0;
    let start = std::time::Instant::now();
    while beats < 3 {
        match client.read(Duration::from_secs(2)).await {
            Read::Item(Item::Comment(c)) => {
                assert_eq!(c, "keepalive");
                beats += 1;
            }
            Read::Item(_) => {}
            Read::End | Read::Timeout => panic!("no heartbeat"),
        }
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400),
        "not faster than configured"
    );
    assert!(client.raw.contains("\n: keepalive\n\n"));
    let mut two_channel_beats = 0;
    while let Read::Item(item) = both.read(Duration::from_millis(50)).await {
        if matches!(item, Item::Comment(ref c) if c == "keepalive") {
            two_channel_beats += 1;
        }
    }
    assert!(
        (2..=4).contains(&two_channel_beats),
        "{two_channel_beats} keepalives in {elapsed:?} on two channels, expected one per 150 ms"
    );
}

async fn only_allowlisted_channels_can_be_read(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let cfg = StreamConfig {
        allowed_channels: vec![CH.into(), "news".into()],
        ..quick_config()
    };
    let app = spawn_app(fx.broker.clone(), cfg).await;

    let refused = get(&app.url("?channel=secret"), None).await;
    assert_eq!(refused.status(), 403);
    let body = refused.text().await.unwrap();
    assert!(body.contains("\"secret\" is not available"), "{body}");
    assert!(body.contains("demo_stream, news"), "{body}");

    let bad = get(&app.url("?channel=no%20spaces"), None).await;
    assert_eq!(bad.status(), 400);

    let refused = get(&app.url("?channel=news,secret"), None).await;
    assert_eq!(refused.status(), 403, "one bad channel refuses the request");

    let mut both = SseClient::connect(&app.url("?channel=demo_stream,news"), None).await;
    let mut news = SseClient::connect(&app.url("?channel=news"), None).await;
    app.hub.publish("news", "n1").await.unwrap();
    fx.raw_publish(CH, "d1").await;
    let mut got: Vec<_> = both
        .events(2, WAIT)
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    got.sort();
    assert_eq!(got, ["d1", "n1"]);
    assert_eq!(news.event(WAIT).await.data, "n1");
    news.expect_quiet(Duration::from_millis(200)).await;
}

async fn per_address_cap_answers_503_and_frees_slots(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let cfg = StreamConfig {
        max_clients_per_ip: 2,
        ..quick_config()
    };
    let app = spawn_app(fx.broker.clone(), cfg).await;
    let a = SseClient::connect(&app.url(""), None).await;
    let _b = SseClient::connect(&app.url(""), None).await;
    let refused = get(&app.url(""), None).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body = refused.text().await.unwrap();
    assert!(body.contains("from your address (limit 2"), "{body}");
    // The operator is told which setting to raise.
    assert!(body.contains("stream.max_clients_per_ip"), "{body}");

    // Another address still gets in: the cap is per address (checked through the hub,
    // since every test client is 127.0.0.1).
    let other = app.hub.connect(keel_stream::ClientRequest {
        channels: vec![],
        last_event_id: None,
        ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
    });
    assert!(other.is_ok());
    drop(other);

    drop(a);
    assert!(
        eventually(WAIT, || app.hub.stats().clients == 1).await,
        "slot released on disconnect"
    );
    let _c = SseClient::connect(&app.url(""), None).await;
}

async fn process_cap_answers_503(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let cfg = StreamConfig {
        max_clients: 2,
        ..quick_config()
    };
    let app = spawn_app(fx.broker.clone(), cfg).await;
    let _a = SseClient::connect(&app.url(""), None).await;
    let _b = SseClient::connect(&app.url(""), None).await;
    let refused = get(&app.url(""), None).await;
    assert_eq!(refused.status(), 503);
    let body = refused.text().await.unwrap();
    assert!(body.contains("limit of 2 live-event clients"), "{body}");
    assert_eq!(app.hub.stats().clients, 2);
}

/// Publishes `n` events of `size` bytes each, as fast as the broker takes them.
async fn flood(hub: &keel_stream::Hub, n: usize, size: usize) -> Vec<EventId> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let payload = format!("{i:08}{}", "x".repeat(size - 8));
        ids.push(hub.publish(CH, &payload).await.unwrap().unwrap());
    }
    ids
}

async fn a_slow_client_that_cannot_be_caught_up_is_closed_with_a_retry_hint(kind: Kind) {
    let opts = Opts {
        retention_events: 20,
        ..Opts::default()
    };
    let Some(fx) = Fixture::new(kind, opts).await else {
        return;
    };
    let cfg = StreamConfig {
        client_buffer: 16,
        ..quick_config()
    };
    let app = spawn_app(fx.broker.clone(), cfg).await;
    let mut slow = SseClient::connect(&app.url(""), None).await;
    // 2000 × 16 KiB = 32 MiB: far more than the socket buffers of a client that does not
    // read, so the server has to decide what to do with it.
    const N: usize = 2000;
    const SIZE: usize = 16 * 1024;
    flood(&app.hub, N, SIZE).await;
    let stats = app.hub.stats();
    assert!(
        stats.channels.iter().all(|c| c.buffered <= c.capacity),
        "{stats:?}"
    );

    // Now the slow one reads: a prefix of the events, then the end with a retry hint.
    let items = slow.until_end(Duration::from_secs(20)).await;
    let events = items.iter().filter(|i| matches!(i, Item::Event(_))).count();
    assert!(events < N, "slow client cannot have received everything");
    assert!(
        slow.bytes_read < N * SIZE / 2,
        "server did not buffer for the slow client: read {} bytes",
        slow.bytes_read
    );
    let tail: Vec<_> = items.iter().rev().take(2).collect();
    assert!(matches!(tail[1], Item::Retry(1500)), "{tail:?}");
    assert!(
        matches!(tail[0], Item::Comment(c) if c.contains("fell")),
        "{tail:?}"
    );
    assert!(app.hub.stats().closed_slow_total >= 1);
}

async fn a_slow_client_is_caught_up_from_the_replay_store(kind: Kind) {
    let opts = Opts {
        retention_events: 5000,
        ..Opts::default()
    };
    let Some(fx) = Fixture::new(kind, opts).await else {
        return;
    };
    let cfg = StreamConfig {
        client_buffer: 16,
        ..quick_config()
    };
    let app = spawn_app(fx.broker.clone(), cfg).await;
    let mut slow = SseClient::connect(&app.url(""), None).await;
    // The catch-up needs a last id: the client has seen one event before it stalls.
    app.hub.publish(CH, "00000000 first").await.unwrap();
    assert!(slow.event(WAIT).await.data.contains("first"));
    const N: usize = 1500;
    flood(&app.hub, N, 16 * 1024).await;
    let mut next = 0;
    while next < N {
        let e = slow.event(Duration::from_secs(20)).await;
        let n: usize = e.data[..8].parse().unwrap();
        assert_eq!(n, next, "in order, no gap, no duplicate");
        next += 1;
    }
    let stats = app.hub.stats();
    assert!(
        stats.lagged_total >= 1,
        "the client did fall behind: {stats:?}"
    );
    assert_eq!(stats.closed_slow_total, 0);
    slow.expect_quiet(Duration::from_millis(200)).await;
}

async fn shutdown_ends_streams_with_a_retry_hint(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let app = spawn_app(fx.broker.clone(), quick_config()).await;
    let mut client = SseClient::connect(&app.url(""), None).await;
    assert!(matches!(
        client.read(WAIT).await,
        Read::Item(Item::Retry(_))
    ));
    app.hub.shutdown();
    let items = client.until_end(WAIT).await;
    assert!(
        matches!(items.first(), Some(Item::Retry(1500))),
        "{items:?}"
    );
    assert!(matches!(items.get(1), Some(Item::Comment(c)) if c.contains("shutting down")));
    let refused = get(&app.url(""), None).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.text().await.unwrap().contains("shutting down"));
}

async fn two_instances_on_one_broker_both_deliver(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let app_a = spawn_app(fx.broker.clone(), quick_config()).await;
    let app_b = spawn_app(fx.second_broker().await, quick_config()).await;
    let mut on_a = SseClient::connect(&app_a.url(""), None).await;
    let mut on_b = SseClient::connect(&app_b.url(""), None).await;
    let id = app_b
        .hub
        .publish(CH, "published on B")
        .await
        .unwrap()
        .unwrap();
    fx.raw_publish(CH, "Test Event").await;
    for client in [&mut on_a, &mut on_b] {
        let e = client.event(WAIT).await;
        assert_eq!(
            (e.id, e.data.as_str()),
            (Some(id.to_string()), "published on B")
        );
        assert_eq!(client.event(WAIT).await.data, "Test Event");
    }
    // A client that moves from A to B resumes where it was.
    app_a.hub.publish(CH, "while moving").await.unwrap();
    let mut moved = SseClient::connect(&app_b.url(""), Some(&id.to_string())).await;
    let resumed: Vec<_> = moved
        .events(1, WAIT)
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(resumed, ["while moving"]);
}

async fn many_clients_share_one_subscription(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let app = spawn_app(fx.broker.clone(), quick_config()).await;
    let mut clients = Vec::new();
    for _ in 0..40 {
        clients.push(SseClient::connect(&app.url(""), None).await);
    }
    let stats = app.hub.stats();
    assert_eq!(stats.clients, 40);
    assert_eq!(stats.channels.len(), 1);
    assert_eq!(stats.channels[0].clients, 40);
    if let Some(redis) = &fx.redis {
        // Connections from this process: one for pub/sub, one for commands — not 40.
        let list = redis.cli(&["client", "list"]);
        let subscribed = list.lines().filter(|l| !l.contains(" sub=0 ")).count();
        assert_eq!(subscribed, 1, "{list}");
    }
    fx.raw_publish(CH, "to all").await;
    for c in &mut clients {
        assert_eq!(c.event(WAIT).await.data, "to all");
    }
    let _ = Arc::strong_count(&fx.broker);
}

both_backends!(
    raw_publish_reaches_the_browser_as_a_data_line,
    multi_line_payloads_become_several_data_lines,
    reconnect_with_last_event_id_replays_what_was_missed,
    replay_and_live_meet_without_gaps_or_duplicates,
    an_id_older_than_retention_gets_a_lost_event_then_what_is_kept,
    heartbeats_keep_an_idle_stream_alive,
    only_allowlisted_channels_can_be_read,
    per_address_cap_answers_503_and_frees_slots,
    process_cap_answers_503,
    a_slow_client_that_cannot_be_caught_up_is_closed_with_a_retry_hint,
    a_slow_client_is_caught_up_from_the_replay_store,
    shutdown_ends_streams_with_a_retry_hint,
    two_instances_on_one_broker_both_deliver,
    many_clients_share_one_subscription,
);
