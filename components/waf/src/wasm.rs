use super::config::{Config, VARIABLES};
use super::{Inspection, Refused, Rejection};
use chatgate_guest_otel::{StageSpan, Tracer};
use chatgate_middleware::{BodyError, Incoming, next};
use chatgate_seclang::RuleSet;
use spin_sdk::http::{IntoResponse, Response};
use spin_sdk::wasip3::exports::http::handler::Guest as Handler;
use spin_sdk::wasip3::http::types::{ErrorCode, Request as WasiRequest, Response as WasiResponse};
use std::sync::OnceLock;
// Links the eight-bytes-at-a-time `memcmp` over wasi-libc's (crates/memcmp).
use chatgate_memcmp as _;
// Installs the size-class cache in front of dlmalloc as the allocator (crates/guest-alloc).
use chatgate_guest_alloc as _;

spin_sdk::wit_bindgen::generate!({
    path: "../../wit",
    world: "preloaded-waf",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
});

/// The compiled rule set: set by `wizer-initialize` under `chatgate waf` (and then in
/// every instance of the snapshot), else compiled from the embedded defaults on first
/// use in the instance.
static RULES: OnceLock<Result<RuleSet, String>> = OnceLock::new();

struct Preload;
export!(Preload);

impl Guest for Preload {
    /// Runs under `chatgate waf` only, which has already loaded the same bundle
    /// natively. A failure panics, which fails the build with the message, rather than
    /// writing a WAF without its rules.
    fn wizer_initialize() {
        // The snapshot keeps the rules, not the blocks compiling and warming them freed.
        chatgate_guest_alloc::keeping_nothing_freed(|| {
            let text = std::fs::read_to_string(super::PRELOAD_PATH)
                .unwrap_or_else(|error| panic!("reading {}: {error}", super::PRELOAD_PATH));
            let bundle = super::bundle::Bundle::from_json(&text)
                .unwrap_or_else(|error| panic!("{}: {error}", super::PRELOAD_PATH));
            let rules = bundle
                .compile()
                .unwrap_or_else(|error| panic!("compiling the rule bundle: {error}"));
            for request in super::warm_up_requests() {
                rules.evaluate(&request);
            }
            let _ = RULES.set(Ok(rules));
        });
    }
}

fn rules() -> &'static Result<RuleSet, String> {
    RULES.get_or_init(|| {
        let rules = super::default_rules::compile();
        if let Err(error) = &rules {
            eprintln!("{}", super::rules_error_line(error));
        }
        rules
    })
}

/// The span `waf` reports (`wasi:otel/tracing`).
const TRACER: Tracer = Tracer::new("chatgate-waf", env!("CARGO_PKG_VERSION"));

/// Exported on WASI's own types rather than with `#[http_service]`: the inspected request
/// goes on with the body read, and the next handler's response comes back as it is
/// (`crates/middleware` says what that saves).
struct Waf;

spin_sdk::wasip3::http::service::export!(Waf);

impl Handler for Waf {
    async fn handle(request: WasiRequest) -> Result<WasiResponse, ErrorCode> {
        let incoming = Incoming::read(request)?;
        let (mut stage, traceparent) = TRACER.inward_from("waf", &incoming.parts().headers);
        let outcome = inspect_and_forward(incoming, traceparent, &mut stage).await;
        stage.end_with(&outcome);
        outcome
    }
}

/// Records on the stage's span what the WAF decided: the refusal, if any, and what the
/// audit line says when the request matched rules.
fn report(stage: &mut StageSpan, rejection: Option<&Rejection>, audit: Option<&str>) {
    stage.set_all(|| super::span_attributes(rejection, audit));
    // Counted for every request, traced or not (`wasi:otel/metrics`).
    if let Some(rejection) = rejection {
        chatgate_guest_otel::count(
            &TRACER,
            "chatgate.waf.refusals",
            "Requests the WAF refused, by refusal code and rule family.",
            &[
                ("chatgate.waf.rejection", rejection.code.as_str().into()),
                (
                    "chatgate.waf.family",
                    chatgate_guest_otel::waf_family::of_audit(audit).into(),
                ),
            ],
        );
    }
}

/// Inspects the request as it came and, if it passes, hands it on with `traceparent`
/// (this stage's span, when it is to be handed on). The rules see the client's headers,
/// never the `traceparent` this stage writes: that one is new in every request (so the
/// memo never knew it and the prefilter scanned it each time, about a sixth of an
/// ordinary request's inspection), and it replaced, unseen, whatever a client sent that
/// was not a valid `traceparent`.
async fn inspect_and_forward(
    mut incoming: Incoming,
    traceparent: Option<http::HeaderValue>,
    stage: &mut StageSpan,
) -> Result<WasiResponse, ErrorCode> {
    let config = match config().await {
        Ok(config) => config,
        Err(error) => {
            let rejection = super::config_rejection(&error);
            report(stage, Some(&rejection), None);
            return reject(&rejection);
        }
    };
    let Ok(rules) = rules() else {
        let rejection = super::rules_rejection();
        report(stage, Some(&rejection), None);
        return reject(&rejection);
    };
    let inspection = match Inspection::new(rules, config, incoming.parts()).headers() {
        Ok(inspection) => inspection,
        Err(refused) => return respond(stage, refused),
    };

    // Read whole, also when the request seems to have none: only a body the rules have
    // seen goes on (over HTTP/2 a GET may carry one without `Content-Length`).
    let body = match incoming.read_body(inspection.max_body_bytes()).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return respond(stage, inspection.too_large()),
        Err(BodyError::Unreadable) => return respond(stage, inspection.unreadable()),
    };
    let decision = inspection.body(body);
    report(stage, decision.refusal.as_ref(), decision.audit.as_deref());
    if let Some(line) = &decision.audit {
        println!("{line}");
    }
    if let Some(rejection) = &decision.refusal {
        return reject(rejection);
    }
    if let Some(traceparent) = traceparent {
        incoming.set_header(
            http::HeaderName::from_static(chatgate_guest_otel::TRACEPARENT),
            traceparent,
        );
    }
    next(incoming.forward()?).await
}

fn respond(stage: &mut StageSpan, refused: Refused) -> Result<WasiResponse, ErrorCode> {
    report(stage, Some(&refused.rejection), refused.audit.as_deref());
    if let Some(line) = &refused.audit {
        println!("{line}");
    }
    reject(&refused.rejection)
}

/// The variables, read by the instance's first request that reads them all without error
/// and kept for its later ones. Safe across requests: they hold configuration only, the
/// same for every request (chatgate resolves variables at load; on Spin a provider's
/// changed value reaches new instances, each serving at most `--max-instance-reuse-count`
/// requests). Reading them costs three host calls per request otherwise.
static CONFIG: OnceLock<Config> = OnceLock::new();

async fn config() -> Result<&'static Config, super::config::ConfigError> {
    if let Some(kept) = CONFIG.get() {
        return Ok(kept);
    }
    let read = read_config().await?;
    Ok(CONFIG.get_or_init(|| read))
}

async fn read_config() -> Result<Config, super::config::ConfigError> {
    let mut values = Vec::with_capacity(VARIABLES.len());
    for name in VARIABLES {
        let value = match spin_sdk::variables::get(name).await {
            Ok(value) => Ok(Some(value)),
            Err(spin_sdk::variables::Error::Undefined(_)) => Ok(None),
            Err(_) => Err(()),
        };
        values.push((name, value));
    }
    Config::from_variables(|name| {
        values
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(Ok(None), |(_, v)| v.clone())
    })
}

fn reject(rejection: &Rejection) -> Result<WasiResponse, ErrorCode> {
    let mut response = Response::new(rejection.body());
    *response.status_mut() = rejection.status;
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        spin_sdk::http::HeaderValue::from_static("application/json"),
    );
    if rejection.needs_allow_header() {
        headers.insert(
            "allow",
            spin_sdk::http::HeaderValue::from_static(super::ALLOW_HEADER_VALUE),
        );
    }
    response.into_response()
}
