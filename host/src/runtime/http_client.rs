//! The client behind every guest's `wasi:http/client#send` that the outbound policy
//! allows: one connection pool for the process, so that a component's next request to the
//! same origin reuses an open connection (and its TLS session) instead of paying a TCP
//! connect and a TLS handshake per request.
//!
//! wasmtime's `default_send_request` opens a new connection for every request. Spin 4 does
//! not: its outbound HTTP factor keeps a pooling `hyper-util` client per app, with pooling
//! on unless the runtime config's `connection_pooling = false` (read in Spin's
//! `crates/factor-outbound-http`, not run). For `completion-openai` against Azure OpenAI
//! the difference is a TLS handshake (round trips and key exchange) before every model
//! call's first token.
//!
//! What each request still gets as wasmtime's default gave it: its `connect-timeout`
//! (through [`CONNECT_TIMEOUT`], since a pooled client takes no per-request connect
//! options), its `first-byte-timeout` on the response head and its `between-bytes-timeout`
//! on every body frame, 600 s for any that is unset; TLS for `https` with the Web PKI
//! roots, HTTP/1.1 only.

use bytes::Bytes;
use http::uri::Scheme;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// wasmtime's default for a timeout the request leaves unset.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long an unused pooled connection is kept (an upstream closing it earlier is noticed
/// by its connection task and the connection is not reused).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

tokio::task_local! {
    /// The `connect-timeout` of the request whose send is opening a connection: the
    /// connector runs inside the client's request future, which takes no options.
    static CONNECT_TIMEOUT: Duration;
}

/// The process's pooled client. Connections are keyed by scheme and authority, so
/// components share one only when they reach the same origin, each through its own
/// allowed-hosts check.
static CLIENT: LazyLock<Client<Connector, WasiBody>> = LazyLock::new(|| {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(Connector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls_config())),
        })
});

/// The Web PKI roots, as wasmtime's default send uses, built once instead of per request.
fn tls_config() -> tokio_rustls::rustls::ClientConfig {
    let roots = tokio_rustls::rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let mut config = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Sends `request` on a pooled connection to its origin, with its options' timeouts.
pub(super) async fn send(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<http::Response<WasiBody>, Error> {
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let between_bytes_timeout = options
        .and_then(|o| o.between_bytes_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    if request.uri().authority().is_none() {
        return Err(Error::HttpRequestUriInvalid);
    }
    let response = CONNECT_TIMEOUT.scope(
        connect_timeout,
        tokio::time::timeout(first_byte_timeout, CLIENT.request(request)),
    );
    let response = response
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(client_error)?;
    Ok(response.map(|incoming| {
        http_body_util::BodyExt::boxed_unsync(BetweenBytes {
            incoming,
            timeout: between_bytes_timeout,
            sleep: None,
        })
    }))
}

/// The connector's own error when it is the cause (it is wasi-http's already), else the
/// client's, classified as wasi-http classifies hyper's.
fn client_error(error: hyper_util::client::legacy::Error) -> Error {
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        if let Some(connect) = cause.downcast_ref::<ConnectError>() {
            return connect.to_error();
        }
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            if hyper.is_timeout() {
                return Error::HttpResponseTimeout;
            }
            if hyper.is_incomplete_message() || hyper.is_closed() {
                return Error::HttpResponseIncomplete;
            }
            return Error::HttpProtocolError;
        }
        source = cause.source();
    }
    Error::InternalError(Some(error.to_string()))
}

/// Why a connection could not be opened, kept as a type so that [`client_error`] finds it
/// behind the client's error.
#[derive(Debug)]
enum ConnectError {
    Timeout,
    Refused(std::io::Error),
    Tls(std::io::Error),
    DnsName,
    NoAuthority,
}

impl ConnectError {
    fn to_error(&self) -> Error {
        match self {
            ConnectError::Timeout => Error::ConnectionTimeout,
            ConnectError::Refused(error) => {
                Error::Connect(std::io::Error::new(error.kind(), error.to_string()))
            }
            ConnectError::Tls(error) => {
                Error::Tls(std::io::Error::new(error.kind(), error.to_string()))
            }
            ConnectError::DnsName | ConnectError::NoAuthority => Error::HttpRequestUriInvalid,
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Timeout => f.write_str("connect timed out"),
            ConnectError::Refused(error) => write!(f, "connect: {error}"),
            ConnectError::Tls(error) => write!(f, "TLS: {error}"),
            ConnectError::DnsName => f.write_str("not a TLS server name"),
            ConnectError::NoAuthority => f.write_str("no authority"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Opens TCP connections, with TLS for `https`.
#[derive(Clone)]
struct Connector {
    tls: tokio_rustls::TlsConnector,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Stream>, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        // Read here, inside the request's scope; a connection the pool finishes opening
        // in the background after its request went elsewhere keeps this value.
        let timeout = CONNECT_TIMEOUT.try_with(|t| *t).unwrap_or(DEFAULT_TIMEOUT);
        Box::pin(async move {
            let use_tls = uri.scheme() == Some(&Scheme::HTTPS);
            let authority = uri.authority().ok_or(ConnectError::NoAuthority)?;
            let port = authority
                .port_u16()
                .unwrap_or(if use_tls { 443 } else { 80 });
            let host = authority.host();
            // `[::1]` in a URI is `::1` to the resolver.
            let bare_host = host.trim_start_matches('[').trim_end_matches(']');
            let tcp = tokio::time::timeout(timeout, TcpStream::connect((bare_host, port)))
                .await
                .map_err(|_| ConnectError::Timeout)?
                .map_err(ConnectError::Refused)?;
            // Requests are written whole by hyper; small writes must not wait for acks.
            let _ = tcp.set_nodelay(true);
            if !use_tls {
                return Ok(TokioIo::new(Stream::Plain(tcp)));
            }
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(bare_host)
                .map_err(|_| ConnectError::DnsName)?
                .to_owned();
            let tls = tokio::time::timeout(timeout, tls.connect(name, tcp))
                .await
                .map_err(|_| ConnectError::Timeout)?
                .map_err(ConnectError::Tls)?;
            Ok(TokioIo::new(Stream::Tls(Box::new(tls))))
        })
    }
}

/// A pooled connection: plain TCP or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A response body that fails with `connection-read-timeout` when no frame arrives within
/// the request's `between-bytes-timeout`, and lets its connection go at once then.
struct BetweenBytes {
    incoming: hyper::body::Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for BetweenBytes {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.sleep = None;
                Poll::Ready(frame.map(|frame| {
                    frame.map_err(|error| {
                        if error.is_timeout() {
                            Error::HttpResponseTimeout
                        } else {
                            Error::Hyper(error)
                        }
                    })
                }))
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(sleep.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An HTTP/1.1 server on 127.0.0.1 counting the connections it accepts, answering `ok`,
    /// or only a response head and then nothing with `stall_body`.
    async fn server(stall_body: bool) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_| async move {
                        let body: http_body_util::combinators::BoxBody<Bytes, std::io::Error> =
                            if stall_body {
                                http_body_util::StreamBody::new(futures_util::stream::pending())
                                    .boxed()
                            } else {
                                http_body_util::Full::new(Bytes::from_static(b"ok"))
                                    .map_err(|never| match never {})
                                    .boxed()
                            };
                        Ok::<_, std::convert::Infallible>(http::Response::new(body))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (origin, accepted)
    }

    fn get(uri: &str) -> http::Request<WasiBody> {
        let body = http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        http::Request::builder().uri(uri).body(body).unwrap()
    }

    #[tokio::test]
    async fn requests_to_one_origin_share_one_connection() {
        let (origin, accepted) = server(false).await;
        for _ in 0..3 {
            let response = send(get(&format!("{origin}/v1/models")), None)
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stalled_body_fails_after_the_between_bytes_timeout() {
        let (origin, _) = server(true).await;
        let options = RequestOptions {
            between_bytes_timeout: Some(Duration::from_millis(50)),
            ..RequestOptions::default()
        };
        let response = send(get(&format!("{origin}/")), Some(options))
            .await
            .unwrap();
        let frame = response.into_body().frame().await;
        assert!(
            matches!(frame, Some(Err(Error::ConnectionReadTimeout))),
            "{frame:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let error = send(get(&format!("http://127.0.0.1:{port}/")), None)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Connect(_)), "{error:?}");
    }
}
