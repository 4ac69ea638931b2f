//! The HTTP side the test doubles share: accept connections, read each request whole,
//! answer it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::future::Future;

/// Serves every connection `listener` accepts: each request is read whole (an unreadable
/// body reads as empty) and answered by `answer`, given its head and body. Returns the
/// accept loop's task; aborting it stops accepting.
pub fn serve_buffered<F, Fut>(
    listener: tokio::net::TcpListener,
    answer: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(http::request::Parts, Bytes) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let answer = answer.clone();
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let answer = answer.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        Ok::<_, std::convert::Infallible>(answer(parts, body).await)
                    }
                },
            );
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    })
}
