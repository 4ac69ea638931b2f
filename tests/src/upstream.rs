//! A local OpenAI-compatible upstream (the test double for OpenAI / Azure OpenAI): it
//! speaks the real `/v1/chat/completions` wire protocol, JSON and SSE, and records
//! every request it receives.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path_and_query: String,
    pub headers: http::HeaderMap,
    pub body: serde_json::Value,
}

/// What the upstream answers.
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Sent after `body` once the gate opens: lets a test observe what the gateway
    /// forwards while the upstream is still mid-response.
    pub held_back: Option<(Arc<tokio::sync::Notify>, String)>,
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
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        let recorded = recorded.clone();
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
                            let response = http::Response::builder()
                                .status(answer.status)
                                .header("content-type", answer.content_type)
                                .body(body_of(answer))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(response)
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
        Upstream::start(move |request| {
            let mut full = openai_answer(request, answer);
            if full.content_type == "text/event-stream" {
                // Split after the second event: the role chunk and the first word.
                let split = full
                    .body
                    .match_indices("\n\n")
                    .nth(1)
                    .map(|(i, _)| i + 2)
                    .unwrap_or(0);
                let rest = full.body.split_off(split);
                full.held_back = Some((gate.clone(), rest));
            }
            full
        })
        .await
    }

    /// An OpenAI-compatible model that always answers `answer` (streamed word by word when asked).
    pub async fn openai(answer: &'static str) -> Upstream {
        Upstream::start(move |request| openai_answer(request, answer)).await
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
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
        Answer {
            status: 200,
            content_type: "text/event-stream",
            body,
            held_back: None,
        }
    } else {
        let body = serde_json::json!({
            "id": "chatcmpl-upstream", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        });
        Answer {
            status: 200,
            content_type: "application/json",
            body: body.to_string(),
            held_back: None,
        }
    }
}

type Frames = http_body_util::StreamBody<
    std::pin::Pin<
        Box<
            dyn futures_util::Stream<
                    Item = Result<hyper::body::Frame<Bytes>, std::convert::Infallible>,
                > + Send,
        >,
    >,
>;

/// The response body: `body`, then, once the gate opens, whatever was held back.
fn body_of(answer: Answer) -> Frames {
    use futures_util::StreamExt;
    let first = futures_util::stream::once(async move {
        Ok(hyper::body::Frame::data(Bytes::from(answer.body)))
    });
    let rest = futures_util::stream::iter(answer.held_back).then(|(gate, rest)| async move {
        gate.notified().await;
        Ok(hyper::body::Frame::data(Bytes::from(rest)))
    });
    http_body_util::StreamBody::new(first.chain(rest).boxed())
}
