//! The request-level contract: who gets in, with which identity headers, and what a refusal says.

mod common;

use auth::config::Settings;
use auth::{
    AuthMethod, Identity, Outcome, authenticate, inward_unchanged, prepare_inward, refusal,
};
use common::*;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

const DEV_KEY: &str = "chatgate-dev-key";

fn settings(overrides: &[(&str, &str)]) -> Settings {
    let jwks = jwks();
    let mut values: Vec<(String, String)> = vec![
        (
            "auth_api_keys".into(),
            format!("dev={DEV_KEY},ops=another-key-9"),
        ),
        ("auth_jwks".into(), jwks),
        ("auth_issuer".into(), ISSUER.into()),
        ("auth_audience".into(), AUDIENCE.into()),
    ];
    for (name, value) in overrides {
        values.retain(|(n, _)| n != name);
        values.push((name.to_string(), value.to_string()));
    }
    Settings::read(|name| {
        Ok(values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone()))
    })
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn run(pairs: &[(&'static str, &str)], settings: &Settings) -> Outcome {
    authenticate(
        &Method::POST,
        "/v1/chat/completions",
        &headers(pairs),
        settings,
        NOW,
    )
}

fn forwarded(outcome: Outcome) -> Identity {
    match outcome {
        Outcome::Forward(Some(identity)) => identity,
        other => panic!("expected the request to be forwarded, got {other:?}"),
    }
}

/// Status, WWW-Authenticate and the parsed JSON body of a refusal.
fn refused(outcome: &Outcome) -> (StatusCode, Option<String>, Value) {
    let refusal = refusal(outcome).expect("expected a refusal");
    (
        refusal.status,
        refusal.www_authenticate,
        serde_json::from_str(&refusal.body).unwrap(),
    )
}

#[test]
fn api_key_in_bearer_or_api_key_header_is_accepted() {
    let bearer = format!("Bearer {DEV_KEY}");
    for pairs in [[("authorization", bearer.as_str())], [("api-key", DEV_KEY)]] {
        let identity = forwarded(run(&pairs, &settings(&[])));
        assert_eq!(identity.subject, "api-key:dev");
        assert_eq!(identity.method, AuthMethod::ApiKey);
    }
    let lowercase_scheme = forwarded(run(
        &[("authorization", "bearer another-key-9")],
        &settings(&[]),
    ));
    assert_eq!(lowercase_scheme.subject, "api-key:ops");
}

#[test]
fn wrong_api_keys_are_refused_without_echo() {
    for key in [
        "chatgate-dev-kez",
        "chatgate-dev-key-longer",
        "short",
        "two.parts",
    ] {
        let outcome = run(&[("api-key", key)], &settings(&[]));
        let (status, challenge, body) = refused(&outcome);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["param"].is_null());
        let challenge = challenge.unwrap();
        assert!(
            challenge.starts_with("Bearer realm=\"chatgate\", error=\"invalid_token\""),
            "{challenge}"
        );
        assert!(!body.to_string().contains(key) && !challenge.contains(key));
    }
}

#[test]
fn missing_credentials_get_a_plain_challenge() {
    let (status, challenge, body) = refused(&run(&[], &settings(&[])));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"chatgate\""));
    assert_eq!(body["error"]["code"], "invalid_api_key");
}

#[test]
fn unusable_authorization_headers_are_refused() {
    let cases: &[&[(&'static str, &str)]] = &[
        &[("authorization", "Basic ZGV2OmtleQ==")],
        &[("authorization", "Bearer")],
        &[("authorization", "Bearer a b")],
        &[
            ("authorization", "Bearer chatgate-dev-key"),
            ("api-key", DEV_KEY),
        ],
        &[("api-key", DEV_KEY), ("api-key", DEV_KEY)],
        &[("api-key", "  ")],
    ];
    for pairs in cases {
        let (status, challenge, _) = refused(&run(pairs, &settings(&[])));
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{pairs:?}");
        assert!(challenge.unwrap().contains("error=\"invalid_token\""));
    }
}

#[test]
fn a_valid_jwt_is_accepted_with_its_subject() {
    let token = valid_token();
    let identity = forwarded(run(
        &[("authorization", &format!("Bearer {token}"))],
        &settings(&[]),
    ));
    assert_eq!(identity.subject, "user-123");
    assert_eq!(identity.method, AuthMethod::Jwt);
}

#[test]
fn a_jwt_in_the_api_key_header_is_treated_as_an_api_key() {
    let outcome = run(&[("api-key", &valid_token())], &settings(&[]));
    assert_eq!(refused(&outcome).2["error"]["code"], "invalid_api_key");
}

#[test]
fn refused_jwts_explain_why_per_rfc_6750_without_echoing_the_token() {
    let mut expired = valid_claims();
    expired["exp"] = json!(NOW - 3_600);
    let cases = [
        (token_with_claims(&expired), "The token has expired"),
        (
            sign(&rs256_header(KID), &valid_claims(), key_b()),
            "The token signature is invalid",
        ),
        (
            sign(
                &json!({"alg": "HS256", "kid": KID}),
                &valid_claims(),
                key_a(),
            ),
            "Only RS256 tokens are accepted",
        ),
    ];
    for (token, description) in cases {
        let outcome = run(
            &[("authorization", &format!("Bearer {token}"))],
            &settings(&[]),
        );
        let (status, challenge, body) = refused(&outcome);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge.as_deref(),
            Some(format!("Bearer realm=\"chatgate\", error=\"invalid_token\", error_description=\"{description}\"").as_str())
        );
        assert_eq!(body["error"]["code"], "invalid_token");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        let signature = token.rsplit('.').next().unwrap();
        assert!(!body.to_string().contains(signature));
    }
}

#[test]
fn jwts_are_refused_when_no_jwks_is_configured() {
    let outcome = run(
        &[("authorization", &format!("Bearer {}", valid_token()))],
        &settings(&[("auth_jwks", "")]),
    );
    let (status, _, body) = refused(&outcome);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_token");
}

#[test]
fn api_keys_are_refused_when_none_are_configured() {
    let outcome = run(&[("api-key", DEV_KEY)], &settings(&[("auth_api_keys", "")]));
    assert_eq!(refused(&outcome).2["error"]["code"], "invalid_api_key");
}

#[test]
fn misconfiguration_fails_closed_naming_only_the_variable() {
    let bearer_jwt = format!("Bearer {}", valid_token());
    let cases: [(&str, &str, &str); 6] = [
        ("auth_mode", "sometimes", DEV_KEY),
        ("auth_api_keys", "dev=secret-value,broken", DEV_KEY),
        ("auth_clock_skew_seconds", "ten", DEV_KEY),
        ("auth_jwks", "{not json", &bearer_jwt),
        ("auth_issuer", "", &bearer_jwt),
        ("auth_audience", "", &bearer_jwt),
    ];
    for (variable, value, credential) in cases {
        let header = if credential.starts_with("Bearer ") {
            "authorization"
        } else {
            "api-key"
        };
        let outcome = run(&[(header, credential)], &settings(&[(variable, value)]));
        let (status, challenge, body) = refused(&outcome);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{variable}");
        assert_eq!(challenge, None);
        assert_eq!(body["error"]["code"], "auth_misconfigured");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(variable), "{message}");
        assert!(!message.contains("secret-value"));
    }
}

#[test]
fn disabled_mode_admits_loopback_clients_as_anonymous() {
    for client in ["127.0.0.1:50000", "[::1]:50000"] {
        let outcome = run(
            &[("spin-client-addr", client)],
            &settings(&[("auth_mode", "disabled")]),
        );
        let identity = forwarded(outcome);
        assert_eq!(identity.subject, "anonymous");
        assert_eq!(identity.method, AuthMethod::Disabled);
    }
}

#[test]
fn disabled_mode_refuses_clients_off_loopback_or_of_unknown_address() {
    for pairs in [
        &[("spin-client-addr", "10.1.2.3:50000")][..],
        &[("spin-client-addr", "not an address")][..],
        &[][..],
    ] {
        let outcome = run(pairs, &settings(&[("auth_mode", "disabled")]));
        assert!(
            matches!(outcome, Outcome::Unauthorized(_)),
            "{pairs:?}: {outcome:?}"
        );
    }
}

#[test]
fn only_get_healthz_is_exempt() {
    let s = settings(&[]);
    assert_eq!(
        authenticate(&Method::GET, "/healthz", &HeaderMap::new(), &s, NOW),
        Outcome::Forward(None)
    );
    for (method, path) in [
        (Method::POST, "/healthz"),
        (Method::GET, "/healthz/"),
        (Method::GET, "/healthzz"),
        (Method::HEAD, "/healthz"),
    ] {
        let outcome = authenticate(&method, path, &HeaderMap::new(), &s, NOW);
        assert!(
            matches!(outcome, Outcome::Unauthorized(_)),
            "{method} {path}"
        );
    }
    // Exempt even when the configuration is broken: probes must not depend on secrets.
    let broken = settings(&[("auth_mode", "???")]);
    assert_eq!(
        authenticate(&Method::GET, "/healthz", &HeaderMap::new(), &broken, NOW),
        Outcome::Forward(None)
    );
}

#[test]
fn inward_headers_lose_credentials_and_spoofed_identity() {
    let mut map = headers(&[
        ("authorization", "Bearer chatgate-dev-key"),
        ("api-key", "x"),
        ("x-chatgate-subject", "admin"),
        ("x-chatgate-subject", "root"),
        ("x-chatgate-auth", "jwt"),
        ("X-ChatGate-Role", "admin"),
        ("x-request-id", "rid-1"),
        ("content-type", "application/json"),
    ]);
    let identity = Identity {
        subject: "api-key:dev".into(),
        method: AuthMethod::ApiKey,
    };
    prepare_inward(&mut map, Some(&identity));
    assert_eq!(
        map.get_all("x-chatgate-subject").iter().collect::<Vec<_>>(),
        ["api-key:dev"]
    );
    assert_eq!(
        map.get_all("x-chatgate-auth").iter().collect::<Vec<_>>(),
        ["api-key"]
    );
    assert!(map.get("x-chatgate-role").is_none());
    assert!(map.get("authorization").is_none());
    assert!(map.get("api-key").is_none());
    assert_eq!(map["x-request-id"], "rid-1");
    assert_eq!(map["content-type"], "application/json");
}

/// The middleware hands a request on untouched exactly when `prepare_inward` would
/// change nothing: what `inward_unchanged` says must never skip a needed edit.
#[test]
fn a_request_goes_on_untouched_only_when_the_inward_rewrite_changes_nothing() {
    let identity = Identity {
        subject: "api-key:dev".into(),
        method: AuthMethod::ApiKey,
    };
    // Headers, the identity to assert, and whether the rewrite leaves the headers alone.
    type Case<'a> = (
        &'static [(&'static str, &'static str)],
        Option<&'a Identity>,
        bool,
    );
    let cases: [Case; 7] = [
        (
            &[("x-request-id", "r"), ("content-type", "text/plain")],
            None,
            true,
        ),
        (&[], None, true),
        (&[("x-request-id", "r")], Some(&identity), false),
        (&[("authorization", "Bearer x")], None, false),
        (&[("api-key", "k")], None, false),
        (&[("x-chatgate-subject", "admin")], None, false),
        (&[("x-chatgate-future-claim", "1")], None, false),
    ];
    for (pairs, identity, unchanged) in cases {
        let map = headers(pairs);
        assert_eq!(inward_unchanged(&map, identity), unchanged, "{pairs:?}");
        let mut rewritten = map.clone();
        prepare_inward(&mut rewritten, identity);
        assert_eq!(rewritten == map, unchanged, "{pairs:?}");
    }
}

#[test]
fn exempt_requests_are_stripped_but_get_no_identity() {
    let mut map = headers(&[("x-chatgate-subject", "admin"), ("x-chatgate-auth", "jwt")]);
    prepare_inward(&mut map, None);
    assert!(
        map.keys()
            .all(|name| !name.as_str().starts_with("x-chatgate-"))
    );
}

#[test]
fn disabled_mode_identity_headers() {
    let mut map = headers(&[("x-chatgate-subject", "admin")]);
    let identity = forwarded(run(
        &[("spin-client-addr", "127.0.0.1:1")],
        &settings(&[("auth_mode", "disabled")]),
    ));
    prepare_inward(&mut map, Some(&identity));
    assert_eq!(map["x-chatgate-subject"], "anonymous");
    assert_eq!(map["x-chatgate-auth"], "disabled");
}

#[test]
fn the_span_says_how_the_caller_was_authenticated_or_why_not_and_never_who() {
    let settings = settings(&[]);
    let key = run(&[("api-key", DEV_KEY)], &settings);
    assert_eq!(
        auth::span_attributes(&key),
        [
            ("chatgate.auth.outcome", "authenticated"),
            ("chatgate.auth.method", "api-key")
        ]
    );
    let wrong = run(&[("api-key", "not-a-key")], &settings);
    let attributes = auth::span_attributes(&wrong);
    assert_eq!(attributes[0], ("chatgate.auth.outcome", "refused"));
    assert_eq!(attributes[1].0, "chatgate.auth.failure");
    for (_, value) in auth::span_attributes(&key).iter().chain(&attributes) {
        assert!(
            !value.contains("dev") && !value.contains("not-a-key"),
            "{value}"
        );
    }
    let exempt = authenticate(&Method::GET, "/healthz", &HeaderMap::new(), &settings, NOW);
    assert_eq!(
        auth::span_attributes(&exempt),
        [("chatgate.auth.outcome", "exempt")]
    );
}
