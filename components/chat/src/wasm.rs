//! The Spin adapter: HTTP in and out, variables, and the `retriever` /
//! `completion` imports. Decisions live in the native modules.

use spin_sdk::http::Response;
use spin_sdk::wasip3::exports::http::handler::Guest;
use spin_sdk::wasip3::http::types::{self, ErrorCode, Fields};
use spin_sdk::wasip3::wit_bindgen::StreamResult;
use spin_sdk::wasip3::{wit_bindgen, wit_future, wit_stream};

use crate::budget::{self, Grounding};
use crate::domain::{
    Completion, CompletionFailure, FinishReason, Passage, RetrievalFailure, Usage,
};
use crate::error::ApiError;
use crate::quota::{self, Limits};
use crate::request::{ChatRequest, MAX_BODY_BYTES, parse_chat_request};
use crate::routes::{Route, require_api_version, route};
use crate::settings::{Settings, Variables};
use crate::sse::ChunkHeader;
use crate::{genai, prompt, response, sse, tokens};
use chatgate_guest::VariableValue;
use chatgate_guest::trace_context::{SPAN_ENTROPY_LEN, Span, TraceParent};
use chatgate_guest_otel::{Kind, StageSpan, Tracer};

/// The event `chat`'s `completion` span records when a streamed answer's first token
/// arrives from the completion component.
const FIRST_TOKEN_RELAYED: &str = "chatgate.first_token";
use std::borrow::Cow;
use std::sync::OnceLock;

mod bindings {
    spin_sdk::wit_bindgen::generate!({
        path: "../../wit",
        world: "orchestrator",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });
}

use bindings::chatgate::{completion::completion, retriever::retriever};
chatgate_rag::retriever_conversions!(bindings::chatgate::retriever::retriever);
chatgate_rag::completion_conversions!(bindings::chatgate::completion::completion);
use bindings::wasi::keyvalue::{atomics, store};
// Links the eight-bytes-at-a-time `memcmp` over wasi-libc's (crates/memcmp).
use chatgate_memcmp as _;
// Installs the size-class cache in front of dlmalloc as the allocator (crates/guest-alloc).
use chatgate_guest_alloc as _;

/// The key-value store quotas are counted in.
const QUOTA_STORE: &str = "default";

/// Random bytes in a completion id: as many as OpenAI's ids carry entropy.
const COMPLETION_ID_RANDOM_BYTES: u64 = 16;

/// The spans `chat` reports (`wasi:otel/tracing`).
const TRACER: Tracer = Tracer::new("chatgate-chat", env!("CARGO_PKG_VERSION"));

/// Exported by hand rather than with `#[http_service]`, whose conversion to an
/// `http::Request` costs about ten host calls per request (scheme, authority, options,
/// every header copied, the headers asked again for a content length) and answers
/// through spin-sdk's frame-by-frame body pump; `chat` needs the method, the path and
/// two headers, and answers with bodies it holds whole.
struct Chat;

spin_sdk::wasip3::http::service::export!(Chat);

impl Guest for Chat {
    async fn handle(request: types::Request) -> Result<types::Response, ErrorCode> {
        let request = Incoming::new(request)?;
        let mut stage = inward(&request.headers);
        let response = serve(request, &stage).await;
        let status = response.status().as_u16();
        stage.set("http.response.status_code", status);
        if status >= 500 {
            stage.end_error(format!("answered {status}"));
        } else {
            stage.end_unset();
        }
        into_wasi_response(response)
    }
}

/// What `chat` reads of a request: its method and target as the host gave them, its
/// headers (asked for by name when needed), and the request itself for its body.
struct Incoming {
    request: types::Request,
    headers: Fields,
    method: String,
    path_with_query: String,
}

impl Incoming {
    fn new(request: types::Request) -> Result<Self, ErrorCode> {
        let method = match request.get_method() {
            types::Method::Get => "GET".to_string(),
            types::Method::Head => "HEAD".to_string(),
            types::Method::Post => "POST".to_string(),
            types::Method::Put => "PUT".to_string(),
            types::Method::Delete => "DELETE".to_string(),
            types::Method::Connect => "CONNECT".to_string(),
            types::Method::Options => "OPTIONS".to_string(),
            types::Method::Trace => "TRACE".to_string(),
            types::Method::Patch => "PATCH".to_string(),
            // As `http::Method` (which spin-sdk's conversion parsed it into) takes it.
            types::Method::Other(other) => spin_sdk::http::Method::from_bytes(other.as_bytes())
                .map_err(|_| ErrorCode::HttpRequestMethodInvalid)?
                .as_str()
                .to_string(),
        };
        let path_with_query = request.get_path_with_query().unwrap_or_default();
        let headers = request.get_headers();
        Ok(Self {
            request,
            headers,
            method,
            path_with_query,
        })
    }

    /// The path, as `http::Uri::path` gives it.
    fn path(&self) -> &str {
        let path = self
            .path_with_query
            .split_once('?')
            .map_or(self.path_with_query.as_str(), |(path, _)| path);
        if path.is_empty() { "/" } else { path }
    }

    /// The query, as `http::Uri::query` gives it.
    fn query(&self) -> Option<&str> {
        self.path_with_query.split_once('?').map(|(_, query)| query)
    }

    /// The header `name`'s first value if it is visible ASCII (as
    /// `HeaderMap::get(..).to_str()`).
    fn first_header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .into_iter()
            .next()
            .and_then(visible_ascii)
    }
}

/// The only value of a header, if it has exactly one and it is visible ASCII (as
/// `Tracer::inward` takes `traceparent`).
fn single_value(values: Vec<Vec<u8>>) -> Option<String> {
    let mut values = values.into_iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    visible_ascii(first)
}

/// What `HeaderValue::to_str` accepts.
fn visible_ascii(value: Vec<u8>) -> Option<String> {
    if value
        .iter()
        .all(|&byte| byte == b'\t' || (32..127).contains(&byte))
    {
        String::from_utf8(value).ok()
    } else {
        None
    }
}

/// `chat`'s span for the request: what `Tracer::inward` starts, without handing a
/// `traceparent` on in the request's headers (`chat` is the last stage: nothing reads
/// them after it) and without drawing random ids for a span that is not recorded (its
/// ids never leave the component: no span, no log, no `traceparent` for the calls).
fn inward(headers: &Fields) -> StageSpan {
    let incoming = single_value(headers.get("traceparent"))
        .as_deref()
        .and_then(TraceParent::parse);
    let unrecorded = Span::start(incoming, &[1; SPAN_ENTROPY_LEN]);
    if !unrecorded.sampled() {
        return TRACER.adopt("chat", unrecorded);
    }
    let mut entropy = [0u8; SPAN_ENTROPY_LEN];
    chatgate_guest_otel::fill_random(&mut entropy);
    TRACER.adopt("chat", Span::start(incoming, &entropy))
}

/// A span inside `stage`; when `stage` is not recorded, one that is not either, made
/// without drawing the random ids that `StageSpan::child` draws.
fn child_span(stage: &StageSpan, name: &'static str, kind: Kind) -> StageSpan {
    if stage.recording() {
        stage.child(name, kind)
    } else {
        TRACER.child_of(name, None, kind)
    }
}

/// A response's body: whole, or SSE events relayed from the completion as they come.
enum Body {
    Whole(Vec<u8>),
    Events(Box<(Relay, Deltas, StreamEnd)>),
}

/// `response` as a WASI response, its body written straight to the response's stream by
/// one spawned task, with no trailers: a whole body in one write, SSE events one write
/// each. spin-sdk's conversion would copy the body frame by frame through its body pump,
/// and its streaming body queues up to 1024 events in a channel; written directly, each
/// write waits for the host to take the one before, so that the relay does no work ahead
/// of the client. With the channel, the relay formatted and queued every event of an
/// answer that had arrived whole while the response head was still on its way out of
/// the instance (temporary timestamps in `chat`, `latency` bench: the last delta was
/// relayed about 0.3 ms before the client had the head). Written directly, the bench's
/// span from the upstream having the request to the client having the head, p50, in two
/// series alternating this with the channel on a loaded machine: 0.90-1.07 -> 0.54-0.69 ms
/// (three runs each), 0.78-0.88 -> 0.65-0.95 ms (four each; medians 0.86 -> 0.70 ms).
fn into_wasi_response(response: Response<Body>) -> Result<types::Response, ErrorCode> {
    let (parts, body) = response.into_parts();
    let entries: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&entries)
        .map_err(|error| ErrorCode::InternalError(Some(error.to_string())))?;
    let (mut writer, contents) = wit_stream::new();
    // No trailers: the writer dropped unwritten sends the default, `Ok(None)`.
    let (_, trailers) = wit_future::new(|| Ok(None));
    let (response, _) = types::Response::new(headers, Some(contents), trailers);
    // A new response's status is 200 already: one host call fewer for most answers.
    if parts.status != spin_sdk::http::StatusCode::OK {
        let _ = response.set_status_code(parts.status.as_u16());
    }
    match body {
        Body::Whole(body) => wit_bindgen::spawn(async move {
            // A client gone early leaves the rest unwritten; nothing waits for it.
            let _ = writer.write_all(body).await;
        }),
        Body::Events(events) => {
            let (relay, deltas, end) = *events;
            wit_bindgen::spawn(relay_stream(writer, relay, deltas, end));
        }
    }
    Ok(response)
}

/// The `/v1/models` body, rendered from the first settings kept in [`SETTINGS`] (which
/// the instance keeps for good, so the list cannot change under it).
static MODEL_LIST: OnceLock<Vec<u8>> = OnceLock::new();

async fn serve(request: Incoming, stage: &StageSpan) -> Response<Body> {
    let method = request.method.clone();
    let path = request.path().to_string();
    let azure_version = if Route::is_azure(&path) {
        require_api_version(request.query())
    } else {
        Ok(())
    };
    let outcome = match azure_version.and_then(|()| route(&method, &path)) {
        Err(error) => Err(error),
        Ok(Route::Health) => Ok(json_response(200, &serde_json::json!({"status": "ok"}))),
        Ok(Route::ListModels) => load_settings().await.map(|settings| {
            let body = MODEL_LIST.get_or_init(|| {
                response::model_list(&settings.models)
                    .to_string()
                    .into_bytes()
            });
            whole_json_response(200, body.clone())
        }),
        Ok(Route::RetrieveModel(id)) => load_settings().await.and_then(|settings| {
            if settings.models.contains(&id) {
                Ok(json_response(200, &response::model_object(&id)))
            } else {
                Err(ApiError::model_not_found(&id))
            }
        }),
        Ok(Route::ChatCompletions { deployment }) => {
            chat_completions(request, deployment, stage).await
        }
    };
    outcome.unwrap_or_else(|error| error_response(&error))
}

async fn chat_completions(
    request: Incoming,
    deployment: Option<String>,
    stage: &StageSpan,
) -> Result<Response<Body>, ApiError> {
    // Settings first: a misconfigured gateway is reported as such, whatever the body.
    let settings = load_settings().await?;
    let meter = TokenMeter {
        limits: Limits {
            requests_per_minute: settings.requests_per_minute,
            tokens_per_minute: settings.tokens_per_minute,
        },
        subject: subject(&request),
    };
    let allowance = meter.admit().inspect_err(|refused| {
        // Counted for every request, traced or not (`wasi:otel/metrics`).
        chatgate_guest_otel::count(
            &TRACER,
            "chatgate.quota.rejections",
            "Requests refused for their identity's quota, by limit (requests or tokens).",
            &[("chatgate.quota.limit", refused.error_type.into())],
        );
    })?;
    let body = read_body(request).await?;
    let chat = parse_chat_request(&body)?;
    // On Azure's path the deployment names the model, whatever the body says.
    let model = match &deployment {
        Some(deployment) => settings
            .resolve_model(Some(deployment))
            .map_err(|_| ApiError::deployment_not_found(deployment))?,
        None => settings.resolve_model(chat.model.as_deref())?,
    };
    let options = crate::completion_options(&chat, &model, &settings);

    let id = response::completion_id(&spin_sdk::wasip3::random::random::get_random_bytes(
        COMPLETION_ID_RANDOM_BYTES,
    ));
    let created = unix_seconds();

    let (passages, grounding) = if chat.grounding.retrieval {
        let mut span = child_span(stage, "retrieval", Kind::Client);
        let passages = match retrieve(&chat, &settings).await {
            Ok(passages) => passages,
            Err(error) => {
                span.end_error(error.code);
                return Err(error);
            }
        };
        let top_k = chat.grounding.top_k.unwrap_or(settings.top_k);
        span.set_all(|| genai::retrieval_attributes(top_k, &passages));
        span.end_ok();
        if passages.is_empty() {
            let mut response = nothing_relevant(&chat, id, created, model.id);
            insert_headers(&mut response, &allowance.headers);
            return Ok(response);
        }
        (passages, Grounding::Sources)
    } else {
        (Vec::new(), Grounding::None)
    };

    let counter = tokens::Counter::named(settings.tokenizer);
    let fitted = budget::fit(
        passages,
        &chat.messages,
        grounding,
        settings.max_prompt_tokens as usize,
        &counter,
    )?;
    let citations = response::citations(&fitted.passages);
    let messages: Vec<completion::Message> =
        fitted.conversation.into_iter().map(Into::into).collect();
    // The GenAI `chat {model}` span is the completion component's own (its upstream
    // call, with the provider's name), reported as a child of this one; this one is
    // not a model call, so that GenAI-aware backends count the call once (genai.rs).
    let mut span = child_span(stage, "completion", Kind::Internal);
    span.set_all(|| genai::call_attributes(&model.id));
    let mut options = options;
    options.traceparent = span.recording().then(|| span.traceparent());
    let options = options.into();
    let budget_headers = [
        ("x-chatgate-prompt-tokens", fitted.prompt_tokens),
        ("x-chatgate-dropped-messages", fitted.dropped_messages),
        ("x-chatgate-dropped-passages", fitted.dropped_passages),
    ];

    let mut response = if chat.stream {
        let (start, deltas, end) = match completion::complete_stream(messages, options).await {
            Ok(stream) => stream,
            Err(error) => return Err(completion_failed(span, error)),
        };
        let header = ChunkHeader {
            id,
            created,
            model: start.model,
        };
        let relay = Relay {
            header,
            citations,
            include_usage: chat.include_usage,
            meter,
            span,
        };
        stream_response(relay, deltas, end)
    } else {
        let answer = match completion::complete(messages, options).await {
            Ok(answer) => Completion::from(answer),
            Err(error) => return Err(completion_failed(span, error)),
        };
        span.set_all(|| genai::answer_attributes(&id));
        span.end_ok();
        meter.record(answer.usage);
        let body = response::completion_body(&id, created, &answer, citations);
        json_response(200, &body)
    };
    for (name, value) in budget_headers {
        response.headers_mut().insert(name, value.into());
    }
    insert_headers(&mut response, &allowance.headers);
    Ok(response)
}

/// The usable passages for the latest user message, best first.
async fn retrieve(chat: &ChatRequest, settings: &Settings) -> Result<Vec<Passage>, ApiError> {
    let query = chat
        .retrieval_query()
        .ok_or_else(|| {
            ApiError::invalid(
                "messages",
                "invalid_value",
                "'messages' needs a user message with text.",
            )
        })?
        .to_string();
    let filters = chat
        .grounding
        .filters
        .iter()
        .map(|filter| {
            retriever::Filter::from(crate::domain::Filter {
                field: filter.field.clone(),
                value: filter.value.clone(),
            })
        })
        .collect();
    let top_k = chat.grounding.top_k.unwrap_or(settings.top_k);
    let passages = retriever::search(query, top_k, filters)
        .await
        .map_err(|error| {
            let failure = RetrievalFailure::from(error);
            if !matches!(
                failure,
                RetrievalFailure::InvalidQuery(_) | RetrievalFailure::InvalidFilter(_)
            ) {
                // Retrievers redact secrets from their reasons; one line for the operator.
                eprintln!(
                    "chat: retrieval failed: {}",
                    failure.to_string().replace(['\n', '\r'], " ")
                );
            }
            ApiError::from(failure)
        })?;
    Ok(prompt::usable_passages(
        passages.into_iter().map(Passage::from).collect(),
    ))
}

/// Who the quotas count against: the identity `auth` verified.
fn subject(request: &Incoming) -> String {
    request
        .first_header("x-chatgate-subject")
        .unwrap_or_else(|| "anonymous".to_string())
}

/// Quota accounting for one request's identity.
struct TokenMeter {
    limits: Limits,
    subject: String,
}

impl TokenMeter {
    fn admit(&self) -> Result<quota::Allowance, ApiError> {
        if self.limits.is_unlimited() {
            return Ok(quota::Allowance::default());
        }
        match KvCounters::open() {
            Some(counters) => quota::admit(self.limits, &self.subject, unix_seconds(), &counters),
            // Quotas protect capacity; an unavailable store must not take the service down.
            None => Ok(quota::Allowance::default()),
        }
    }

    fn record(&self, usage: Usage) {
        if self.limits.tokens_per_minute.is_none() {
            return;
        }
        if let Some(counters) = KvCounters::open() {
            let tokens = usage.prompt_tokens.saturating_add(usage.completion_tokens);
            quota::record_tokens(
                self.limits,
                &self.subject,
                unix_seconds(),
                tokens,
                &counters,
            );
        }
    }
}

struct KvCounters(store::Bucket);

impl KvCounters {
    fn open() -> Option<KvCounters> {
        store::open(QUOTA_STORE).ok().map(KvCounters)
    }
}

impl quota::Counters for KvCounters {
    type Error = String;

    fn increment(&self, key: &str, delta: i64) -> Result<i64, String> {
        atomics::increment(&self.0, key, delta).map_err(|error| format!("{error:?}"))
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.0.delete(key).map_err(|error| format!("{error:?}"))
    }
}

fn insert_headers(response: &mut Response<Body>, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        if let Ok(value) = spin_sdk::http::HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, value);
        }
    }
}

/// The answer when retrieval found nothing: said plainly, without asking a
/// model that would have no sources to ground on.
fn nothing_relevant(chat: &ChatRequest, id: String, created: u64, model: String) -> Response<Body> {
    let mut response = if chat.stream {
        let header = ChunkHeader { id, created, model };
        let usage = chat.include_usage.then_some(Usage::default());
        let body = sse::whole_answer(
            &header,
            Vec::new(),
            prompt::NOTHING_RELEVANT,
            FinishReason::Stop,
            usage,
        );
        let mut response = Response::new(Body::Whole(body.into_bytes()));
        let headers = response.headers_mut();
        headers.insert("content-type", header_value("text/event-stream"));
        headers.insert("cache-control", header_value("no-cache"));
        response
    } else {
        let answer = Completion {
            model,
            content: prompt::NOTHING_RELEVANT.to_string(),
            finish_reason: FinishReason::Stop,
            usage: Usage::default(),
        };
        json_response(
            200,
            &response::completion_body(&id, created, &answer, Vec::new()),
        )
    };
    response
        .headers_mut()
        .insert("x-chatgate-grounding", header_value("nothing-relevant"));
    response
}

type Deltas = spin_sdk::wit_bindgen::StreamReader<completion::Delta>;
type StreamEnd =
    spin_sdk::wit_bindgen::FutureReader<Result<completion::StreamEnd, completion::CompletionError>>;

/// The completion call failed: its span says so, and the client gets the error.
fn completion_failed(span: StageSpan, error: completion::CompletionError) -> ApiError {
    let error = ApiError::from(CompletionFailure::from(error));
    span.end_error(error.code);
    error
}

/// How a completion span ends when the client stops reading the stream.
const CLIENT_LEFT: &str = "the client closed the stream";

/// What the task relaying a streamed answer needs besides the stream.
struct Relay {
    header: ChunkHeader,
    citations: Vec<serde_json::Value>,
    include_usage: bool,
    meter: TokenMeter,
    /// The completion call's span, ended when the stream ends.
    span: StageSpan,
}

/// Answers at once with an SSE body that a spawned task fills as deltas arrive.
fn stream_response(relay: Relay, deltas: Deltas, end: StreamEnd) -> Response<Body> {
    let mut response = Response::new(Body::Events(Box::new((relay, deltas, end))));
    let headers = response.headers_mut();
    headers.insert("content-type", header_value("text/event-stream"));
    headers.insert("cache-control", header_value("no-cache"));
    response
}

/// Writes the SSE events. A failed send means the client went away: returning
/// then drops the delta stream and the end future, which tells the provider.
async fn relay_stream(
    mut events: wit_bindgen::StreamWriter<u8>,
    relay: Relay,
    mut deltas: Deltas,
    end: StreamEnd,
) {
    let Relay {
        header,
        citations,
        include_usage,
        meter,
        mut span,
    } = relay;
    if !send(&mut events, sse::role_chunk(&header, citations)).await {
        span.end_error(CLIENT_LEFT);
        return;
    }
    let mut first = true;
    while let Some(delta) = deltas.next().await {
        if delta.content.is_empty() {
            continue;
        }
        if first {
            // When the first token reached the gateway; the model's own first token is
            // the completion component's `gen_ai.first_token` (genai.rs: no GenAI
            // convention on this span).
            span.event(FIRST_TOKEN_RELAYED);
            first = false;
        }
        if !send(&mut events, sse::content_chunk(&header, &delta.content)).await {
            span.end_error(CLIENT_LEFT);
            return;
        }
    }
    drop(deltas);
    let closing = match end.await {
        Ok(end) => {
            span.set_all(|| genai::answer_attributes(&header.id));
            span.end_ok();
            if let Some(usage) = end.usage {
                meter.record(usage.into());
            }
            let mut closing = sse::finish_chunk(&header, FinishReason::from(end.finish_reason));
            if include_usage && let Some(usage) = end.usage {
                closing.push_str(&sse::usage_chunk(&header, usage.into()));
            }
            closing.push_str(sse::DONE);
            closing
        }
        Err(error) => sse::error_event(&completion_failed(span, error)),
    };
    // The last events in one write: the client is not waiting for any of them alone.
    send(&mut events, closing).await;
}

/// Writes `event` to the body; false when the client went away (the host dropped the
/// body's reader), leaving it unwritten.
async fn send(events: &mut wit_bindgen::StreamWriter<u8>, event: String) -> bool {
    events.write_all(event.into_bytes()).await.is_empty()
}

/// How much of the body one read asks for (as spin-sdk's body reads).
const READ_SIZE: usize = 16 * 1024;

/// The whole body, refused once it grows past [`MAX_BODY_BYTES`]; unreadable when the
/// host reports the body failed.
async fn read_body(request: Incoming) -> Result<Vec<u8>, ApiError> {
    let Incoming {
        request, headers, ..
    } = request;
    drop(headers);
    // Kept until the body is read; dropped, it tells the host the body was taken.
    let (_consumed, reader) = wit_future::new(|| Ok(()));
    let (mut contents, trailers) = types::Request::consume_body(request, reader);
    let mut body = Vec::new();
    loop {
        // Read straight into the body's spare room: no copy per chunk.
        body.reserve(READ_SIZE);
        let (result, read) = contents.read(body).await;
        body = read;
        match result {
            StreamResult::Complete(_) => {
                if body.len() > MAX_BODY_BYTES {
                    return Err(ApiError::body_too_large(MAX_BODY_BYTES));
                }
            }
            StreamResult::Dropped | StreamResult::Cancelled => break,
        }
    }
    drop(contents);
    match trailers.await {
        Ok(_) => Ok(body),
        Err(_) => Err(ApiError::new(
            400,
            crate::error::INVALID_REQUEST,
            "invalid_body",
            "The request body could not be read.",
        )),
    }
}

/// The settings, from the variables as the instance's first request that reads them all
/// without error found them, kept for its later requests (as `auth` and `waf` keep theirs);
/// a read that fails is not kept, so the next request reads again. Safe across requests:
/// they are configuration, the same for every request and every identity (nothing of a
/// request goes into them). chatgate resolves variables when it loads the app, so they
/// cannot change under a running instance; with a Spin provider whose values do change
/// (Vault, Azure Key Vault), a changed value reaches the instances created after the
/// change, each of which serves at most `--max-instance-reuse-count` requests (128 by
/// default) before it is retired. Settings that do not parse are kept too: the same
/// values give the same error. Reading them costs seven host calls per request otherwise.
static SETTINGS: OnceLock<Result<Settings, ApiError>> = OnceLock::new();

async fn load_settings() -> Result<Cow<'static, Settings>, ApiError> {
    let kept = match SETTINGS.get() {
        Some(kept) => kept,
        None => match read_settings().await {
            Ok(read) => SETTINGS.get_or_init(|| read),
            Err(unreadable) => return Err(unreadable),
        },
    };
    kept.as_ref().map(Cow::Borrowed).map_err(Clone::clone)
}

/// The settings the variables give (`Ok` with what they parse to), or why a variable
/// could not be read (`Err`: not to be kept).
async fn read_settings() -> Result<Result<Settings, ApiError>, ApiError> {
    let read = chatgate_guest_io::read_variables(&Variables::NAMES).await;
    let mut variables = Variables::default();
    for name in Variables::NAMES {
        // Undeclared means unset, so defaults apply; unreadable is the operator's to fix.
        let value = match read.get(name) {
            VariableValue::Value(value) => Some(value),
            VariableValue::Missing => None,
            VariableValue::Unreadable => {
                return Err(ApiError::misconfigured(name, "could not be read"));
            }
        };
        variables.set(name, value);
    }
    Ok(Settings::from_variables(&variables))
}

fn unix_seconds() -> u64 {
    let now = spin_sdk::wasip3::clocks::system_clock::now();
    u64::try_from(now.seconds).unwrap_or(0)
}

fn header_value(value: &'static str) -> spin_sdk::http::HeaderValue {
    spin_sdk::http::HeaderValue::from_static(value)
}

fn json_response(status: u16, body: &serde_json::Value) -> Response<Body> {
    // Straight into bytes: `to_string` goes through `Display` and a formatter per
    // escaped piece (measured 2026-12-07 by `bench/instructions/run`, RAG answer: about
    // 46 k instructions of `write_all` and `write_str` around the escaping). A `Value`
    // always serialises.
    whole_json_response(status, serde_json::to_vec(body).unwrap_or_default())
}

fn whole_json_response(status: u16, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::Whole(body));
    *response.status_mut() = spin_sdk::http::StatusCode::from_u16(status)
        .unwrap_or(spin_sdk::http::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert("content-type", header_value("application/json"));
    response
}

fn error_response(error: &ApiError) -> Response<Body> {
    let mut response = json_response(error.status, &error.to_json());
    insert_headers(&mut response, &error.headers);
    response
}
