//! HTTP/1.1 front end: accepts connections, hands requests to the [`App`], and
//! drains in-flight requests on shutdown.

use crate::app::App;
use crate::otel::Tracing;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long in-flight requests may take to finish once shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds `addr`, explaining the usual failure.
pub async fn bind(addr: SocketAddr) -> wasmtime::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            wasmtime::format_err!(
                "cannot listen on {addr}: the address is already in use (stop the other server or pass --listen with another port)"
            )
        } else {
            wasmtime::format_err!("cannot listen on {addr}: {e}")
        }
    })
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains open connections.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> wasmtime::Result<()> {
    serve_traced(app, listener, shutdown, None).await
}

/// Like [`serve`], with one OpenTelemetry SERVER span per request when `tracing` is set
/// ([`crate::otel`]); the caller flushes and shuts it down after this returns.
pub async fn serve_traced(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    tracing: Option<Arc<Tracing>>,
) -> wasmtime::Result<()> {
    serve_with(app, listener, shutdown, tracing, None).await
}

/// The server's TLS certificate chain and private key, from PEM files (Spin's
/// `--tls-cert` and `--tls-key`: the certificates in order, leaf first, and the first
/// private key of the key file, PKCS#8, PKCS#1 or SEC1).
pub fn tls_acceptor(cert: &Path, key: &Path) -> wasmtime::Result<TlsAcceptor> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            wasmtime::format_err!("reading TLS certificates from {}: {e}", cert.display())
        })?;
    if certs.is_empty() {
        wasmtime::bail!("no certificate in {}", cert.display());
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        wasmtime::format_err!("reading the TLS private key from {}: {e}", key.display())
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| wasmtime::format_err!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(|e| {
            wasmtime::format_err!(
                "the TLS certificate {} and key {}: {e}",
                cert.display(),
                key.display()
            )
        })?;
    // The server speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Like [`serve_traced`], over TLS when `tls` is set: each connection's handshake runs on
/// its own task, within the header read timeout, and components see `https` requests.
pub async fn serve_with(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    tracing: Option<Arc<Tracing>>,
    tls: Option<TlsAcceptor>,
) -> wasmtime::Result<()> {
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() {
        http::uri::Scheme::HTTPS
    } else {
        http::uri::Scheme::HTTP
    };
    let ticker = app.tick_epochs();
    let load_watch = app.watch_load();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Running out of file descriptors is transient; back off rather than exit.
                    tracing::warn!(target: "chatgate::server", "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        stream.set_nodelay(true).ok();
        let header_read_timeout = app.limits().header_read_timeout;
        let app = app.clone();
        let tracing = tracing.clone();
        let scheme = scheme.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let app = app.clone();
            let tracing = tracing.clone();
            let scheme = scheme.clone();
            async move {
                if is_server_wide_options(&request) {
                    return Ok(server_wide_options());
                }
                let mut request = into_wasi_request(request, local, peer, scheme);
                let Some(tracing) = tracing else {
                    return Ok::<_, std::convert::Infallible>(app.handle(request, peer.ip()).await);
                };
                let span = tracing.server_span(&request, peer, app.route_of(request.uri().path()));
                span.inject(request.headers_mut());
                let response = app.handle(request, peer.ip()).await;
                span.end(response.status());
                Ok(response)
            }
        });
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        let Some(acceptor) = &tls else {
            let connection = graceful.watch(http1.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(target: "chatgate::server", "connection ended: {e}");
                }
            });
            continue;
        };
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(header_read_timeout, acceptor.accept(stream))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(target: "chatgate::server", "TLS handshake with {peer} failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(target: "chatgate::server", "TLS handshake with {peer} timed out");
                    return;
                }
            };
            let connection = watcher.watch(http1.serve_connection(TokioIo::new(stream), service));
            if let Err(e) = connection.await {
                tracing::debug!(target: "chatgate::server", "connection ended: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!(target: "chatgate::server", "shutting down: draining in-flight requests");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(target: "chatgate::server", "drain timed out; closing remaining connections");
    }
    ticker.abort();
    load_watch.abort();
    Ok(())
}

/// `OPTIONS *` asks about the server, not a resource (RFC 9110, 9.3.7): no component
/// has a path to answer it with.
fn is_server_wide_options(request: &hyper::Request<Incoming>) -> bool {
    request.method() == http::Method::OPTIONS && request.uri() == "*"
}

fn server_wide_options() -> http::Response<wasmtime_wasi_http::WasiBody> {
    let mut response = http::Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = http::StatusCode::NO_CONTENT;
    response.headers_mut().insert(
        http::header::ALLOW,
        http::HeaderValue::from_static("GET, HEAD, POST, OPTIONS"),
    );
    response
}

/// The header carrying the client's socket address, as Spin sets it.
pub const CLIENT_ADDRESS_HEADER: &str = "spin-client-addr";

/// Gives the request the absolute URI a WASI component expects (`http://host/path`),
/// and reports the client's address in `spin-client-addr`, replacing any value the
/// client sent, so components can trust it.
fn into_wasi_request(
    request: hyper::Request<Incoming>,
    local: SocketAddr,
    peer: SocketAddr,
    scheme: http::uri::Scheme,
) -> http::Request<wasmtime_wasi_http::WasiBody> {
    let (mut parts, body) = request.into_parts();
    parts.headers.insert(
        CLIENT_ADDRESS_HEADER,
        http::HeaderValue::from_str(&peer.to_string())
            .expect("a socket address is a valid header value"),
    );
    let authority = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .unwrap_or_else(|| {
            local
                .to_string()
                .parse()
                .expect("a socket address is a valid authority")
        });
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(scheme);
    uri.authority = Some(authority);
    uri.path_and_query = parts.uri.path_and_query().cloned();
    if let Ok(absolute) = http::Uri::from_parts(uri) {
        parts.uri = absolute;
    }
    let body = body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync();
    http::Request::from_parts(parts, body)
}
