use super::*;
use std::io::Read;

fn get(path: &str, accept_encoding: Option<&str>) -> Reply {
    respond(
        "GET",
        path,
        RequestHeaders {
            accept_encoding,
            if_none_match: None,
        },
        &Settings::default(),
    )
}

fn settings(values: &[(&str, &str)]) -> Settings {
    Settings::read(|name| {
        values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    })
}

fn page_text() -> String {
    String::from_utf8(index().identity.to_vec()).unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(data, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn the_page_is_served_at_the_root_uncached_and_names_hashed_assets_that_exist() {
    let reply = get("/", None);
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(reply.header("cache-control"), Some(NO_CACHE));
    assert_eq!(reply, get("/index.html", None));
    let page = page_text();
    let referenced: Vec<&str> = page
        .match_indices("\"/assets/")
        .map(|(at, _)| {
            let rest = &page[at + 1..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(
        referenced.len(),
        3,
        "icon, stylesheet, script: {referenced:?}"
    );
    for path in referenced {
        let asset = find(path).unwrap_or_else(|| panic!("{path} is not served"));
        assert!(asset.immutable);
        assert_eq!(get(path, None).header("cache-control"), Some(IMMUTABLE));
    }
}

#[test]
fn asset_names_carry_the_hash_of_their_content() {
    for asset in ASSETS.iter().filter(|a| a.immutable) {
        // build.rs's hash: SipHash-2-4, zero keys.
        #[allow(deprecated)]
        let hash = {
            use std::hash::Hasher as _;
            let mut hasher = std::hash::SipHasher::new();
            hasher.write(asset.identity);
            format!("{:016x}", hasher.finish())
        };
        assert_eq!(asset.hash, hash);
        assert!(
            asset.path.contains(&format!(".{}.", asset.hash)),
            "{}",
            asset.path
        );
    }
}

#[test]
fn the_page_has_no_inline_script_style_or_event_handler() {
    let page = page_text().to_ascii_lowercase();
    for (at, _) in page.match_indices("<script") {
        let tag = &page[at..at + page[at..].find('>').unwrap()];
        assert!(tag.contains(" src="), "inline script: {tag}");
    }
    assert!(!page.contains("<style"), "inline stylesheet");
    assert!(!page.contains(" style="), "style attribute");
    assert!(!page.contains("javascript:"));
    for (at, _) in page.match_indices(" on") {
        let attribute = &page[at + 1..];
        let name: String = attribute
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        assert!(
            !attribute[name.len()..].starts_with('='),
            "event handler attribute {name}"
        );
    }
}

#[test]
fn the_app_never_hands_text_to_html_parsing_sinks() {
    let script = ASSETS
        .iter()
        .find(|a| a.content_type.starts_with("text/javascript"))
        .unwrap();
    let script = std::str::from_utf8(script.identity).unwrap();
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "createContextualFragment",
    ] {
        assert!(!script.contains(sink), "app.js uses {sink}");
    }
}

#[test]
fn every_answer_carries_the_security_headers() {
    for reply in [
        get("/", Some("br")),
        get("/nowhere", None),
        respond(
            "DELETE",
            "/",
            RequestHeaders::default(),
            &Settings::default(),
        ),
    ] {
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(reply.header(name), Some(value), "{} {name}", reply.status);
        }
        assert_eq!(
            reply.header("content-security-policy"),
            Some(CONTENT_SECURITY_POLICY)
        );
    }
    let csp = CONTENT_SECURITY_POLICY;
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(csp.contains("script-src 'self'"));
}

#[test]
fn precompressed_variants_decode_to_the_file() {
    for asset in ASSETS {
        if asset.content_type.starts_with("text/") {
            assert!(
                asset.gzip.is_some() && asset.brotli.is_some(),
                "{}",
                asset.path
            );
        }
        if let Some(gzip) = asset.gzip {
            assert_eq!(gunzip(gzip), asset.identity, "{}", asset.path);
        }
        if let Some(brotli) = asset.brotli {
            assert_eq!(unbrotli(brotli), asset.identity, "{}", asset.path);
        }
    }
}

#[test]
fn the_encoding_follows_accept_encoding() {
    let page = index();
    let cases = [
        (None, Encoding::Identity),
        (Some(""), Encoding::Identity),
        (Some("gzip"), Encoding::Gzip),
        (Some("gzip, deflate, br, zstd"), Encoding::Brotli),
        (Some("br;q=0.5, gzip"), Encoding::Gzip),
        (Some("br;q=0, gzip;q=0"), Encoding::Identity),
        (Some("*"), Encoding::Brotli),
        (Some("*;q=0.5, br;q=0"), Encoding::Gzip),
        (Some("identity"), Encoding::Identity),
        (Some("GZIP"), Encoding::Gzip),
    ];
    for (accept, expected) in cases {
        assert_eq!(negotiate(accept, page), expected, "{accept:?}");
    }
    let br = get("/", Some("gzip, br"));
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(br.header("vary"), Some("accept-encoding"));
    assert_eq!(unbrotli(br.body.as_bytes()), page.identity);
    let gzip = get("/", Some("gzip"));
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(gzip.body.as_bytes()), page.identity);
    let plain = get("/", None);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body.as_bytes(), page.identity);
    assert_ne!(br.header("etag"), plain.header("etag"));
}

#[test]
fn a_matching_if_none_match_is_answered_304_without_body() {
    let first = get("/", Some("br"));
    let etag = first.header("etag").unwrap().to_string();
    for tags in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let reply = respond(
            "GET",
            "/",
            RequestHeaders {
                accept_encoding: Some("br"),
                if_none_match: Some(&tags),
            },
            &Settings::default(),
        );
        assert_eq!(reply.status, 304, "{tags}");
        assert!(reply.body.as_bytes().is_empty());
        assert_eq!(reply.header("etag"), Some(etag.as_str()));
    }
    let stale = respond(
        "GET",
        "/",
        RequestHeaders {
            accept_encoding: Some("br"),
            if_none_match: Some("\"0000000000000000-br\""),
        },
        &Settings::default(),
    );
    assert_eq!(stale.status, 200);
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let head = respond("HEAD", "/", RequestHeaders::default(), &Settings::default());
    let get = get("/", None);
    assert_eq!((head.status, &head.headers), (200, &get.headers));
    assert!(head.body.as_bytes().is_empty());
}

#[test]
fn unknown_paths_and_other_methods_get_openai_errors() {
    for path in [
        "/nowhere",
        "/assets/app.js",
        "/assets/",
        "/index.htm",
        "/v2/models",
    ] {
        let reply = get(path, None);
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let error: serde_json::Value = serde_json::from_slice(reply.body.as_bytes()).unwrap();
        assert_eq!(error["error"]["code"], "not_found");
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert!(error["error"]["message"].as_str().unwrap().contains(path));
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let reply = respond(method, "/", RequestHeaders::default(), &Settings::default());
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("GET, HEAD"));
        let error: serde_json::Value = serde_json::from_slice(reply.body.as_bytes()).unwrap();
        assert_eq!(error["error"]["code"], "method_not_allowed");
    }
}

/// Issue 15's budget: everything the page loads, compressed as a browser gets it.
#[test]
fn the_page_weighs_under_200_kb_compressed() {
    let total: usize = ASSETS
        .iter()
        .map(|a| a.brotli.or(a.gzip).unwrap_or(a.identity).len())
        .sum();
    let decoded: usize = ASSETS.iter().map(|a| a.identity.len()).sum();
    println!(
        "page weight: {total} bytes with brotli ({decoded} decoded), {} files",
        ASSETS.len()
    );
    assert!(total < 200 * 1024, "{total} bytes");
}

#[test]
fn without_sign_in_variables_the_page_is_told_api_keys_only() {
    let reply = get(CONFIG_PATH, None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let config: serde_json::Value = serde_json::from_slice(reply.body.as_bytes()).unwrap();
    assert_eq!(
        config,
        serde_json::json!({"oidc": null, "oidc_error": null})
    );
}

#[test]
fn an_oidc_authority_is_told_to_the_page_and_allowed_by_the_csp() {
    let configured = settings(&[
        (
            "ui_oidc_authority",
            "https://login.example.com/tenant/v2.0/",
        ),
        ("ui_oidc_client_id", "chat-app"),
        ("ui_oidc_scopes", ""),
    ]);
    let reply = respond("GET", CONFIG_PATH, RequestHeaders::default(), &configured);
    let config: serde_json::Value = serde_json::from_slice(reply.body.as_bytes()).unwrap();
    assert_eq!(
        config["oidc"],
        serde_json::json!({
            "authority": "https://login.example.com/tenant/v2.0",
            "client_id": "chat-app",
            "scopes": DEFAULT_SCOPES,
        })
    );
    let csp = reply.header("content-security-policy").unwrap();
    assert!(
        csp.contains("connect-src 'self' https://login.example.com;"),
        "{csp}"
    );
    let page = respond("GET", "/", RequestHeaders::default(), &configured);
    assert_eq!(page.header("content-security-policy"), Some(csp));
}

#[test]
fn unusable_oidc_variables_are_refused_with_the_reason() {
    for (authority, client_id, reason) in [
        ("http://login.example.com", "app", "https"),
        ("javascript:alert(1)", "app", "https"),
        ("https://user@login.example.com", "app", "https"),
        ("https://login.example.com/?x=1", "app", "https"),
        ("https://login.example.com", "", "ui_oidc_client_id"),
    ] {
        let refused = settings(&[
            ("ui_oidc_authority", authority),
            ("ui_oidc_client_id", client_id),
        ]);
        assert_eq!(refused.oidc, None, "{authority}");
        assert!(
            refused.oidc_error.as_deref().unwrap().contains(reason),
            "{authority}: {refused:?}"
        );
        assert_eq!(content_security_policy(&refused), CONTENT_SECURITY_POLICY);
    }
    let loopback = settings(&[
        ("ui_oidc_authority", "http://127.0.0.1:8080"),
        ("ui_oidc_client_id", "app"),
        ("ui_oidc_scopes", "openid api://chat/.default"),
    ]);
    let oidc = loopback.oidc.unwrap();
    assert_eq!(oidc.origin, "http://127.0.0.1:8080");
    assert_eq!(oidc.scopes, "openid api://chat/.default");
}
