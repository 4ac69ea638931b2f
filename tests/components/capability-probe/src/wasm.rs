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
        path: "../../../wit/deps/keyvalue-2024-10-17",
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
    // `x-probe-read: /a,/b`: each file's content (`read0=ok:...`), `x-probe-write: /c`:
    // whether writing there succeeds (the `files` tests).
    if let Some(paths) = header("x-probe-read") {
        for (i, path) in paths.split(',').enumerate() {
            let content = std::fs::read_to_string(path).map(|text| super::compact(text.trim()));
            report.push(format!("read{i}={}", super::outcome(content)));
        }
    }
    if let Some(path) = header("x-probe-write") {
        let written = std::fs::write(&path, "overwritten").map(|()| "written");
        report.push(format!("write={}", super::outcome(written)));
    }
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
