//! `GET /hello` answers `hello`; `POST /counter` increments a counter in the `default`
//! key-value store and answers its new value (or the store error); any other request is
//! echoed back as JSON so that middleware tests can see exactly what reached the inner handler.

/// The counter value after `previous` (missing or unreadable values restart at zero).
pub fn next_count(previous: Option<&[u8]>) -> u64 {
    previous
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| text.parse::<u64>().ok())
        .map_or(1, |n| n.saturating_add(1))
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

#[cfg(test)]
mod tests {
    #[test]
    fn counter_starts_at_one_and_increments() {
        assert_eq!(super::next_count(None), 1);
        assert_eq!(super::next_count(Some(b"41")), 42);
        assert_eq!(super::next_count(Some(b"garbage")), 1);
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
