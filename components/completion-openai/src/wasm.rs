//! The WASI side: Spin variables, the key-value store, clocks, randomness and outbound
//! HTTP around the plain modules, and the conversions to and from the WIT types.
//!
//! Timeouts are enforced here, by racing every wait on the network against a timer,
//! whether or not the host honours the `wasi:http` request options it is also given.

use crate::breaker::{self, Admission, Breaker, BreakerPolicy};
use crate::config::{self, Config, Target, Timeouts};
use crate::errors::{
    RetryHeaders, TransportFailure, error_for_status, requested_delay_ms, transport_error,
};
use crate::identity::{self, Token};
use crate::request::{UpstreamRequest, build_request, validate};
use crate::response::{self, has_media_type, parse_completion, wrong_content_type};
use crate::retry::{Disposition, Failure, Health, Planner, Step};
use crate::stream::StreamDecoder;
use crate::{MAX_COMPLETION_BODY_BYTES, MAX_ERROR_BODY_BYTES};
use bytes::Bytes;
use chatgate_guest::token_source::TokenSource;
use chatgate_guest_io::identity::{TokenWaits, fetch_token, forget_token};
use chatgate_guest_io::{classify, sleep_ms, wall_clock_ms, within};
use chatgate_guest_otel::{ChatCall, Tracer, genai};
use chatgate_rag::completion as rag;
use http_body_util::BodyExt;
use spin_sdk::http::{FullBody, Response};
use spin_sdk::key_value::Store;
use spin_sdk::wasip3::clocks::monotonic_clock;
use spin_sdk::wasip3::http::types::RequestOptions;
use spin_sdk::wasip3::http_compat::{IncomingResponseBody, RequestOptionsExtension};
use spin_sdk::wit_bindgen;
use std::rc::Rc;
// Links the eight-bytes-at-a-time `memcmp` over wasi-libc's (crates/memcmp).
use chatgate_memcmp as _;
// Installs the size-class cache in front of dlmalloc as the allocator (crates/guest-alloc).
use chatgate_guest_alloc as _;

spin_sdk::wit_bindgen::generate!({
    path: "../../wit",
    world: "completion-provider",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
    generate_all,
});

use exports::chatgate::completion::completion::{
    ChatCompletion, CompletionError, Delta, Guest, Message, Options, StreamEnd, StreamStart,
};
chatgate_rag::completion_conversions!(exports::chatgate::completion::completion);

type StreamResult = Result<StreamEnd, CompletionError>;

/// `error.type` of a streamed call whose caller stopped reading before the end.
const CALLER_GONE: &str = "caller_gone";
/// What `complete-stream` returns once the answer has begun.
type Streamed = (
    StreamStart,
    wit_bindgen::StreamReader<Delta>,
    wit_bindgen::FutureReader<StreamResult>,
);

struct OpenAiCompletion;

impl Guest for OpenAiCompletion {
    async fn complete(
        messages: Vec<Message>,
        options: Options,
    ) -> Result<ChatCompletion, CompletionError> {
        complete(messages, options)
            .await
            .map_err(CompletionError::from)
    }

    async fn complete_stream(
        messages: Vec<Message>,
        options: Options,
    ) -> Result<Streamed, CompletionError> {
        complete_stream(messages, options)
            .await
            .map_err(CompletionError::from)
    }
}

export!(OpenAiCompletion);

/// Its spans and measurements (`wasi:otel`): the GenAI `chat {model}` CLIENT span of
/// each call (retries and failover included) and the `gen_ai.client.*` metrics.
const TRACER: Tracer = Tracer::new("chatgate-completion-openai", env!("CARGO_PKG_VERSION"));

/// The call's GenAI span and measurements, begun once the call is known to be valid:
/// a request refused before any provider sees it is not a GenAI operation.
fn chat_call(call: &Call) -> ChatCall {
    let provider = match call.config.flavor {
        config::Flavor::OpenAi { .. } => genai::OPENAI,
        config::Flavor::Azure { .. } => genai::AZURE_OPENAI,
    };
    let model = call
        .targets
        .first()
        .map_or("", |target| target.model.as_str());
    ChatCall::start(
        &TRACER,
        call.options.traceparent.as_deref(),
        &genai::Request {
            provider,
            model,
            temperature: call.options.temperature,
            top_p: call.options.top_p,
            max_tokens: call.options.max_tokens,
        },
    )
}

/// Ends `span` with how the answer ended (`id`: the upstream's, when read).
fn answered(
    span: ChatCall,
    id: Option<&str>,
    model: &str,
    finish_reason: rag::FinishReason,
    usage: Option<rag::Usage>,
) {
    span.answered(&genai::Response {
        id,
        model,
        finish_reason: finish_reason.as_openai(),
        usage: usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
    });
}

/// The breaker state a transition went to, as the metric's attribute names it.
fn state_name(state: &Breaker) -> &'static str {
    match state {
        Breaker::Closed { .. } => "closed",
        Breaker::Open { .. } => "open",
        Breaker::HalfOpen { .. } => "half_open",
    }
}

/// Adds the call's retries, failovers and breaker transitions to its measurements:
/// every call is counted, traced or not, in the call's one `wasi:otel/metrics` report.
/// Ends the call's span when no target is left to try: its retries and breaker
/// changes counted, the error named.
fn gave_up(mut span: ChatCall, call: &Call, error: rag::CompletionError) -> rag::CompletionError {
    count_resilience(&mut span, &call.attempts, &call.breakers.transitions);
    span.failed(error.kind());
    error
}

fn count_resilience(span: &mut ChatCall, attempts: &[usize], transitions: &[&'static str]) {
    let retries = attempts.len().saturating_sub(1) as u64;
    if retries > 0 {
        span.count(
            "chatgate.completion.retries",
            "{attempt}",
            "Attempts beyond the first of a completion call (retries and failovers).",
            retries,
            &[],
        );
    }
    let failovers = attempts.windows(2).filter(|w| w[0] != w[1]).count() as u64;
    if failovers > 0 {
        span.count(
            "chatgate.completion.failovers",
            "{attempt}",
            "Attempts of a completion call on another endpoint than the one before.",
            failovers,
            &[],
        );
    }
    for state in transitions {
        span.count(
            "chatgate.completion.breaker.transitions",
            "{transition}",
            "Circuit-breaker state changes, by the state entered.",
            1,
            &[("chatgate.breaker.state", (*state).into())],
        );
    }
}

async fn complete(
    messages: Vec<Message>,
    options: Options,
) -> Result<ChatCompletion, rag::CompletionError> {
    let mut call = Call::start(messages, options).await?;
    let mut span = chat_call(&call);
    loop {
        let target = match call.next_target().await {
            Ok(target) => target,
            Err(error) => return Err(gave_up(span, &call, error)),
        };
        match attempt_complete(&call, target, span.recording()).await {
            Ok((completion, id)) => {
                call.breakers.record(target, None).await;
                count_resilience(&mut span, &call.attempts, &call.breakers.transitions);
                answered(
                    span,
                    id.as_deref(),
                    &completion.model,
                    completion.finish_reason,
                    Some(completion.usage),
                );
                return Ok(completion.into());
            }
            Err(failure) => call.failed(target, failure).await,
        }
    }
}

async fn complete_stream(
    messages: Vec<Message>,
    options: Options,
) -> Result<Streamed, rag::CompletionError> {
    let mut call = Call::start(messages, options).await?;
    let mut span = chat_call(&call);
    let (target, begun) = loop {
        let target = match call.next_target().await {
            Ok(target) => target,
            Err(error) => return Err(gave_up(span, &call, error)),
        };
        match attempt_stream(&call, target).await {
            Ok(begun) => break (target, begun),
            Err(failure) => call.failed(target, failure).await,
        }
    };
    // From here on the answer has begun: nothing is retried, failures end the future.
    call.breakers.record(target, None).await;
    let start = StreamStart {
        model: begun.model.clone(),
    };
    let (mut deltas, deltas_reader) = wit_stream::new::<Delta>();
    let (end, end_reader) = wit_future::new::<StreamResult>(|| {
        Err(CompletionError::Internal(
            "the completion stream task ended without a result".into(),
        ))
    });
    let idle_ms = call.config.timeouts.idle_ms;
    // The id arrives with the answer's first chunks, read by now; kept only for a span
    // that records it.
    let id = span
        .recording()
        .then(|| begun.decoder.id().map(str::to_owned))
        .flatten();
    let mut breakers = call.breakers;
    let attempts = call.attempts;
    // The export's task keeps running spawned work after `complete-stream` has
    // returned the stream, so the upstream body is pumped as the caller reads.
    // The answer has begun: its first token is here.
    span.first_token();
    spin_sdk::wit_bindgen::spawn(async move {
        let outcome = pump(begun, idle_ms, &mut deltas).await;
        // The WIT contract: the future is resolved once the stream has closed.
        drop(deltas);
        if let Err(Interrupted::ByUpstream(error)) = &outcome
            && Failure::answer(error.clone()).health == Health::Failing
        {
            breakers.record(target, Some(Health::Failing)).await;
        }
        count_resilience(&mut span, &attempts, &breakers.transitions);
        let outcome = match outcome {
            Ok(end) => {
                answered(
                    span,
                    id.as_deref(),
                    &end.model,
                    end.finish_reason,
                    end.usage,
                );
                Ok(end)
            }
            Err(Interrupted::ByUpstream(error)) => {
                span.failed(error.kind());
                Err(error)
            }
            // Nobody reads the future either; it is resolved for form's sake.
            Err(Interrupted::CallerGone) => {
                span.failed(CALLER_GONE);
                Err(rag::CompletionError::Internal(
                    "the caller closed the delta stream before the answer ended".into(),
                ))
            }
        };
        let _ = end
            .write(outcome.map(StreamEnd::from).map_err(CompletionError::from))
            .await;
    });
    Ok((start, deltas_reader, end_reader))
}

/// One call of `complete` or `complete-stream`: configuration, targets, the retry
/// planner and the shared state (breakers, token) it consults.
struct Call {
    config: Config,
    targets: Vec<Target>,
    messages: Vec<rag::Message>,
    options: rag::Options,
    planner: Planner,
    breakers: Breakers,
    store: Option<Rc<Store>>,
    token: Option<Token>,
    /// Whether a refused token was already dropped for a new one in this call.
    token_renewed: bool,
    started_at: u64,
    /// The targets tried, in order: retries and failovers, for the metrics.
    attempts: Vec<usize>,
}

impl Call {
    async fn start(messages: Vec<Message>, options: Options) -> Result<Call, rag::CompletionError> {
        let started_at = monotonic_clock::now();
        let config = read_config().await?;
        let messages: Vec<rag::Message> = messages.into_iter().map(Into::into).collect();
        let options = rag::Options::from(options);
        validate(&config.flavor, &messages, &options)?;
        let targets = config.targets(options.model.as_deref());
        // Without a store (not granted, or failing) the call still runs: without a
        // breaker and with a token fetched for this call only.
        let store = Store::open_default().await.ok().map(Rc::new);
        let breakers = Breakers::load(store.clone(), &targets, config.breaker).await;
        let planner = Planner::new(config.retry, targets.len());
        Ok(Call {
            config,
            targets,
            messages,
            options,
            planner,
            breakers,
            store,
            token: None,
            token_renewed: false,
            started_at,
            attempts: Vec::new(),
        })
    }

    fn elapsed_ms(&self) -> u64 {
        monotonic_clock::now().saturating_sub(self.started_at) / 1_000_000
    }

    fn remaining_ms(&self) -> u64 {
        self.config
            .timeouts
            .deadline_ms
            .saturating_sub(self.elapsed_ms())
    }

    /// The next target to try, after any backoff; the call's error once none is left.
    async fn next_target(&mut self) -> Result<usize, rag::CompletionError> {
        loop {
            let now_ms = self.elapsed_ms();
            let wall_ms = wall_clock_ms();
            let breakers = &mut self.breakers;
            let step = self.planner.next(
                now_ms,
                spin_sdk::wasip3::random::random::get_random_u64,
                |target| breakers.admit(target, wall_ms),
            );
            match step {
                Step::Attempt(target) => {
                    self.attempts.push(target);
                    // Fetched only now, so that a call every breaker refuses makes no
                    // request at all; a failure here ends the call before the probe
                    // a breaker may have just admitted is stored.
                    if self.token.is_none()
                        && let Some(source) = identity::token_source(&self.config.auth)
                    {
                        self.token = Some(self.entra_token(&source).await?);
                    }
                    self.breakers.save_if_changed(target).await;
                    return Ok(target);
                }
                Step::Wait(ms) => sleep_ms(ms).await,
                Step::GiveUp(error) => return Err(error),
            }
        }
    }

    async fn failed(&mut self, target: usize, mut failure: Failure) {
        self.breakers.record(target, Some(failure.health)).await;
        if matches!(failure.error, rag::CompletionError::Unauthorized(_))
            && let Some(source) = identity::token_source(&self.config.auth)
        {
            // The token may have been revoked or its roles changed: it is dropped, and
            // once per call the target is tried again with a new one.
            forget_token(&source, self.store.as_deref()).await;
            self.token = None;
            if !std::mem::replace(&mut self.token_renewed, true) {
                failure.disposition = Disposition::Retry;
            }
        }
        let now_ms = self.elapsed_ms();
        self.planner.failed(target, now_ms, &failure);
    }

    /// The credential and how its secret is redacted from upstream text.
    fn secret(&self, target: usize) -> Option<&str> {
        match &self.token {
            Some(token) => Some(token.expose()),
            None => self.targets[target]
                .endpoint
                .api_key
                .as_ref()
                .map(|key| key.expose()),
        }
    }

    fn request(
        &self,
        target: usize,
        stream: bool,
    ) -> Result<UpstreamRequest, rag::CompletionError> {
        build_request(
            &self.config.flavor,
            &self.targets[target],
            self.token.as_ref().map(Token::expose),
            &self.messages,
            &self.options,
            stream,
        )
    }

    /// A cached token while it is fresh, else a new one from the token endpoint, within
    /// the same timeouts as an attempt on the upstream.
    async fn entra_token(&self, source: &TokenSource<'_>) -> Result<Token, rag::CompletionError> {
        let budget = self.attempt_budget_ms();
        let waits = TokenWaits {
            options: request_options(&self.config.timeouts),
            answer_ms: budget,
            read_ms: || self.read_budget_ms(),
        };
        fetch_token(source, self.store.as_deref(), waits)
            .await
            .map_err(|failure| {
                let error = identity::token_error(failure, budget, source);
                // `chat` tells the client only the kind of failure; the operator's
                // reason (which file, which AADSTS code) is logged here, no secret in it.
                eprintln!(
                    "completion-openai: no Entra ID token: {}",
                    error.message().replace(['\n', '\r'], " ")
                );
                error
            })
    }

    /// How long one attempt may wait for response headers: connect plus first byte,
    /// and never past the deadline.
    fn attempt_budget_ms(&self) -> u64 {
        let timeouts = &self.config.timeouts;
        timeouts
            .connect_ms
            .saturating_add(timeouts.first_byte_ms)
            .min(self.remaining_ms())
    }

    /// How long the next body read may wait: the idle timeout, never past the deadline.
    fn read_budget_ms(&self) -> u64 {
        self.config.timeouts.idle_ms.min(self.remaining_ms())
    }
}

/// The breaker of every target of a call, read once when the call starts and
/// written back on every change. Without a store they admit everything.
struct Breakers {
    store: Option<Rc<Store>>,
    policy: BreakerPolicy,
    keys: Vec<String>,
    states: Vec<Breaker>,
    changed: Vec<bool>,
    /// The states breakers moved to in this call, for the metrics.
    transitions: Vec<&'static str>,
}

impl Breakers {
    async fn load(store: Option<Rc<Store>>, targets: &[Target], policy: BreakerPolicy) -> Breakers {
        let keys: Vec<String> = targets
            .iter()
            .map(|t| breaker::storage_key(&t.endpoint.origin, &t.model))
            .collect();
        let mut states = vec![Breaker::default(); targets.len()];
        let store = store.filter(|_| policy.enabled());
        if let Some(store) = &store {
            for (state, key) in states.iter_mut().zip(&keys) {
                if let Ok(Some(bytes)) = store.get(key).await {
                    *state = Breaker::from_bytes(&bytes);
                }
            }
        }
        Breakers {
            store,
            policy,
            changed: vec![false; targets.len()],
            transitions: Vec::new(),
            keys,
            states,
        }
    }

    fn admit(&mut self, target: usize, wall_ms: u64) -> bool {
        if self.store.is_none() {
            return true;
        }
        match self.states[target].admit(wall_ms, &self.policy) {
            Admission::Allowed => true,
            Admission::Probe => {
                self.changed[target] = true;
                self.transitions.push(state_name(&self.states[target]));
                true
            }
            Admission::Refused => false,
        }
    }

    async fn save_if_changed(&mut self, target: usize) {
        if std::mem::take(&mut self.changed[target]) {
            self.save(target).await;
        }
    }

    /// Records a success (`None`) or a failure of the given health.
    async fn record(&mut self, target: usize, failure: Option<Health>) {
        if self.store.is_none() {
            return;
        }
        let before = self.states[target];
        match failure {
            None => self.states[target].record_success(),
            Some(Health::Failing) => {
                self.states[target].record_failure(wall_clock_ms(), &self.policy)
            }
            Some(Health::Neutral) => {}
        }
        if self.states[target] != before {
            if std::mem::discriminant(&self.states[target]) != std::mem::discriminant(&before) {
                self.transitions.push(state_name(&self.states[target]));
            }
            self.save(target).await;
        }
    }

    async fn save(&self, target: usize) {
        if let Some(store) = &self.store {
            // A breaker that cannot be stored must not fail the request.
            let _ = store
                .set(&self.keys[target], self.states[target].to_bytes())
                .await;
        }
    }
}

/// A streamed answer that has begun: what was read so far and the rest of the body.
struct Begun {
    /// The model answering, for `stream-start`.
    model: String,
    body: IncomingResponseBody,
    decoder: StreamDecoder,
    /// Deltas that arrived with the first chunks.
    pending: Vec<String>,
    /// Set if the answer also ended before it was handed over.
    outcome: Option<Result<rag::StreamEnd, rag::CompletionError>>,
}

/// Sends `request` and accepts the response only if it is a success carrying
/// `media_type`.
async fn open(
    call: &Call,
    request: UpstreamRequest,
    secret: Option<&str>,
    media_type: &str,
) -> Result<Response, Failure> {
    let response = send(call, request).await?;
    let response = check_status(call, response, secret).await?;
    let content_type = header(&response, "content-type");
    if !has_media_type(content_type.as_deref(), media_type) {
        return Err(Failure::answer(wrong_content_type(
            content_type.as_deref(),
            media_type,
        )));
    }
    Ok(response)
}

/// One non-streamed attempt on `target`.
/// One attempt on `target`: the answer, and the upstream's id of it when `traced` (read
/// only for a span that records it).
async fn attempt_complete(
    call: &Call,
    target: usize,
    traced: bool,
) -> Result<(rag::ChatCompletion, Option<String>), Failure> {
    let request = call.request(target, false).map_err(Failure::local)?;
    let requested_model = request.model.clone();
    let secret = call.secret(target);
    let response = open(call, request, secret, response::JSON).await?;
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    loop {
        let budget = call.read_budget_ms();
        match within(budget, body.frame()).await {
            None => return Err(Failure::transport(stalled(budget))),
            Some(None) => break,
            Some(Some(Err(code))) => {
                return Err(Failure::transport(transport_error(&classify(&code, None))));
            }
            Some(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                    if bytes.len() > MAX_COMPLETION_BODY_BYTES {
                        return Err(Failure::answer(rag::CompletionError::Internal(format!(
                            "the upstream answer is larger than {MAX_COMPLETION_BODY_BYTES} bytes"
                        ))));
                    }
                }
            }
        }
    }
    let completion = parse_completion(&bytes, &requested_model, secret).map_err(Failure::answer)?;
    Ok((
        completion,
        traced.then(|| response::response_id(&bytes)).flatten(),
    ))
}

/// One streamed attempt on `target`, up to the moment the answer has begun.
async fn attempt_stream(call: &Call, target: usize) -> Result<Begun, Failure> {
    let request = call.request(target, true).map_err(Failure::local)?;
    let secret = call.secret(target);
    let mut decoder = StreamDecoder::new(&request.model, secret);
    let response = open(call, request, secret, response::EVENT_STREAM).await?;
    let mut body = response.into_body();
    let mut pending = Vec::new();
    loop {
        let budget = call.read_budget_ms();
        let frame = match within(budget, body.frame()).await {
            None => return Err(Failure::transport(stalled(budget))),
            Some(None) => {
                // The body ended before the answer began: `[DONE]` alone is an empty
                // answer, anything else a cut stream.
                let outcome = decoder.finish();
                return match outcome {
                    Ok(end) => Ok(Begun {
                        model: end.model.clone(),
                        body,
                        // Unused: the outcome is known.
                        decoder: StreamDecoder::new(&end.model, None),
                        pending,
                        outcome: Some(Ok(end)),
                    }),
                    Err(error) => Err(Failure::answer(error)),
                };
            }
            Some(Some(Err(code))) => {
                return Err(Failure::transport(transport_error(&classify(&code, None))));
            }
            Some(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let progress = decoder.feed(&data);
        pending.extend(progress.deltas);
        match progress.outcome {
            Some(Err(error)) if !decoder.has_begun() => return Err(Failure::answer(error)),
            Some(outcome) => {
                return Ok(Begun {
                    model: decoder.model().to_string(),
                    body,
                    decoder,
                    pending,
                    outcome: Some(outcome),
                });
            }
            None if decoder.has_begun() => {
                return Ok(Begun {
                    model: decoder.model().to_string(),
                    body,
                    decoder,
                    pending,
                    outcome: None,
                });
            }
            None => {}
        }
    }
}

/// Forwards the deltas of a begun answer as upstream frames arrive, until the decoder
/// reaches an outcome, the body ends or it stalls for `idle_ms`.
enum Interrupted {
    ByUpstream(rag::CompletionError),
    CallerGone,
}

async fn pump(
    begun: Begun,
    idle_ms: u64,
    deltas: &mut wit_bindgen::StreamWriter<Delta>,
) -> Result<rag::StreamEnd, Interrupted> {
    let Begun {
        model: _,
        mut body,
        mut decoder,
        pending,
        mut outcome,
    } = begun;
    let mut batch = pending;
    loop {
        if !batch.is_empty() {
            let wit_batch = batch.drain(..).map(|content| Delta { content }).collect();
            if !deltas.write_all(wit_batch).await.is_empty() {
                // Dropping `body` on return tells the upstream to stop generating.
                return Err(Interrupted::CallerGone);
            }
        }
        if let Some(outcome) = outcome.take() {
            return outcome.map_err(Interrupted::ByUpstream);
        }
        let frame = match within(idle_ms, body.frame()).await {
            None => {
                return Err(Interrupted::ByUpstream(rag::CompletionError::Timeout(
                    format!("the upstream stream stalled: nothing arrived for {idle_ms} ms"),
                )));
            }
            Some(None) => return decoder.finish().map_err(Interrupted::ByUpstream),
            Some(Some(Err(code))) => {
                return Err(Interrupted::ByUpstream(transport_error(&classify(
                    &code, None,
                ))));
            }
            Some(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing for us.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let progress = decoder.feed(&data);
        batch = progress.deltas;
        outcome = progress.outcome;
    }
}

fn stalled(budget_ms: u64) -> rag::CompletionError {
    rag::CompletionError::Timeout(format!("the upstream stopped sending for {budget_ms} ms"))
}

fn request_options(timeouts: &Timeouts) -> RequestOptionsExtension {
    let ms_to_ns = |ms: u64| ms.saturating_mul(1_000_000);
    let options = RequestOptions::new();
    // A host that does not support a timeout kind keeps its own default for it; the
    // guest's own timers bound the waits either way.
    let _ = options.set_connect_timeout(Some(ms_to_ns(timeouts.connect_ms)));
    let _ = options.set_first_byte_timeout(Some(ms_to_ns(timeouts.first_byte_ms)));
    let _ = options.set_between_bytes_timeout(Some(ms_to_ns(timeouts.idle_ms)));
    RequestOptionsExtension(options)
}

/// Sends `request` and waits for its response headers, at most the attempt budget.
async fn send(call: &Call, request: UpstreamRequest) -> Result<Response, Failure> {
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri(&request.url)
        .extension(request_options(&call.config.timeouts));
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    // With its length declared, the request goes out with it and the upstream has it
    // whole once the bytes arrive; without, the host sends it chunked and the upstream
    // waits for the closing chunk, which leaves only after this component has closed
    // the body stream and resolved its trailers.
    builder = builder.header("content-length", request.body.len());
    // The builder's error could only come from a header or URI, and the config
    // module validated those; its text is not used because a header may hold the key.
    let outbound = builder
        .body(FullBody::new(Bytes::from(request.body)))
        .map_err(|_| {
            Failure::local(rag::CompletionError::Internal(
                "could not build the upstream request".into(),
            ))
        })?;
    let budget = call.attempt_budget_ms();
    match within(budget, spin_sdk::http::send(outbound)).await {
        None => Err(Failure::transport(rag::CompletionError::Timeout(format!(
            "the upstream did not answer within {budget} ms"
        )))),
        Some(Err(code)) => Err(match classify(&code, None) {
            denied @ TransportFailure::Denied => Failure::local(transport_error(&denied)),
            failure => Failure::transport(transport_error(&failure)),
        }),
        Some(Ok(response)) => Ok(response),
    }
}

/// Passes 2xx answers through; turns any other into its failure.
async fn check_status(
    call: &Call,
    response: Response,
    secret: Option<&str>,
) -> Result<Response, Failure> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let retry_after_ms = header(&response, "retry-after-ms");
    let retry_after = header(&response, "retry-after");
    let delay = requested_delay_ms(
        RetryHeaders {
            retry_after_ms: retry_after_ms.as_deref(),
            retry_after: retry_after.as_deref(),
        },
        wall_clock_ms(),
    );
    // A broken or stalled error body still leaves the status to go by.
    let body = match read_body(response, MAX_ERROR_BODY_BYTES, call.read_budget_ms()).await {
        Some(ReadBody::Complete(body) | ReadBody::Truncated(body)) => body,
        None => Vec::new(),
    };
    Err(Failure::status(
        status,
        error_for_status(status, delay, &body, secret),
        delay,
    ))
}

enum ReadBody {
    Complete(Vec<u8>),
    /// The first `limit` bytes or more; the rest was not read.
    Truncated(Vec<u8>),
}

/// Reads a body up to `limit` bytes; `None` if it broke or stalled for `idle_ms`.
async fn read_body(response: Response, limit: usize, idle_ms: u64) -> Option<ReadBody> {
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    loop {
        match within(idle_ms, body.frame()).await? {
            None => return Some(ReadBody::Complete(bytes)),
            Some(frame) => {
                if let Ok(data) = frame.ok()?.into_data() {
                    bytes.extend_from_slice(&data);
                    if bytes.len() > limit {
                        return Some(ReadBody::Truncated(bytes));
                    }
                }
            }
        }
    }
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// The configuration as the instance's first call that read it without error found it,
/// kept for its later calls: reading it costs a host call per variable (22) on every
/// call otherwise. Safe across requests, as `chat`'s settings are: configuration, the
/// same for every request and identity. chatgate resolves variables when it loads the
/// app; with a Spin provider whose values change, a changed value reaches the instances
/// created after the change. A read that fails is not kept, so the next call reads again.
static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();

async fn read_config() -> Result<Config, rag::CompletionError> {
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let variables = chatgate_guest_io::read_variables(&config::VARIABLE_NAMES).await;
    let config = Config::from_variables(|name| variables.get(name))?;
    Ok(CONFIG.get_or_init(|| config).clone())
}
