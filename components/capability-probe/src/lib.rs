//! HTTP middleware for the dependency-isolation tests (`tests/tests/isolation.rs`): before
//! passing a request on, it tries each configuration-bearing capability and appends one
//! `x-probe` response header saying what each attempt got, e.g.
//! `variables=ok:s3cret;spin-kv=ok;wasi-kv=ok:1;http=200;env=ok:probe;files=0;tcp=denied`.
//!
//! What it tries, from request headers (absent: that probe is skipped):
//! * `variables`: reads the variable `probe_secret`;
//! * `spin-kv` / `wasi-kv`: opens the store `default` with `spin:key-value` and with
//!   `wasi:keyvalue` (and increments the key `probe`, atomically);
//! * `http`: `GET` of the URL in `x-probe-url` through `wasi:http/client`;
//! * `env`: the environment variable `PROBE_ENV`;
//! * `files`: the preopened directories (the number of entries of `/`);
//! * `tcp`: a TCP connection to the address in `x-probe-tcp` (`wasi:sockets`).

/// One probe's outcome, as it appears in the report.
pub fn outcome<T: std::fmt::Display, E: std::fmt::Debug>(result: Result<T, E>) -> String {
    match result {
        Ok(value) => format!("ok:{value}"),
        Err(error) => format!("err:{}", compact(&format!("{error:?}"))),
    }
}

/// Error text reduced to what fits a header value: letters, digits and a few separators.
pub fn compact(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' ' | ':' | '(' | ')'))
        .take(120)
        .collect()
}

#[cfg(target_arch = "wasm32")]
// The generated bindings (`wit_bindgen::generate!`, `export!`) are unsafe glue;
// nothing else in the crate may use `unsafe` (workspace lint).
#[allow(unsafe_code)]
mod wasm {
    use spin_sdk::http::{BoxBody, HeaderValue, Request, Response, box_body, next};
    use spin_sdk::http_service;

    mod keyvalue {
        spin_sdk::wit_bindgen::generate!({
            inline: r#"
                package chatgate:probe;
                world keyvalue-client {
                    import wasi:keyvalue/store@0.2.0-draft2;
                    import wasi:keyvalue/atomics@0.2.0-draft2;
                }
            "#,
            path: "../../wit/deps/keyvalue-2024-10-17",
            world: "chatgate:probe/keyvalue-client",
            runtime_path: "::spin_sdk::wit_bindgen::rt",
            generate_all,
        });
    }
    use keyvalue::wasi::keyvalue::{atomics, store};

    #[http_service]
    async fn handle(request: Request) -> Response<BoxBody> {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (url, tcp) = (header("x-probe-url"), header("x-probe-tcp"));
        let mut report = Vec::new();

        report.push(format!(
            "variables={}",
            super::outcome(spin_sdk::variables::get("probe_secret").await)
        ));
        report.push(format!(
            "spin-kv={}",
            super::outcome(
                spin_sdk::key_value::Store::open("default")
                    .await
                    .map(|_| "open")
            )
        ));
        report.push(format!(
            "wasi-kv={}",
            super::outcome(
                store::open("default").and_then(|bucket| atomics::increment(&bucket, "probe", 1))
            )
        ));
        if let Some(url) = url {
            let status = spin_sdk::http::get(url).await.map(|r| r.status().as_u16());
            report.push(format!("http={}", super::outcome(status)));
        }
        report.push(format!(
            "env={}",
            super::outcome(std::env::var("PROBE_ENV"))
        ));
        report.push(format!(
            "files={}",
            super::outcome(std::fs::read_dir("/").map(|entries| entries.count()))
        ));
        if let Some(address) = tcp {
            let connected = std::net::TcpStream::connect(address.as_str()).map(|_| "connected");
            report.push(format!("tcp={}", super::outcome(connected)));
        }

        let mut response = match next(request.map(box_body)).await {
            Ok(response) => response.map(box_body),
            Err(code) => {
                let mut response = Response::new(box_body(format!("inner failed: {code:?}")));
                *response.status_mut() = spin_sdk::http::StatusCode::BAD_GATEWAY;
                response
            }
        };
        if let Ok(value) = HeaderValue::from_str(&report.join(";")) {
            response.headers_mut().append("x-probe", value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_fit_a_header() {
        assert_eq!(outcome::<_, ()>(Ok(3)), "ok:3");
        assert_eq!(
            outcome::<u8, _>(Err("Undefined(\"x\"); rest")),
            "err:Undefined(x) rest"
        );
    }
}
