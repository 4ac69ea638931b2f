//! The hook on every `wasi:http/client#send`: a request to a host outside the
//! component's `allowed_outbound_hosts` ([`crate::outbound`], the policy itself) fails with
//! `HTTP-request-denied` before any connection is made; others go out through the
//! process's pooled client (`http_client`).
//!
//! The policy is kept apart from this hook so that its parsing and matching are tested
//! without wasmtime; here is only where it is enforced.

use super::grants::Grants;
use std::sync::Arc;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The outcome of one side of an exchange (the guest's processing of the response, or the
/// request's I/O), as wasmtime passes it between guest and host.
type Io = Box<dyn Future<Output = Result<(), Error>> + Send>;
/// What `send_request` answers: the response and its I/O, or why there is none.
type Sent = Box<dyn Future<Output = Result<(http::Response<WasiBody>, Io), Error>> + Send>;

/// Enforces `allowed_outbound_hosts` on every `wasi:http/client#send`.
pub(super) struct OutboundHooks {
    grants: Arc<Grants>,
}

impl OutboundHooks {
    pub(super) fn new(grants: Arc<Grants>) -> Self {
        OutboundHooks { grants }
    }
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Io,
    ) -> Sent {
        if let Err(denied) = self.grants.outbound.check(request.uri()) {
            tracing::warn!(target: "chatgate::outbound", "{denied}");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        // Not watched, as in wasmtime's default hook: the guest's trouble with the response
        // ends its body, which drops the connection (or returns it to the pool).
        _ = fut;
        Box::new(async move {
            let response = super::http_client::send(request, options).await?;
            Ok((response, Box::new(async { Ok(()) }) as Io))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::{AllowedHost, OutboundPolicy};
    use futures_util::FutureExt as _;
    use http_body_util::BodyExt as _;

    fn hooks(allowed: &[&str]) -> OutboundHooks {
        let outbound = allowed
            .iter()
            .map(|entry| AllowedHost::parse(entry).unwrap())
            .collect::<OutboundPolicy>();
        OutboundHooks::new(Arc::new(super::super::grants::tests::grants(outbound)))
    }

    fn request(uri: &str) -> http::Request<WasiBody> {
        let body = http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        http::Request::builder().uri(uri).body(body).unwrap()
    }

    fn no_io() -> Io {
        Box::new(async { Ok(()) })
    }

    #[test]
    fn a_host_not_allowed_is_denied_before_any_connection() {
        let mut hooks = hooks(&["https://api.example.com"]);
        for uri in [
            "https://other.example.com/v1",
            "http://api.example.com/v1",
            "https://api.example.com:8443/v1",
        ] {
            let sent = Box::into_pin(hooks.send_request(request(uri), None, no_io()));
            // Ready at once: a denial never waits on the network.
            let outcome = sent.now_or_never().expect("a denial is immediate");
            assert!(
                matches!(outcome, Err(Error::HttpRequestDenied)),
                "{uri} was not denied"
            );
        }
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let mut hooks = hooks(&[]);
        let sent = Box::into_pin(hooks.send_request(request("http://127.0.0.1/"), None, no_io()));
        assert!(matches!(
            sent.now_or_never(),
            Some(Err(Error::HttpRequestDenied))
        ));
    }

    #[tokio::test]
    async fn an_allowed_host_is_sent_to() {
        // A port nobody listens on: the request goes out and fails to connect, which is
        // not a denial.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let mut hooks = hooks(&[&format!("http://127.0.0.1:{port}")]);
        let sent = Box::into_pin(hooks.send_request(
            request(&format!("http://127.0.0.1:{port}/")),
            None,
            no_io(),
        ));
        match sent.await {
            Err(Error::HttpRequestDenied) => panic!("an allowed host was denied"),
            Err(_) => {}
            Ok(_) => panic!("nothing listens on port {port}"),
        }
    }
}
