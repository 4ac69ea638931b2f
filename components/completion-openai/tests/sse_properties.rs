//! Property tests of the incremental SSE parser: whatever the bytes and wherever the
//! upstream cuts them into chunks, the parser never panics and yields the same events,
//! the same error and the same pending event as when fed the stream in one piece.

use completion_openai::sse::{SseError, SseEvent, SseParser};
use proptest::prelude::*;

/// Everything the parser fed `chunks` produced: the events up to the first error, that
/// error, and (without one) the event `finish` returns.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<SseEvent>,
    error: Option<SseError>,
    pending: Option<SseEvent>,
}

fn parse(chunks: &[&[u8]], limit: usize) -> Outcome {
    let mut parser = SseParser::with_limit(limit);
    let mut events = Vec::new();
    for chunk in chunks {
        if let Err(error) = parser.feed(chunk, &mut events) {
            return Outcome {
                events,
                error: Some(error),
                pending: None,
            };
        }
    }
    Outcome {
        events,
        error: None,
        pending: parser.finish(),
    }
}

/// Streams made of the pieces the parser reacts to: field names, the three line breaks,
/// comments, a BOM, multi-byte text, invalid and cut UTF-8, and arbitrary bytes.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"data".to_vec()),
        Just(b"event: ".to_vec()),
        Just(b"id: 7".to_vec()),
        Just(b"retry: 10".to_vec()),
        Just(b": comment".to_vec()),
        Just(b":".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n\n".to_vec()),
        Just("\u{feff}".as_bytes().to_vec()),
        Just("héllo 👋".as_bytes().to_vec()),
        Just(b"\xff".to_vec()),
        Just(b"\xf0\x9f".to_vec()),
        Just(b"[DONE]".to_vec()),
        "[a-z{}\":,]{0,8}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

/// `bytes` cut at `cuts` (any positions, in any order, repeated or not).
fn split<'a>(bytes: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

proptest! {
    // Bounded so that the file runs in well under a second in release.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_chunking_gives_the_same_outcome(
        bytes in stream(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        // Small limits make `TooLong` reachable; the default is the production one.
        limit in prop_oneof![Just(completion_openai::sse::DEFAULT_LIMIT), 1usize..48],
    ) {
        let whole = parse(&[&bytes], limit);
        prop_assert_eq!(&parse(&split(&bytes, &cuts), limit), &whole);
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(&parse(&bytewise, limit), &whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let whole = parse(&[&bytes], 64);
        prop_assert_eq!(parse(&split(&bytes, &cuts), 64), whole);
    }

    /// Events written as the spec says come back as written, however they are cut.
    #[test]
    fn written_events_read_back(
        events in prop::collection::vec(("[a-z]{0,6}", prop::collection::vec("[^\r\n]{0,12}", 1..3)), 0..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut stream = String::new();
        for (event, lines) in &events {
            if !event.is_empty() {
                stream.push_str(&format!("event: {event}\n"));
            }
            for line in lines {
                stream.push_str(&format!("data: {line}\r\n"));
            }
            stream.push('\n');
        }
        let expected: Vec<SseEvent> = events
            .iter()
            .map(|(event, lines)| SseEvent { event: event.clone(), data: lines.join("\n") })
            .collect();
        let outcome = parse(&split(stream.as_bytes(), &cuts), completion_openai::sse::DEFAULT_LIMIT);
        prop_assert_eq!(outcome, Outcome { events: expected, error: None, pending: None });
    }
}
