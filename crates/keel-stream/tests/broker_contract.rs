//! The broker contract, run against both backends: whatever `keel up` (memory) does,
//! `keel serve --redis-url` (Redis) does too.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Fixture, Kind, Opts};
use keel_stream::{BrokerError, Delivery, Event, EventId, Replay};

const CH: &str = "demo_stream";

async fn next_event(sub: &mut keel_stream::Subscription) -> Event {
    match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
        Ok(Some(Delivery::Event(e))) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn ids(events: &[Event]) -> Vec<EventId> {
    events.iter().map(|e| e.id.unwrap()).collect()
}

fn events(replay: Replay) -> Vec<Event> {
    match replay {
        Replay::Events(e) => e,
        Replay::Lost => panic!("unexpected Lost"),
    }
}

async fn publish_n(fx: &Fixture, n: usize) -> Vec<EventId> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            fx.broker
                .publish(CH, &format!("m{i}"))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    out
}

async fn keel_publish_gets_increasing_ids_and_reaches_subscribers(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let mut a = fx.broker.subscribe(CH).await.unwrap();
    let mut b = fx.broker.subscribe(CH).await.unwrap();
    let published = publish_n(&fx, 3).await;
    assert!(published.windows(2).all(|w| w[0] < w[1]), "{published:?}");
    for sub in [&mut a, &mut b] {
        for (i, id) in published.iter().enumerate() {
            let e = next_event(sub).await;
            assert_eq!(e.id, Some(*id));
            assert_eq!(&*e.data, format!("m{i}"));
            assert_eq!(&*e.channel, CH);
        }
    }
}

async fn raw_publish_arrives_without_id_and_is_not_kept(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let mut sub = fx.broker.subscribe(CH).await.unwrap();
    fx.raw_publish(CH, "Test Event").await;
    let e = next_event(&mut sub).await;
    assert_eq!((e.id, &*e.data), (None, "Test Event"));
    assert_eq!(
        events(fx.broker.replay(CH, None, 10).await.unwrap()),
        vec![]
    );
}

async fn raw_payloads_that_look_like_envelopes_stay_raw(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let mut sub = fx.broker.subscribe(CH).await.unwrap();
    let tricky = [
        "\u{1e}keel\u{1f}not-an-id\u{1f}x",
        "keel 1-0 hi",
        "a\u{1f}b",
        "id: 5\ndata: injected",
    ];
    for payload in tricky {
        fx.raw_publish(CH, payload).await;
    }
    for payload in tricky {
        let e = next_event(&mut sub).await;
        assert_eq!((e.id, &*e.data), (None, payload));
    }
}

async fn payloads_arrive_byte_for_byte(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let mut sub = fx.broker.subscribe(CH).await.unwrap();
    let payload = "line one\r\nline two\rline three\n\u{1f}unicode: ü ✓\n";
    let id = fx.broker.publish(CH, payload).await.unwrap();
    let e = next_event(&mut sub).await;
    assert_eq!((e.id, &*e.data), (id, payload));
    let kept = events(fx.broker.replay(CH, None, 10).await.unwrap());
    assert_eq!(&*kept[0].data, payload);
}

async fn replay_pages_in_order_after_an_id(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let published = publish_n(&fx, 10).await;
    let page = events(fx.broker.replay(CH, Some(published[2]), 4).await.unwrap());
    assert_eq!(ids(&page), published[3..7]);
    assert_eq!(&*page[0].data, "m3");
    let page = events(fx.broker.replay(CH, Some(published[6]), 4).await.unwrap());
    assert_eq!(ids(&page), published[7..10], "a short page is the last");
    let page = events(fx.broker.replay(CH, Some(published[9]), 4).await.unwrap());
    assert!(page.is_empty());
    let page = events(fx.broker.replay(CH, None, 100).await.unwrap());
    assert_eq!(ids(&page), published);
    // Unknown channel: nothing kept, not an error.
    let page = events(
        fx.broker
            .replay("other", Some(published[0]), 4)
            .await
            .unwrap(),
    );
    assert!(page.is_empty());
}

async fn replay_says_lost_exactly_when_an_event_was_dropped(kind: Kind) {
    let opts = Opts {
        retention_events: 5,
        ..Opts::default()
    };
    let Some(fx) = Fixture::new(kind, opts).await else {
        return;
    };
    let published = publish_n(&fx, 12).await;
    // Kept: the last 5 (7..12). The newest dropped is #6.
    assert_eq!(
        fx.broker.replay(CH, Some(published[0]), 100).await.unwrap(),
        Replay::Lost
    );
    assert_eq!(
        fx.broker.replay(CH, Some(published[5]), 100).await.unwrap(),
        Replay::Lost
    );
    let rest = events(fx.broker.replay(CH, Some(published[6]), 100).await.unwrap());
    assert_eq!(
        ids(&rest),
        published[7..],
        "id == newest dropped loses nothing"
    );
    let all = events(fx.broker.replay(CH, None, 100).await.unwrap());
    assert_eq!(ids(&all), published[7..]);
}

async fn age_retention_drops_old_events_on_publish(kind: Kind) {
    let opts = Opts {
        retention_age: Some(Duration::from_millis(300)),
        ..Opts::default()
    };
    let Some(fx) = Fixture::new(kind, opts).await else {
        return;
    };
    let old = publish_n(&fx, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let new = fx.broker.publish(CH, "fresh").await.unwrap().unwrap();
    assert_eq!(
        fx.broker.replay(CH, Some(old[0]), 10).await.unwrap(),
        Replay::Lost
    );
    let kept = events(fx.broker.replay(CH, Some(old[2]), 10).await.unwrap());
    assert_eq!(ids(&kept), vec![new]);
}

async fn zero_retention_publishes_raw(kind: Kind) {
    let opts = Opts {
        retention_events: 0,
        ..Opts::default()
    };
    let Some(fx) = Fixture::new(kind, opts).await else {
        return;
    };
    let mut sub = fx.broker.subscribe(CH).await.unwrap();
    assert_eq!(fx.broker.publish(CH, "x").await.unwrap(), None);
    let e = next_event(&mut sub).await;
    assert_eq!((e.id, &*e.data), (None, "x"));
}

async fn a_subscriber_that_does_not_read_gets_a_gap_not_a_backlog(kind: Kind) {
    let opts = Opts {
        channel_buffer: 8,
        ..Opts::default()
    };
    let Some(fx) = Fixture::new(kind, opts).await else {
        return;
    };
    let mut sub = fx.broker.subscribe(CH).await.unwrap();
    let mut reader = fx.broker.subscribe(CH).await.unwrap();
    let published = publish_n(&fx, 50).await;
    // Wait until the broker has put all 50 into the channel buffer (Redis delivers
    // asynchronously): a second subscriber sees the last one.
    loop {
        match tokio::time::timeout(Duration::from_secs(5), reader.recv()).await {
            Ok(Some(Delivery::Event(e))) if e.id == Some(published[49]) => break,
            Ok(Some(_)) => {}
            other => panic!("reader: {other:?}"),
        }
    }
    let first = tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .unwrap();
    let Some(Delivery::Gap { missed }) = first else {
        panic!("expected a gap, got {first:?}")
    };
    assert_eq!(missed, 42, "50 published, 8 buffered");
    let mut rest = Vec::new();
    while let Ok(Some(Delivery::Event(e))) =
        tokio::time::timeout(Duration::from_millis(300), sub.recv()).await
    {
        rest.push(e.id.unwrap());
    }
    assert_eq!(
        rest,
        published[42..],
        "the newest 8 are still there, in order"
    );
}

async fn invalid_channels_are_refused(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    for bad in ["", "has space", "new\nline", "star*"] {
        assert!(matches!(
            fx.broker.publish(bad, "x").await,
            Err(BrokerError::InvalidChannel(_))
        ));
        assert!(matches!(
            fx.broker.subscribe(bad).await,
            Err(BrokerError::InvalidChannel(_))
        ));
    }
}

async fn health_is_ok_when_connected(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    assert!(fx.broker.health().is_ok());
}

async fn a_second_instance_sees_what_the_first_publishes(kind: Kind) {
    let Some(fx) = Fixture::new(kind, Opts::default()).await else {
        return;
    };
    let other = fx.second_broker().await;
    let mut here = fx.broker.subscribe(CH).await.unwrap();
    let mut there = other.subscribe(CH).await.unwrap();
    let id = other.publish(CH, "from B").await.unwrap();
    fx.raw_publish(CH, "raw").await;
    for sub in [&mut here, &mut there] {
        let e = next_event(sub).await;
        assert_eq!((e.id, &*e.data), (id, "from B"));
        let e = next_event(sub).await;
        assert_eq!((e.id, &*e.data), (None, "raw"));
    }
    // And B's events are in the shared store.
    let kept = events(fx.broker.replay(CH, None, 10).await.unwrap());
    assert_eq!(kept.len(), 1);
}

both_backends!(
    keel_publish_gets_increasing_ids_and_reaches_subscribers,
    raw_publish_arrives_without_id_and_is_not_kept,
    raw_payloads_that_look_like_envelopes_stay_raw,
    payloads_arrive_byte_for_byte,
    replay_pages_in_order_after_an_id,
    replay_says_lost_exactly_when_an_event_was_dropped,
    age_retention_drops_old_events_on_publish,
    zero_retention_publishes_raw,
    a_subscriber_that_does_not_read_gets_a_gap_not_a_backlog,
    invalid_channels_are_refused,
    health_is_ok_when_connected,
    a_second_instance_sees_what_the_first_publishes,
);
