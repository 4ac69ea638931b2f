use spin_sdk::wasip3::exports::http::handler::Guest;
use spin_sdk::wasip3::http::types::{ErrorCode, Request, Response};

/// Exported by hand rather than with `#[http_service]`, which would copy the request's
/// headers into an `http::Request` that this component never reads.
struct Passthrough;

spin_sdk::wasip3::http::service::export!(Passthrough);

impl Guest for Passthrough {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        // The WASI request as it came: `next` hands it on unconverted.
        let mut response = spin_sdk::http::next(request).await?;
        // `next` wraps the response in an `http::Response` (a copy of its headers); its
        // body is still the unstarted original, which is handed back as it came.
        response.body_mut().take_unstarted().ok_or_else(|| {
            ErrorCode::InternalError(Some("the next handler's response was already read".into()))
        })
    }
}
