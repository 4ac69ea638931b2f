//! The chat web app's static files, served as a browser should get them.
//!
//! `build.rs` embeds `app/` at build time: every file but `index.html` under a name
//! carrying a hash of its content, each with gzip and brotli variants when smaller.
//! [`respond`] decides the whole answer for a method, path and request headers (status,
//! headers, which bytes), so everything here is tested natively; `src/wasm.rs` only
//! moves it between WASI and these functions.
//!
//! Caching: hashed assets are `immutable` for a year (a new build changes their names);
//! the page itself is `no-cache` (revalidated with its `ETag` on every load), so a new
//! build is picked up at once. Every answer, errors included, carries the security
//! headers of [`SECURITY_HEADERS`].

use chatgate_guest::openai_error::{INVALID_REQUEST, error_json};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Where it is served: `/index.html` or `/assets/<stem>.<hash>.<ext>`.
    pub path: &'static str,
    pub content_type: &'static str,
    /// Whether the name carries the content hash (and may be cached for ever).
    pub immutable: bool,
    /// SipHash-2-4 (zero keys) of `identity`, 16 hex digits.
    pub hash: &'static str,
    pub identity: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub brotli: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The page's Content-Security-Policy without sign-in: scripts, styles, images and API
/// calls from this origin only; no inline script or style, no `eval`, no plugins, no
/// framing, no `<base>`. With OpenID Connect, `connect-src` adds the authority's origin
/// ([`content_security_policy`]).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; manifest-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The Content-Security-Policy for `settings`: [`CONTENT_SECURITY_POLICY`], whose
/// `connect-src` also allows the OpenID Connect authority's origin when one is set (the
/// app fetches its discovery document and token endpoint there).
pub fn content_security_policy(settings: &Settings) -> String {
    match &settings.oidc {
        Some(oidc) => CONTENT_SECURITY_POLICY.replace(
            "connect-src 'self'",
            &format!("connect-src 'self' {}", oidc.origin),
        ),
        None => CONTENT_SECURITY_POLICY.to_string(),
    }
}

/// Sent with every answer of this component, after its Content-Security-Policy.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    // For browsers that predate `frame-ancestors`.
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
];

pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
pub const NO_CACHE: &str = "no-cache";

/// The variables `ui` reads.
pub const VARIABLES: [&str; 3] = ["ui_oidc_authority", "ui_oidc_client_id", "ui_oidc_scopes"];

/// Scopes asked for when `ui_oidc_scopes` is empty.
pub const DEFAULT_SCOPES: &str = "openid profile offline_access";

/// OpenID Connect sign-in, as the page is told it (`/config.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oidc {
    /// The issuer URL the discovery document hangs off
    /// (`<authority>/.well-known/openid-configuration`).
    pub authority: String,
    /// `scheme://host[:port]` of the authority, which the CSP lets the page reach.
    pub origin: String,
    pub client_id: String,
    pub scopes: String,
}

/// What the page is configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `None`: API keys only.
    pub oidc: Option<Oidc>,
    /// Why the sign-in variables were not usable, told to the page (and so its user).
    pub oidc_error: Option<String>,
}

impl Settings {
    /// From the variables' values (`None`: unset or unreadable). An authority must be an
    /// `https` URL, or `http` on a loopback host (development and tests), and needs a
    /// client id.
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Settings {
        let value = |name: &str| get(name).map(|v| v.trim().to_string()).unwrap_or_default();
        let authority = value("ui_oidc_authority");
        if authority.is_empty() {
            return Settings::default();
        }
        let refused = |why: String| Settings {
            oidc: None,
            oidc_error: Some(why),
        };
        let Some(origin) = authority_origin(&authority) else {
            return refused(format!(
                "ui_oidc_authority must be an https URL (http only on a loopback host); it is {authority:?}"
            ));
        };
        let client_id = value("ui_oidc_client_id");
        if client_id.is_empty() {
            return refused("ui_oidc_authority is set but ui_oidc_client_id is empty".into());
        }
        let scopes = match value("ui_oidc_scopes") {
            scopes if scopes.is_empty() => DEFAULT_SCOPES.to_string(),
            scopes => scopes,
        };
        Settings {
            oidc: Some(Oidc {
                authority: authority.trim_end_matches('/').to_string(),
                origin,
                client_id,
                scopes,
            }),
            oidc_error: None,
        }
    }

    /// The page's `/config.json`.
    pub fn config_json(&self) -> String {
        let oidc = self.oidc.as_ref().map(|o| {
            serde_json::json!({"authority": o.authority, "client_id": o.client_id, "scopes": o.scopes})
        });
        serde_json::json!({"oidc": oidc, "oidc_error": self.oidc_error}).to_string()
    }
}

/// The origin of an authority URL: `https://host[:port]`, or `http://` on a loopback host.
fn authority_origin(authority: &str) -> Option<String> {
    let uri: http::Uri = authority.parse().ok()?;
    let host = uri.host()?;
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    let scheme = uri.scheme_str()?;
    if !(scheme == "https" || (scheme == "http" && loopback)) || uri.query().is_some() {
        return None;
    }
    let authority = uri.authority()?.as_str();
    if authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{authority}"))
}

/// A content coding of a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    fn token(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }
}

/// The quality `accept_encoding` gives `coding` (RFC 9110 §12.5.3): its own entry,
/// else `*`'s, else 0 (identity: 1 unless refused).
fn quality(accept_encoding: &str, coding: &str) -> f32 {
    let mut wildcard = None;
    for entry in accept_encoding.split(',') {
        let mut parts = entry.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(coding) {
            return q;
        }
        if name == "*" {
            wildcard = Some(q);
        }
    }
    wildcard.unwrap_or(if coding == "identity" { 1.0 } else { 0.0 })
}

/// The coding to send `asset` in: the acceptable variant with the highest quality,
/// brotli before gzip before identity on a tie. Identity when nothing else is
/// acceptable, even if refused (every client can read it).
pub fn negotiate(accept_encoding: Option<&str>, asset: &Asset) -> Encoding {
    let Some(accept) = accept_encoding else {
        return Encoding::Identity;
    };
    let mut best = (quality(accept, "identity"), Encoding::Identity);
    for (available, coding, encoding) in [
        (asset.gzip.is_some(), "gzip", Encoding::Gzip),
        (asset.brotli.is_some(), "br", Encoding::Brotli),
    ] {
        let q = quality(accept, coding);
        if available && q > 0.0 && q >= best.0 {
            best = (q, encoding);
        }
    }
    best.1
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// Empty for `HEAD` and `304`.
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Static(&'static [u8]),
    Owned(String),
}

impl Body {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Body::Static(bytes) => bytes,
            Body::Owned(text) => text.as_bytes(),
        }
    }
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The asset served at `path`: `/` is the page.
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The page, as served at `/`.
pub fn index() -> &'static Asset {
    find("/").expect("build.rs always embeds index.html")
}

fn with_security_headers(
    settings: &Settings,
    status: u16,
    mut headers: Vec<(&'static str, String)>,
    body: Body,
) -> Reply {
    headers.push(("content-security-policy", content_security_policy(settings)));
    headers.extend(SECURITY_HEADERS.iter().map(|(n, v)| (*n, v.to_string())));
    Reply {
        status,
        headers,
        body,
    }
}

fn error(
    settings: &Settings,
    status: u16,
    message: &str,
    code: &str,
    extra: Vec<(&'static str, String)>,
) -> Reply {
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("cache-control", "no-store".to_string()),
    ];
    headers.extend(extra);
    let body = error_json(message, INVALID_REQUEST, None, code).to_string();
    with_security_headers(settings, status, headers, Body::Owned(body))
}

/// Whether `if_none_match` (a list of entity tags, or `*`) names `etag`; weak
/// comparison, as RFC 9110 §13.1.2 asks for `If-None-Match`.
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    if_none_match
        .split(',')
        .any(|tag| tag.trim() == "*" || bare(tag) == bare(etag))
}

/// The request headers [`respond`] reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestHeaders<'a> {
    pub accept_encoding: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
}

/// Where the page reads its configuration (sign-in).
pub const CONFIG_PATH: &str = "/config.json";

/// The whole answer to `method path`, for a page configured with `settings`.
pub fn respond(
    method: &str,
    path: &str,
    request: RequestHeaders<'_>,
    settings: &Settings,
) -> Reply {
    let asset = find(path);
    if asset.is_none() && path != CONFIG_PATH {
        return error(
            settings,
            404,
            &format!("No page or file at {path}. The chat app is at /, the API under /v1."),
            "not_found",
            Vec::new(),
        );
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return error(
                settings,
                405,
                &format!("{method} is not allowed here; the chat app's files are read with GET."),
                "method_not_allowed",
                vec![("allow", "GET, HEAD".to_string())],
            );
        }
    };
    let Some(asset) = asset else {
        let headers = vec![
            ("content-type", "application/json".to_string()),
            ("cache-control", "no-store".to_string()),
        ];
        let body = if head {
            String::new()
        } else {
            settings.config_json()
        };
        return with_security_headers(settings, 200, headers, Body::Owned(body));
    };
    let encoding = negotiate(request.accept_encoding, asset);
    let (bytes, suffix) = match encoding {
        Encoding::Identity => (asset.identity, ""),
        Encoding::Gzip => (asset.gzip.unwrap_or(asset.identity), "-gzip"),
        Encoding::Brotli => (asset.brotli.unwrap_or(asset.identity), "-br"),
    };
    let etag = format!("\"{}{suffix}\"", asset.hash);
    let cache = if asset.immutable { IMMUTABLE } else { NO_CACHE };
    let mut headers = vec![
        ("content-type", asset.content_type.to_string()),
        ("cache-control", cache.to_string()),
        ("etag", etag.clone()),
    ];
    if asset.gzip.is_some() || asset.brotli.is_some() {
        headers.push(("vary", "accept-encoding".to_string()));
    }
    if request
        .if_none_match
        .is_some_and(|tags| matches_etag(tags, &etag))
    {
        return with_security_headers(settings, 304, headers, Body::Static(b""));
    }
    if let Some(coding) = encoding.token() {
        headers.push(("content-encoding", coding.to_string()));
    }
    let body = if head { b"" as &[u8] } else { bytes };
    with_security_headers(settings, 200, headers, Body::Static(body))
}

#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(test)]
mod tests;
