//! `GET /hello` answers `hello`; `POST /counter` increments a counter in the `default`
//! key-value store and answers its new value (or the store error); any other request is
//! echoed back as JSON so that middleware tests can see exactly what reached the inner handler.
//!
//! The `wasi:keyvalue` routes, on the `default` store, answer the new value or a 500 naming
//! the store error:
//! * `POST /incr/<key>`: atomic `increment` by the request body (a decimal integer; empty: 1);
//! * `POST /cas/<key>`: adds 1 to a decimal counter with compare-and-swap, retrying on conflict;
//! * `GET /raw/<key>`: the stored bytes, read through `spin:key-value`, as lowercase hex
//!   (404 when absent).

/// The counter value after `previous` (missing or unreadable values restart at zero).
pub fn next_count(previous: Option<&[u8]>) -> u64 {
    previous
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| text.parse::<u64>().ok())
        .map_or(1, |n| n.saturating_add(1))
}

/// The key addressed by `path` under `prefix` (e.g. `/incr/`), if it names one.
pub fn key_under<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix).filter(|key| !key.is_empty())
}

/// The increment a request body asks for: a decimal integer, 1 when the body is blank.
pub fn parse_delta(body: &[u8]) -> Result<i64, String> {
    let text = std::str::from_utf8(body)
        .map_err(|_| "the delta must be a decimal integer".to_string())?
        .trim();
    if text.is_empty() {
        return Ok(1);
    }
    text.parse()
        .map_err(|_| "the delta must be a decimal integer".to_string())
}

/// Bytes as lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The JSON echo of a request: method, path, headers (in order) and body size.
pub fn echo_json(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body_len: usize,
) -> String {
    let headers: Vec<serde_json::Value> = headers
        .iter()
        .map(|(name, value)| serde_json::json!([name, value]))
        .collect();
    serde_json::json!({
        "method": method,
        "path": path,
        "headers": headers,
        "body_bytes": body_len,
    })
    .to_string()
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use spin_sdk::http::{IntoResponse, Request, Response, body::IncomingBodyExt};
    use spin_sdk::http_service;

    #[http_service]
    async fn handle(request: Request) -> impl IntoResponse {
        match request.uri().path() {
            "/hello" => return Response::new("hello".to_string()),
            "/counter" => return super::count().await,
            _ => {}
        }
        let route = request.uri().path().to_string();
        if let Some(key) = super::key_under(&route, "/incr/") {
            let body = request.into_body().bytes().await.unwrap_or_default();
            return match super::parse_delta(&body) {
                Ok(delta) => super::keyvalue::increment(key, delta),
                Err(message) => super::keyvalue::reply(400, message),
            };
        }
        if let Some(key) = super::key_under(&route, "/cas/") {
            return super::keyvalue::add_one_with_cas(key);
        }
        if let Some(key) = super::key_under(&route, "/raw/") {
            return super::raw(key).await;
        }
        let method = request.method().to_string();
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = request
            .into_body()
            .bytes()
            .await
            .map(|b| b.len())
            .unwrap_or(0);
        let mut response = Response::new(super::echo_json(&method, &path, &headers, body));
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        response
    }
}

#[cfg(target_arch = "wasm32")]
async fn count() -> spin_sdk::http::Response<String> {
    use spin_sdk::key_value::Store;
    let outcome = async {
        let store = Store::open("default").await?;
        let next = next_count(store.get("hits").await?.as_deref());
        store.set("hits", next.to_string()).await?;
        Ok::<_, spin_sdk::key_value::Error>(next)
    }
    .await;
    match outcome {
        Ok(n) => spin_sdk::http::Response::new(n.to_string()),
        Err(e) => {
            let mut response = spin_sdk::http::Response::new(format!("key-value error: {e:?}"));
            *response.status_mut() = spin_sdk::http::StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// Reads `key` through `spin:key-value`, to show what `wasi:keyvalue` wrote.
#[cfg(target_arch = "wasm32")]
async fn raw(key: &str) -> spin_sdk::http::Response<String> {
    use spin_sdk::key_value::Store;
    let outcome = async { Store::open("default").await?.get(key).await }.await;
    match outcome {
        Ok(Some(bytes)) => keyvalue::reply(200, hex(&bytes)),
        Ok(None) => keyvalue::reply(404, "absent".into()),
        Err(e) => keyvalue::reply(500, format!("key-value error: {e:?}")),
    }
}

#[cfg(target_arch = "wasm32")]
mod keyvalue {
    spin_sdk::wit_bindgen::generate!({
        inline: "
            package chatgate:hello;
            world keyvalue-client {
                import wasi:keyvalue/store@0.2.0-draft2;
                import wasi:keyvalue/atomics@0.2.0-draft2;
            }
        ",
        path: "../../wit",
        world: "chatgate:hello/keyvalue-client",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });

    use spin_sdk::http::{Response, StatusCode};
    use wasi::keyvalue::{atomics, store};

    pub fn reply(status: u16, body: String) -> Response<String> {
        let mut response = Response::new(body);
        *response.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        response
    }

    fn store_error(e: store::Error) -> Response<String> {
        reply(500, format!("key-value error: {e:?}"))
    }

    pub fn increment(key: &str, delta: i64) -> Response<String> {
        let outcome =
            store::open("default").and_then(|bucket| atomics::increment(&bucket, key, delta));
        match outcome {
            Ok(value) => reply(200, value.to_string()),
            Err(e) => store_error(e),
        }
    }

    pub fn add_one_with_cas(key: &str) -> Response<String> {
        let bucket = match store::open("default") {
            Ok(bucket) => bucket,
            Err(e) => return store_error(e),
        };
        let mut cas = match atomics::Cas::new(&bucket, key) {
            Ok(cas) => cas,
            Err(e) => return store_error(e),
        };
        let mut current = match cas.current() {
            Ok(current) => current,
            Err(e) => return store_error(e),
        };
        loop {
            let next = super::next_count(current.as_deref());
            match atomics::swap(cas, next.to_string().as_bytes()) {
                Ok(()) => return reply(200, next.to_string()),
                // The handle we get back already holds the value that beat us.
                Err(atomics::CasError::CasFailed(latest)) => {
                    current = match latest.current() {
                        Ok(value) => value,
                        Err(e) => return store_error(e),
                    };
                    cas = latest;
                }
                Err(atomics::CasError::StoreError(e)) => return store_error(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counter_starts_at_one_and_increments() {
        assert_eq!(super::next_count(None), 1);
        assert_eq!(super::next_count(Some(b"41")), 42);
        assert_eq!(super::next_count(Some(b"garbage")), 1);
    }

    #[test]
    fn keys_are_taken_from_the_path_after_the_route_prefix() {
        assert_eq!(super::key_under("/incr/hits", "/incr/"), Some("hits"));
        assert_eq!(super::key_under("/incr/", "/incr/"), None);
        assert_eq!(super::key_under("/cas/hits", "/incr/"), None);
    }

    #[test]
    fn delta_is_a_decimal_integer_defaulting_to_one() {
        assert_eq!(super::parse_delta(b""), Ok(1));
        assert_eq!(super::parse_delta(b" -7\n"), Ok(-7));
        assert!(super::parse_delta(b"1.5").is_err());
        assert!(super::parse_delta(&[0xff]).is_err());
    }

    #[test]
    fn hex_is_lowercase_and_zero_padded() {
        assert_eq!(super::hex(&[0x32, 0, 0xab]), "3200ab");
    }

    #[test]
    fn echo_keeps_header_order_and_counts_body() {
        let json = super::echo_json(
            "POST",
            "/x?y=1",
            &[("a".into(), "1".into()), ("b".into(), "2".into())],
            5,
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["headers"][1][0], "b");
        assert_eq!(v["body_bytes"], 5);
        assert_eq!(v["path"], "/x?y=1");
    }
}
