//! Property tests of the codec (issue 14's fuzz target, with proptest so that it runs in
//! every `cargo test`): no input makes the request rules, the path normaliser or the body
//! decoder panic, and the chunked decoder ends a body exactly where its framing says,
//! however the bytes are split across reads — never early (the rest would be read as a
//! second request) and never late (the next request would be swallowed).

use bytes::BytesMut;
use proptest::prelude::*;

use super::framing::{Chunk, Framing, Step};
use super::request;
use axum::http::Version;

/// Decodes `wire` fed in pieces cut at `cuts`; returns the data, the bytes left after the
/// body, and whether the body ended. `None` on a framing error.
fn decode_split(wire: &[u8], cuts: &[usize]) -> Option<(Vec<u8>, Vec<u8>, bool)> {
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut fed = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(wire.len());
    points.sort_unstable();
    for point in points {
        if point > fed {
            buf.extend_from_slice(&wire[fed..point]);
            fed = point;
        }
        loop {
            match framing.step(&mut buf) {
                Ok(Step::Data(bytes)) => data.extend_from_slice(&bytes),
                Ok(Step::NeedMore) => break,
                Ok(Step::End) => {
                    let mut rest = buf.to_vec();
                    rest.extend_from_slice(&wire[fed..]);
                    return Some((data, rest, true));
                }
                Err(_) => return None,
            }
        }
    }
    Some((data, buf.to_vec(), false))
}

fn chunked(chunks: &[Vec<u8>], ext: bool) -> Vec<u8> {
    let mut wire = Vec::new();
    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        wire.extend_from_slice(format!("{:x}", chunk.len()).as_bytes());
        if ext {
            wire.extend_from_slice(b";a=b");
        }
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// One chunked body followed by a next request: the body's data comes out whole and
    /// the next request's bytes are left untouched, at any split of the reads.
    #[test]
    fn a_chunked_body_ends_exactly_where_its_framing_says(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..6),
        ext in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let next = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut wire = chunked(&chunks, ext);
        wire.extend_from_slice(next);
        let (data, rest, ended) = decode_split(&wire, &cuts).expect("a valid body refused");
        prop_assert!(ended);
        prop_assert_eq!(data, chunks.concat());
        prop_assert_eq!(rest, next.to_vec());
    }

    /// Arbitrary bytes: an error or a body, never a panic, and never more data than was fed.
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        wire in prop::collection::vec(any::<u8>(), 0..300),
        cuts in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        if let Some((data, rest, _)) = decode_split(&wire, &cuts) {
            prop_assert!(data.len() + rest.len() <= wire.len());
        }
    }

    /// Mutations of a valid chunked body either decode to a body that ends once, or fail:
    /// a body that ended never has its end moved by where the reads were cut.
    #[test]
    fn a_mutated_body_decodes_the_same_whatever_the_cuts(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..20), 1..4),
        at in any::<usize>(),
        byte in any::<u8>(),
        cuts in prop::collection::vec(any::<usize>(), 1..5),
    ) {
        let mut wire = chunked(&chunks, false);
        let at = at % wire.len();
        wire[at] = byte;
        let whole = decode_split(&wire, &[]);
        let split = decode_split(&wire, &cuts);
        if let (Some(whole), Some(split)) = (&whole, &split) {
            if whole.2 && split.2 {
                prop_assert_eq!(whole, split);
            }
        }
    }

    /// The request rules take any method, target and fields without panicking, and a
    /// normalised path is always absolute and free of dot segments and `//`.
    #[test]
    fn the_request_rules_never_panic(
        method in "[A-Za-z_(-]{0,8}",
        target in "[ -~]{0,40}",
        names in prop::collection::vec("[A-Za-z-]{1,16}", 0..6),
        values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..6),
        h10 in any::<bool>(),
    ) {
        let fields: Vec<(&[u8], &[u8])> = names
            .iter()
            .zip(values.iter())
            .map(|(n, v)| (n.as_bytes(), v.as_slice()))
            .collect();
        let checked = request::check(request::View {
            method: &method,
            target: &target,
            version: if h10 { Version::HTTP_10 } else { Version::HTTP_11 },
            authority: None,
            fields: fields.iter().copied(),
        });
        if let Ok(checked) = checked {
            let path = checked.path;
            prop_assert!(path.starts_with('/'));
            prop_assert!(!path.contains("//"), "{}", path);
            prop_assert!(!path.split('/').any(|s| s == "." || s == ".."), "{}", path);
        }
    }

    /// Paths made of segments, dots, slashes and escapes normalise without panicking,
    /// and normalising twice changes nothing (what limit_req matches is a fixed point).
    #[test]
    fn normalised_paths_are_fixed_points(
        parts in prop::collection::vec(
            prop::sample::select(vec!["a", "b", ".", "..", "", "%2e", "%2F", "%41", "%", "%zz", "x y"]),
            0..10,
        ),
    ) {
        let path = format!("/{}", parts.join("/"));
        if let Ok(once) = request::normalize_path(&path) {
            let once = once.into_owned();
            if !once.contains('%') {
                let twice = request::normalize_path(&once).map(|p| p.into_owned());
                prop_assert_eq!(Ok(once.clone()), twice.map_err(|_| ()), "{}", path);
            }
        }
    }
}
