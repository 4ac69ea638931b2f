use spin_sdk::http::{BoxBody, Request, Response, box_body, next};
use spin_sdk::http_service;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[http_service]
async fn handle(mut request: Request) -> Response<BoxBody> {
    let started = Instant::now();
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let method = request.method().as_str().to_owned();
    let route = request.uri().path().to_owned();

    let entropy = spin_sdk::wasip3::random::random::get_random_bytes(super::ENTROPY_LEN as u64);
    let telemetry = super::prepare_inward(request.headers_mut(), &entropy);

    // Re-boxing the body makes spin-sdk build a new WASI request from our edited headers
    // (an untouched incoming body would forward the original request as it was).
    let (mut response, error) = match next(request.map(box_body)).await {
        Ok(response) => (response.map(box_body), None),
        Err(code) => (bad_gateway(), Some(format!("{code:?}"))),
    };
    let elapsed = started.elapsed();
    super::decorate_response(response.headers_mut(), &telemetry, elapsed);

    let line = super::log::RequestLog {
        started_at,
        method: &method,
        route: &route,
        status: response.status().as_u16(),
        elapsed,
        span: &telemetry.span,
        request_id: &telemetry.request_id,
        error: error.as_deref(),
    }
    .to_json_line();
    println!("{line}");
    response
}

fn bad_gateway() -> Response<BoxBody> {
    let mut response = Response::new(box_body(super::bad_gateway_body()));
    *response.status_mut() = spin_sdk::http::StatusCode::BAD_GATEWAY;
    response.headers_mut().insert(
        "content-type",
        spin_sdk::http::HeaderValue::from_static("application/json"),
    );
    response
}
