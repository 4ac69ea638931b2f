//! A local OpenAI-compatible upstream (the test double for OpenAI / Azure OpenAI): it
//! speaks the real `/v1/chat/completions` wire protocol, JSON and SSE, records every
//! request it receives, and can be scripted to fail the way real upstreams do
//! ([`Behaviour`]: error statuses with `Retry-After`, stalls, cut or malformed streams,
//! a wrong content type). It also serves as any other HTTP peer of the gateway, such
//! as a managed-identity token endpoint ([`Upstream::start`] with [`Answer::json`]).

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path_and_query: String,
    pub headers: http::HeaderMap,
    pub body: serde_json::Value,
}

/// How a response ends once its body (and any held-back part) has been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Complete,
    /// The connection is aborted: the client sees the body break off.
    Cut,
    /// The response stays open and silent for good.
    Silence,
}

/// What the upstream answers.
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Sent after `body` once the gate opens: lets a test observe what the gateway
    /// forwards while the upstream is still mid-response.
    pub held_back: Option<(Arc<tokio::sync::Notify>, String)>,
    pub ending: Ending,
    /// Accept the request and never send a response head.
    pub stall: bool,
    /// Wait this long before sending the response head (a slow first byte).
    pub delay: Option<std::time::Duration>,
    /// Accept the request, then abort the connection with a TCP reset instead of answering.
    pub reset: bool,
}

impl Answer {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
            held_back: None,
            ending: Ending::Complete,
            stall: false,
            delay: None,
            reset: false,
        }
    }

    pub fn json(status: u16, body: &serde_json::Value) -> Answer {
        Answer::new(status, "application/json", body.to_string())
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    /// This answer, its head sent only after `delay`.
    pub fn with_delay(mut self, delay: std::time::Duration) -> Answer {
        self.delay = Some(delay);
        self
    }

    /// No answer: the connection is reset once the request has been read.
    pub fn reset() -> Answer {
        Answer {
            reset: true,
            ..Answer::new(200, "application/json", "")
        }
    }
}

/// What a scripted upstream does with one request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// The normal answer, streamed when asked.
    Answer,
    /// An OpenAI-style error with this status and these headers.
    Error {
        status: u16,
        headers: Vec<(&'static str, String)>,
    },
    /// Accept the request and never answer it; the connection stays open.
    Stall,
    /// A streamed answer whose connection is aborted after this many SSE events.
    CutAfter(usize),
    /// A streamed answer that goes silent after this many SSE events.
    SilentAfter(usize),
    /// A streamed answer whose event after this many is not JSON.
    MalformedAfter(usize),
    /// `200` with an HTML page, as a captive proxy or a misrouted origin answers.
    Html,
}

impl Behaviour {
    /// An error status without retry headers.
    pub fn status(status: u16) -> Behaviour {
        Behaviour::Error {
            status,
            headers: Vec::new(),
        }
    }
}

type Handler = dyn Fn(&Recorded) -> Answer + Send + Sync;

pub struct Upstream {
    pub origin: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Serves `handler` on an ephemeral loopback port.
    pub async fn start(handler: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Upstream::start_on(listener, handler)
    }

    /// Serves `handler` on `listener` (e.g. an address in another network namespace).
    pub fn start_on(
        listener: tokio::net::TcpListener,
        handler: impl Fn(&Recorded) -> Answer + Send + Sync + 'static,
    ) -> Upstream {
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                let recorded = recorded.clone();
                // A second handle on the socket, for an answer that resets the connection.
                let twin = Arc::new(Mutex::new(
                    std::os::fd::AsFd::as_fd(&stream).try_clone_to_owned().ok(),
                ));
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        let recorded = recorded.clone();
                        let twin = twin.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let request = Recorded {
                                method: parts.method.to_string(),
                                path_and_query: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: parts.headers,
                                body: serde_json::from_slice(&body)
                                    .unwrap_or(serde_json::Value::Null),
                            };
                            let answer = handler(&request);
                            recorded.lock().unwrap().push(request);
                            if answer.stall {
                                std::future::pending::<()>().await;
                            }
                            if let Some(delay) = answer.delay {
                                tokio::time::sleep(delay).await;
                            }
                            if answer.reset {
                                // Zero linger: closing the socket sends RST, not FIN.
                                if let Some(fd) = twin.lock().unwrap().take() {
                                    let socket = tokio::net::TcpSocket::from_std_stream(fd.into());
                                    let _ = socket.set_zero_linger();
                                }
                                return Err::<http::Response<Frames>, BodyError>(
                                    "connection reset by the test".into(),
                                );
                            }
                            let mut response = http::Response::builder()
                                .status(answer.status)
                                .header("content-type", answer.content_type);
                            for (name, value) in &answer.headers {
                                response = response.header(*name, value);
                            }
                            let response = response.body(body_of(answer)).unwrap();
                            Ok::<_, BodyError>(response)
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Upstream {
            origin,
            requests,
            task,
        }
    }

    /// Like [`Upstream::openai`], but a streamed answer stops after its first words
    /// until `gate` is notified.
    pub async fn openai_held(answer: &'static str, gate: Arc<tokio::sync::Notify>) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Upstream::openai_held_on(listener, answer, gate)
    }

    /// [`Upstream::openai_held`] on `listener`.
    pub fn openai_held_on(
        listener: tokio::net::TcpListener,
        answer: &'static str,
        gate: Arc<tokio::sync::Notify>,
    ) -> Upstream {
        Upstream::start_on(listener, move |request| {
            let mut full = openai_answer(request, answer);
            if full.content_type == "text/event-stream" {
                // Split after the second event: the role chunk and the first word.
                let split = split_after_events(&full.body, 2);
                let rest = full.body.split_off(split);
                full.held_back = Some((gate.clone(), rest));
            }
            full
        })
    }

    /// An OpenAI-compatible model that always answers `answer` (streamed word by word when asked).
    pub async fn openai(answer: &'static str) -> Upstream {
        Upstream::start(move |request| openai_answer(request, answer)).await
    }

    /// An OpenAI-compatible model answering `answer` whose n-th request gets the n-th
    /// behaviour of `script`; requests beyond the script get [`Behaviour::Answer`].
    pub async fn scripted(answer: &'static str, script: Vec<Behaviour>) -> Upstream {
        let script = Mutex::new(VecDeque::from(script));
        Upstream::start(move |request| {
            let behaviour = script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Behaviour::Answer);
            behave(request, answer, behaviour)
        })
        .await
    }

    /// A model that fails every request the same way.
    pub async fn always(behaviour: Behaviour) -> Upstream {
        Upstream::start(move |request| behave(request, "unused", behaviour.clone())).await
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// How many requests have reached the upstream.
    pub fn hits(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// The answer of `behaviour` to `request`.
fn behave(request: &Recorded, answer: &str, behaviour: Behaviour) -> Answer {
    let streamed = |events: usize, ending: Ending, tail: &str| {
        let mut full = openai_answer(request, answer);
        assert_eq!(
            full.content_type, "text/event-stream",
            "stream faults need a streamed request"
        );
        full.body.truncate(split_after_events(&full.body, events));
        full.body.push_str(tail);
        full.ending = ending;
        full
    };
    match behaviour {
        Behaviour::Answer => openai_answer(request, answer),
        Behaviour::Error { status, headers } => {
            let (kind, code) = match status {
                429 => ("requests", "rate_limit_exceeded"),
                400..=499 => ("invalid_request_error", "invalid_request"),
                _ => ("server_error", "server_error"),
            };
            let body = serde_json::json!({"error": {
                "message": format!("scripted failure {status}"), "type": kind, "param": null, "code": code,
            }});
            let mut error = Answer::json(status, &body);
            error.headers = headers;
            error
        }
        Behaviour::Stall => Answer {
            stall: true,
            ..Answer::new(200, "text/event-stream", "")
        },
        Behaviour::CutAfter(events) => streamed(events, Ending::Cut, ""),
        Behaviour::SilentAfter(events) => streamed(events, Ending::Silence, ""),
        Behaviour::MalformedAfter(events) => streamed(
            events,
            Ending::Complete,
            "data: {\"choices\": [{\"delta\": {\"content\": \"unterminated\n\ndata: [DONE]\n\n",
        ),
        Behaviour::Html => Answer::new(
            200,
            "text/html; charset=utf-8",
            "<html><body>Sign in to continue</body></html>",
        ),
    }
}

/// The byte offset just after the first `events` SSE events of `body`.
fn split_after_events(body: &str, events: usize) -> usize {
    if events == 0 {
        return 0;
    }
    body.match_indices("\n\n")
        .nth(events - 1)
        .map(|(i, _)| i + 2)
        .unwrap_or(body.len())
}

/// OpenAI's `chat.completion` (or its SSE `chat.completion.chunk` stream) for `answer`.
pub fn openai_answer(request: &Recorded, answer: &str) -> Answer {
    let model = request.body["model"]
        .as_str()
        .unwrap_or("gpt-test")
        .to_string();
    if request.body["stream"] == serde_json::json!(true) {
        let mut events = Vec::new();
        let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
            serde_json::json!({
                "id": "chatcmpl-upstream", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
            })
        };
        events.push(chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            serde_json::Value::Null,
        ));
        for (i, word) in answer.split(' ').enumerate() {
            let piece = if i == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            };
            events.push(chunk(
                serde_json::json!({"content": piece}),
                serde_json::Value::Null,
            ));
        }
        events.push(chunk(serde_json::json!({}), serde_json::json!("stop")));
        events.push(serde_json::json!({
            "id": "chatcmpl-upstream", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        }));
        let mut body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        body.push_str("data: [DONE]\n\n");
        Answer::new(200, "text/event-stream", body)
    } else {
        let body = serde_json::json!({
            "id": "chatcmpl-upstream", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        });
        Answer::json(200, &body)
    }
}

type BodyError = Box<dyn std::error::Error + Send + Sync>;

type Frames = http_body_util::StreamBody<
    std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<hyper::body::Frame<Bytes>, BodyError>> + Send>,
    >,
>;

/// The response body: `body`, then, once the gate opens, whatever was held back,
/// then the answer's ending.
fn body_of(answer: Answer) -> Frames {
    use futures_util::StreamExt;
    let first = futures_util::stream::once(async move {
        Ok(hyper::body::Frame::data(Bytes::from(answer.body)))
    });
    let rest = futures_util::stream::iter(answer.held_back).then(|(gate, rest)| async move {
        gate.notified().await;
        Ok(hyper::body::Frame::data(Bytes::from(rest)))
    });
    let ending = match answer.ending {
        Ending::Complete => futures_util::stream::empty().boxed(),
        // The pause lets hyper flush what was sent before the connection is aborted,
        // which would otherwise discard it.
        Ending::Cut => futures_util::stream::once(async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            Err::<hyper::body::Frame<Bytes>, BodyError>("connection cut by the test".into())
        })
        .boxed(),
        Ending::Silence => futures_util::stream::pending().boxed(),
    };
    http_body_util::StreamBody::new(first.chain(rest).chain(ending).boxed())
}
