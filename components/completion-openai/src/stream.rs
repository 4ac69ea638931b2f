//! Turns the bytes of a streamed chat completion into text deltas and, at the end,
//! a `stream-end` or the error that cut the answer short.
//!
//! Only `data: [DONE]` ends an answer successfully: a stream that closes without it
//! was cut (`upstream-unavailable`). A malformed chunk is `internal` (see
//! `response`), and `data: {"error": ...}` is mapped like an error body.

use crate::errors::{error_for_error_object, sanitize};
use crate::response::parse_chunk;
use crate::sse::{SseError, SseEvent, SseParser};
use chatgate_rag::completion::{CompletionError, FinishReason, StreamEnd, Usage};

/// What one piece of upstream bytes produced.
#[derive(Debug, Default, PartialEq)]
pub struct Progress {
    /// Text to forward, in order; never empty strings.
    pub deltas: Vec<String>,
    /// Set once the answer is over; later input is ignored.
    pub outcome: Option<Result<StreamEnd, CompletionError>>,
}

#[derive(Debug)]
pub struct StreamDecoder {
    sse: SseParser,
    requested_model: String,
    secret: Option<String>,
    model: Option<String>,
    /// The upstream's id of the answer, from the first chunk that names one.
    id: Option<String>,
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    begun: bool,
    over: bool,
}

impl StreamDecoder {
    /// `requested_model` is reported if no chunk names a model; `secret` is redacted
    /// from any upstream text.
    pub fn new(requested_model: &str, secret: Option<&str>) -> StreamDecoder {
        StreamDecoder {
            sse: SseParser::default(),
            requested_model: requested_model.to_string(),
            secret: secret.map(str::to_string),
            model: None,
            id: None,
            finish_reason: None,
            usage: None,
            begun: false,
            over: false,
        }
    }

    /// Whether the answer has begun: a chunk named the model or carried text. Until
    /// then the request may still be retried elsewhere; after it, never.
    pub fn has_begun(&self) -> bool {
        self.begun
    }

    /// The upstream's id of the answer, once a chunk has named one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The model answering, as the upstream names it, else the one requested.
    pub fn model(&self) -> &str {
        self.model.as_deref().unwrap_or(&self.requested_model)
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Progress {
        let mut progress = Progress::default();
        if self.over {
            return progress;
        }
        let mut events = Vec::new();
        let parsed = self.sse.feed(bytes, &mut events);
        // Events completed before a parse error are still forwarded.
        for event in events {
            if let Some(outcome) = self.apply(event, &mut progress.deltas) {
                progress.outcome = Some(outcome);
                break;
            }
        }
        if progress.outcome.is_none()
            && let Err(SseError::TooLong { limit }) = parsed
        {
            progress.outcome = Some(Err(CompletionError::Internal(format!(
                "the upstream event stream has a line or event over {limit} bytes"
            ))));
        }
        self.over = progress.outcome.is_some();
        progress
    }

    /// The upstream body ended (cleanly, as far as the transport knows).
    pub fn finish(mut self) -> Result<StreamEnd, CompletionError> {
        match std::mem::take(&mut self.sse).finish() {
            Some(pending) if pending.data.trim() == "[DONE]" => Ok(self.end()),
            _ => Err(CompletionError::UpstreamUnavailable(
                "the upstream closed the stream before the answer was complete".into(),
            )),
        }
    }

    fn end(&mut self) -> StreamEnd {
        StreamEnd {
            model: self
                .model
                .take()
                .unwrap_or_else(|| self.requested_model.clone()),
            finish_reason: self.finish_reason.unwrap_or(FinishReason::Stop),
            usage: self.usage,
        }
    }

    fn apply(
        &mut self,
        event: SseEvent,
        deltas: &mut Vec<String>,
    ) -> Option<Result<StreamEnd, CompletionError>> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Some(Ok(self.end()));
        }
        let secret = self.secret.as_deref();
        if event.event == "error" {
            return Some(Err(match serde_json::from_str::<serde_json::Value>(data) {
                Ok(value) => error_for_error_object(value.get("error").unwrap_or(&value), secret),
                Err(_) if data.is_empty() => {
                    CompletionError::UpstreamUnavailable("the upstream sent an error event".into())
                }
                Err(_) => CompletionError::UpstreamUnavailable(sanitize(data, secret)),
            }));
        }
        if data.is_empty() {
            return None;
        }
        match parse_chunk(data, secret) {
            Err(error) => Some(Err(error)),
            Ok(chunk) => {
                self.begun |= chunk.model.is_some() || chunk.content.is_some();
                if chunk.model.is_some() {
                    self.model = chunk.model;
                }
                if self.id.is_none() {
                    self.id = chunk.id;
                }
                if chunk.finish_reason.is_some() {
                    self.finish_reason = chunk.finish_reason;
                }
                if chunk.usage.is_some() {
                    self.usage = chunk.usage;
                }
                deltas.extend(chunk.content);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAI_STREAM: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        ": OPENROUTER PROCESSING\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Zones \"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"are 🌍 isolated.\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":4,\"total_tokens\":16}}\n\n",
        "data: [DONE]\n\n",
    );

    fn expected_end() -> StreamEnd {
        StreamEnd {
            model: "gpt-4o-mini-2024-07-18".into(),
            finish_reason: FinishReason::Length,
            usage: Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 4,
            }),
        }
    }

    /// Feeds `chunks` like the adapter does: stop at the first outcome, otherwise
    /// `finish` when the body ends.
    fn run(chunks: &[&[u8]]) -> (Vec<String>, Result<StreamEnd, CompletionError>) {
        let mut decoder = StreamDecoder::new("requested", Some("sk-secret"));
        let mut deltas = Vec::new();
        for chunk in chunks {
            let progress = decoder.feed(chunk);
            deltas.extend(progress.deltas);
            if let Some(outcome) = progress.outcome {
                return (deltas, outcome);
            }
        }
        (deltas, decoder.finish())
    }

    #[test]
    fn the_first_chunk_naming_an_id_gives_the_answers_id() {
        let mut decoder = StreamDecoder::new("requested", None);
        assert_eq!(decoder.id(), None);
        decoder.feed(OPENAI_STREAM.as_bytes());
        assert_eq!(decoder.id(), Some("c1"));
    }

    #[test]
    fn openai_stream_gives_deltas_then_end_with_usage() {
        let (deltas, outcome) = run(&[OPENAI_STREAM.as_bytes()]);
        assert_eq!(deltas, ["Zones ", "are 🌍 isolated."]);
        assert_eq!(outcome, Ok(expected_end()));
    }

    #[test]
    fn every_split_point_gives_the_same_answer() {
        let bytes = OPENAI_STREAM.as_bytes();
        for split in 0..=bytes.len() {
            let (head, tail) = bytes.split_at(split);
            let (deltas, outcome) = run(&[head, tail]);
            assert_eq!(deltas.concat(), "Zones are 🌍 isolated.", "split {split}");
            assert_eq!(outcome, Ok(expected_end()), "split {split}");
        }
    }

    #[test]
    fn crlf_stream_byte_by_byte() {
        let crlf = OPENAI_STREAM.replace('\n', "\r\n");
        let chunks: Vec<&[u8]> = crlf.as_bytes().chunks(1).collect();
        let (deltas, outcome) = run(&chunks);
        assert_eq!(deltas, ["Zones ", "are 🌍 isolated."]);
        assert_eq!(outcome, Ok(expected_end()));
    }

    #[test]
    fn deltas_are_available_as_soon_as_their_event_completes() {
        let mut decoder = StreamDecoder::new("m", None);
        let first =
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"cho";
        assert_eq!(
            decoder.feed(first),
            Progress {
                deltas: vec!["a".into()],
                outcome: None
            }
        );
        let rest = b"ices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n";
        assert_eq!(decoder.feed(rest).deltas, ["b"]);
    }

    #[test]
    fn stream_without_model_or_usage_reports_requested_model_and_stop() {
        let (deltas, outcome) =
            run(&[b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n"]);
        assert_eq!(deltas, ["hi"]);
        assert_eq!(
            outcome,
            Ok(StreamEnd {
                model: "requested".into(),
                finish_reason: FinishReason::Stop,
                usage: None
            })
        );
    }

    #[test]
    fn done_without_trailing_blank_line_still_ends_the_answer() {
        let (_, outcome) = run(&[b"data: {\"choices\":[]}\n\ndata: [DONE]\n"]);
        assert!(outcome.is_ok(), "{outcome:?}");
    }

    #[test]
    fn bytes_after_done_are_ignored() {
        let mut decoder = StreamDecoder::new("m", None);
        assert!(decoder.feed(b"data: [DONE]\n\n").outcome.unwrap().is_ok());
        assert_eq!(
            decoder.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n"),
            Progress::default()
        );
    }

    #[test]
    fn stream_closed_before_done_is_upstream_unavailable() {
        let bytes = OPENAI_STREAM.as_bytes();
        let done_at = OPENAI_STREAM.find("data: [DONE]").unwrap();
        for cut in [0, 10, done_at, done_at + 8] {
            let (_, outcome) = run(&[&bytes[..cut]]);
            assert!(
                matches!(outcome, Err(CompletionError::UpstreamUnavailable(_))),
                "cut at {cut}: {outcome:?}"
            );
        }
    }

    #[test]
    fn malformed_chunk_is_internal_after_forwarding_earlier_deltas() {
        let (deltas, outcome) = run(&[
            b"data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\ndata: {not json}\n\ndata: [DONE]\n\n",
        ]);
        assert_eq!(deltas, ["ok"]);
        assert!(
            matches!(outcome, Err(CompletionError::Internal(_))),
            "{outcome:?}"
        );
    }

    #[test]
    fn error_data_event_cuts_the_answer() {
        let (deltas, outcome) = run(&[
            b"data: {\"choices\":[{\"delta\":{\"content\":\"par\"}}]}\n\n",
            b"data: {\"error\":{\"message\":\"The server had an error (key sk-secret)\",\"type\":\"server_error\"}}\n\n",
        ]);
        assert_eq!(deltas, ["par"]);
        assert_eq!(
            outcome,
            Err(CompletionError::UpstreamUnavailable(
                "The server had an error (key [redacted])".into()
            ))
        );
    }

    #[test]
    fn typed_error_event_is_an_error_even_without_error_key() {
        let (_, outcome) = run(&[
            b"event: error\ndata: {\"message\":\"quota\",\"type\":\"rate_limit_error\"}\n\n",
        ]);
        assert_eq!(
            outcome,
            Err(CompletionError::RateLimited {
                retry_after_seconds: 1,
                message: "quota".into()
            })
        );
        let (_, outcome) = run(&[b"event: error\ndata: upstream overloaded\n\n"]);
        assert_eq!(
            outcome,
            Err(CompletionError::UpstreamUnavailable(
                "upstream overloaded".into()
            ))
        );
    }

    #[test]
    fn content_filter_finish_is_an_end_not_an_error() {
        let (deltas, outcome) = run(&[
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Some\"}}]}\n\n",
            b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}]}\n\n",
            b"data: [DONE]\n\n",
        ]);
        assert_eq!(deltas, ["Some"]);
        assert_eq!(outcome.unwrap().finish_reason, FinishReason::ContentFilter);
    }

    #[test]
    fn blank_data_events_are_keep_alives() {
        let (deltas, outcome) = run(&[b"data:\n\ndata: \n\ndata: [DONE]\n\n"]);
        assert!(deltas.is_empty());
        assert!(outcome.is_ok());
    }

    #[test]
    fn endless_line_is_internal() {
        let mut decoder = StreamDecoder::new("m", None);
        let junk = vec![b'x'; crate::sse::DEFAULT_LIMIT + 1];
        assert!(matches!(
            decoder.feed(&junk).outcome,
            Some(Err(CompletionError::Internal(_)))
        ));
    }

    #[test]
    fn the_answer_begins_with_the_first_chunk_naming_a_model_or_carrying_text() {
        let mut decoder = StreamDecoder::new("requested", None);
        assert_eq!(decoder.model(), "requested");
        // Azure's prompt filter results: no model, no choices.
        decoder.feed(b"data: {\"model\":\"\",\"choices\":[],\"prompt_filter_results\":[]}\n\n");
        assert!(!decoder.has_begun());
        decoder.feed(b": keep-alive\n\ndata: {\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n");
        assert!(decoder.has_begun());
        assert_eq!(decoder.model(), "gpt-4o-2024-08-06");

        let mut nameless = StreamDecoder::new("requested", None);
        nameless.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n");
        assert!(nameless.has_begun());
        assert_eq!(nameless.model(), "requested");
    }
}
