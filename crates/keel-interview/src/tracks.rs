//! The four tracks keel ships, compiled into the binary from `tracks/*.txt` so the site
//! needs no bank files at run time (a deployment may still load edited copies with
//! [`crate::parse_track`]). Every shipped question is held to the rubric's rules by
//! `tests/score.rs`: its model answer scores at least 80, its model answer turned into a
//! keyword list at most 60, an off-topic paragraph at most 10.

use crate::bank::{parse_track, Track};

/// `(name, bank text)` of every shipped track, in the order the site lists them.
pub const TRACKS: &[(&str, &str)] = &[
    ("edge", include_str!("../tracks/edge.txt")),
    ("app-server", include_str!("../tracks/app-server.txt")),
    ("live-events", include_str!("../tracks/live-events.txt")),
    ("sync-async", include_str!("../tracks/sync-async.txt")),
];

/// The shipped tracks, parsed. A track that fails to parse is left out rather than
/// panicking the server; `tests/bank.rs` makes sure none does.
pub fn shipped() -> Vec<Track> {
    TRACKS
        .iter()
        .filter_map(|(_, text)| parse_track(text).ok())
        .collect()
}
