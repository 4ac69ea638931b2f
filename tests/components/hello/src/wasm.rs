use spin_sdk::http::{IntoResponse, Request, Response, body::IncomingBodyExt};
use spin_sdk::http_service;

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    match request.uri().path() {
        "/hello" => return Response::new("hello".to_string()),
        "/counter" => return count().await,
        _ => {}
    }
    let route = request.uri().path().to_string();
    if let Some(key) = super::key_under(&route, "/incr/") {
        let body = request.into_body().bytes().await.unwrap_or_default();
        return match super::parse_delta(&body) {
            Ok(delta) => keyvalue::increment(key, delta),
            Err(message) => keyvalue::reply(400, message),
        };
    }
    if let Some(key) = super::key_under(&route, "/cas/") {
        return keyvalue::add_one_with_cas(key);
    }
    if let Some(key) = super::key_under(&route, "/raw/") {
        return raw(key).await;
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

async fn count() -> spin_sdk::http::Response<String> {
    use spin_sdk::key_value::Store;
    let outcome = async {
        let store = Store::open("default").await?;
        let next = super::next_count(store.get("hits").await?.as_deref());
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
async fn raw(key: &str) -> spin_sdk::http::Response<String> {
    use spin_sdk::key_value::Store;
    let outcome = async { Store::open("default").await?.get(key).await }.await;
    match outcome {
        Ok(Some(bytes)) => keyvalue::reply(200, super::hex(&bytes)),
        Ok(None) => keyvalue::reply(404, "absent".into()),
        Err(e) => keyvalue::reply(500, format!("key-value error: {e:?}")),
    }
}

mod keyvalue {
    spin_sdk::wit_bindgen::generate!({
        inline: "
            package chatgate:hello;
            world keyvalue-client {
                import wasi:keyvalue/store@0.2.0-draft2;
                import wasi:keyvalue/atomics@0.2.0-draft2;
            }
        ",
        path: "../../../wit",
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
            let next = super::super::next_count(current.as_deref());
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
