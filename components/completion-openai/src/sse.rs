//! Incremental `text/event-stream` parser (WHATWG HTML, "Server-sent events",
//! interpreting an event stream), fed with upstream bytes as they arrive.
//!
//! Lines end in CRLF, LF or CR, and a chunk may end anywhere: inside a line, inside a
//! UTF-8 sequence, or between the CR and LF of one line break. Lines are split on
//! bytes (CR and LF never occur inside a UTF-8 sequence) and decoded whole.
//! `id` and `retry` fields are ignored: the component never reconnects.

/// One dispatched event. `event` is empty when the stream set no event type
/// (the spec's default type, `message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// A line or an event's data grew past the limit: the upstream is not speaking SSE.
    TooLong { limit: usize },
}

/// The largest line or event data accepted; chat chunks are a few hundred bytes.
pub const DEFAULT_LIMIT: usize = 1 << 20;

#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    data: String,
    event: String,
    /// The last byte fed was a CR, so a LF starting the next chunk belongs to it.
    after_cr: bool,
    first_line: bool,
    limit: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::with_limit(DEFAULT_LIMIT)
    }
}

impl SseParser {
    pub fn with_limit(limit: usize) -> SseParser {
        SseParser {
            line: Vec::new(),
            data: String::new(),
            event: String::new(),
            after_cr: false,
            first_line: true,
            limit,
        }
    }

    /// Parses `bytes`, appending every event completed by them to `events`.
    pub fn feed(&mut self, mut bytes: &[u8], events: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if std::mem::take(&mut self.after_cr) && bytes[0] == b'\n' {
            bytes = &bytes[1..];
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\r' || b == b'\n') {
            self.line.extend_from_slice(&bytes[..end]);
            self.check_line_length()?;
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, events)?;
            let rest = &bytes[end + 1..];
            bytes = if bytes[end] == b'\r' {
                match rest.first() {
                    Some(b'\n') => &rest[1..],
                    Some(_) => rest,
                    None => {
                        self.after_cr = true;
                        rest
                    }
                }
            } else {
                rest
            };
        }
        self.line.extend_from_slice(bytes);
        self.check_line_length()
    }

    /// The stream ended. Per the spec, an event not yet terminated by a blank line is
    /// not dispatched, and an unterminated last line may be cut short, so neither is
    /// returned as an event. The pending event made of complete lines is returned for
    /// the caller to inspect (some servers omit the blank line after `data: [DONE]`).
    pub fn finish(mut self) -> Option<SseEvent> {
        if self.data.is_empty() {
            return None;
        }
        self.data.pop();
        Some(SseEvent {
            event: self.event,
            data: self.data,
        })
    }

    fn check_line_length(&self) -> Result<(), SseError> {
        if self.line.len() > self.limit {
            Err(SseError::TooLong { limit: self.limit })
        } else {
            Ok(())
        }
    }

    fn process_line(&mut self, line: &[u8], events: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let decoded = String::from_utf8_lossy(line);
        let mut line: &str = &decoded;
        if std::mem::take(&mut self.first_line) {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(events);
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > self.limit {
                    return Err(SseError::TooLong { limit: self.limit });
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => self.event = value.to_string(),
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        events.push(SseEvent { event, data });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut events).unwrap();
        }
        events
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    fn message(data: &str) -> SseEvent {
        SseEvent {
            event: String::new(),
            data: data.into(),
        }
    }

    /// A stream exercising every rule: comments, CRLF/CR/LF, multi-line data, a field
    /// without a space, an `event:` type, unknown fields, a BOM and multi-byte text.
    const TRANSCRIPT: &str = "\u{feff}: keep-alive\r\n\r\ndata: {\"a\":\"héllo 👋\"}\r\n\r\ndata:first\ndata: second\nid: 7\nretry: 10\n\nevent: error\ndata: {\"error\":{}}\r\rdata: [DONE]\n\n";

    fn transcript_events() -> Vec<SseEvent> {
        vec![
            message("{\"a\":\"héllo 👋\"}"),
            message("first\nsecond"),
            SseEvent {
                event: "error".into(),
                data: "{\"error\":{}}".into(),
            },
            message("[DONE]"),
        ]
    }

    #[test]
    fn parses_the_transcript_in_one_chunk() {
        assert_eq!(parse_chunks(&[TRANSCRIPT.as_bytes()]), transcript_events());
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let bytes = TRANSCRIPT.as_bytes();
        for split in 0..=bytes.len() {
            let (head, tail) = bytes.split_at(split);
            assert_eq!(
                parse_chunks(&[head, tail]),
                transcript_events(),
                "split at byte {split}"
            );
        }
    }

    #[test]
    fn every_pair_of_split_points_gives_the_same_events() {
        let bytes = TRANSCRIPT.as_bytes();
        for first in 0..=bytes.len() {
            for second in first..=bytes.len() {
                let chunks = [&bytes[..first], &bytes[first..second], &bytes[second..]];
                assert_eq!(
                    parse_chunks(&chunks),
                    transcript_events(),
                    "splits at {first} and {second}"
                );
            }
        }
    }

    #[test]
    fn byte_at_a_time_gives_the_same_events() {
        let chunks: Vec<&[u8]> = TRANSCRIPT.as_bytes().chunks(1).collect();
        assert_eq!(parse_chunks(&chunks), transcript_events());
    }

    #[test]
    fn cr_at_chunk_end_followed_by_a_non_lf_is_one_line_break() {
        // "data: a\r" | "\r" is an event end (two CR line breaks), not CRLF.
        assert_eq!(
            data(&parse_chunks(&[b"data: a\r", b"\rdata: b\r", b"\n\r\n"])),
            ["a", "b"]
        );
    }

    #[test]
    fn only_one_leading_space_is_removed_from_values() {
        assert_eq!(
            data(&parse_chunks(&[b"data:  two spaces\n\n"])),
            [" two spaces"]
        );
        assert_eq!(data(&parse_chunks(&[b"data\n\n"])), [""]);
        assert_eq!(data(&parse_chunks(&[b"data: a:b:c\n\n"])), ["a:b:c"]);
    }

    #[test]
    fn events_without_data_are_not_dispatched_and_reset_the_type() {
        let events = parse_chunks(&[b"event: ping\n\n: comment\n\ndata: x\n\n"]);
        assert_eq!(events, [message("x")]);
    }

    #[test]
    fn bom_is_only_stripped_at_the_start() {
        assert_eq!(
            data(&parse_chunks(&[
                b"data: 1\n\n",
                "\u{feff}data: 2\n\n".as_bytes()
            ])),
            ["1"],
            "a BOM later on makes the line a field named \\u{{feff}}data, which is ignored"
        );
    }

    #[test]
    fn unterminated_event_is_left_for_finish() {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        parser
            .feed(b"data: {\"x\":1}\n\ndata: [DONE]\n", &mut events)
            .unwrap();
        assert_eq!(data(&events), ["{\"x\":1}"]);
        assert_eq!(parser.finish(), Some(message("[DONE]")));
    }

    #[test]
    fn finish_ignores_an_unterminated_last_line() {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        parser.feed(b"data: [DO", &mut events).unwrap();
        assert!(events.is_empty());
        assert_eq!(parser.finish(), None);
    }

    #[test]
    fn overlong_lines_and_data_are_rejected() {
        let mut parser = SseParser::with_limit(16);
        let mut events = Vec::new();
        assert_eq!(
            parser.feed(&[b'x'; 17], &mut events),
            Err(SseError::TooLong { limit: 16 })
        );
        let mut parser = SseParser::with_limit(16);
        assert_eq!(
            parser.feed(b"data: 0123456789\ndata: 0123456789\n", &mut events),
            Err(SseError::TooLong { limit: 16 })
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(data(&parse_chunks(&[b"data: \xff\n\n"])), ["\u{fffd}"]);
    }
}
