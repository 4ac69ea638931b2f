//! A minimal HTTP/1.1 client for talking to the gateway under test.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// A collected response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `data:` payloads of a `text/event-stream` body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|event| {
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                (!data.is_empty()).then(|| data.join("\n"))
            })
            .collect()
    }
}

/// A response whose body is read as it arrives.
pub struct Streaming {
    pub status: u16,
    pub headers: http::HeaderMap,
    body: hyper::body::Incoming,
    received: Vec<u8>,
}

impl Streaming {
    /// Reads body frames until `done` holds for everything received so far, and
    /// returns it; panics if the body ends first or nothing arrives for 30 s.
    pub async fn read_until(&mut self, done: impl Fn(&str) -> bool) -> String {
        loop {
            let text = String::from_utf8_lossy(&self.received).into_owned();
            if done(&text) {
                return text;
            }
            let frame = tokio::time::timeout(std::time::Duration::from_secs(30), self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("stalled after receiving: {text}"))
                .unwrap_or_else(|| panic!("body ended after: {text}"))
                .expect("body frame");
            if let Ok(data) = frame.into_data() {
                self.received.extend_from_slice(&data);
            }
        }
    }
}

/// Sends a request and returns as soon as the response head arrives.
pub async fn open(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Streaming {
    let (parts, body) = exchange(method, url, headers, body.into())
        .await
        .into_parts();
    Streaming {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
        received: Vec::new(),
    }
}

async fn exchange(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> http::Response<hyper::body::Incoming> {
    let uri: http::Uri = url.parse().expect("valid URL");
    let authority = uri.authority().expect("URL has a host").clone();
    let stream = tokio::net::TcpStream::connect(authority.as_str())
        .await
        .unwrap_or_else(|e| panic!("connecting to {authority}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header("host", authority.as_str());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body)).expect("valid request");
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        sender.send_request(request),
    )
    .await
    .expect("response within 60 s")
    .expect("response")
}

/// Sends one request on a fresh connection and collects the whole response.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let response = open(method, url, headers, body).await;
    let body = tokio::time::timeout(std::time::Duration::from_secs(60), response.body.collect())
        .await
        .expect("body within 60 s")
        .expect("body")
        .to_bytes();
    Reply {
        status: response.status,
        headers: response.headers,
        body,
    }
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    send("GET", url, headers, Bytes::new()).await
}

pub async fn post_json(url: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send("POST", url, &all, body.to_string()).await
}

/// A TCP connection from the loopback address `from` (all of 127.0.0.0/8 is local on
/// Linux), so that a test can act as several clients.
pub async fn connect_from(
    from: std::net::IpAddr,
    to: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// The head of a chat request to `address` declaring `declared` body bytes, and the
/// first `sent` of them: an upload to abandon.
pub fn partial_upload(address: std::net::SocketAddr, declared: usize, sent: usize) -> Vec<u8> {
    let mut bytes = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
    )
    .into_bytes();
    bytes.extend(std::iter::repeat_n(b' ', sent));
    bytes
}
