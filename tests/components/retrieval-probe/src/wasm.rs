use spin_sdk::http::{IntoResponse, Request, Response, StatusCode};
use spin_sdk::wasip3::clocks::monotonic_clock;

spin_sdk::wit_bindgen::generate!({
    path: "../../../wit",
    world: "retriever-probe",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
    generate_all,
});

use chatgate::retriever::retriever;

#[spin_sdk::http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let parameters = (request.uri().path() == "/search")
        .then(|| super::search_parameters(request.uri().query().unwrap_or("")))
        .flatten();
    let Some((top_k, query)) = parameters else {
        let mut response = Response::new(String::new());
        *response.status_mut() = StatusCode::NO_CONTENT;
        return response;
    };
    let started = monotonic_clock::now();
    let result = retriever::search(query, top_k, Vec::new()).await;
    let elapsed = monotonic_clock::now().saturating_sub(started);
    let (status, body) = match result {
        Ok(passages) => (
            StatusCode::OK,
            format!(
                "{} {}",
                passages.len(),
                passages.first().map_or("", |p| p.id.as_str())
            ),
        ),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error:?}")),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("x-search-ns", spin_sdk::http::HeaderValue::from(elapsed));
    response
}
