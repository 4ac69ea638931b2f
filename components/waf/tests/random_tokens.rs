//! Random tokens a browser or an SDK sends with every request -- the OpenID Connect
//! redirect's `code` and `state`, an Entra ID access token, an API key, W3C trace context
//! -- never get a request blocked by the default rules, nor by OWASP CRS 3.3 under the
//! prompt-field policy (when Debian's `modsecurity-crs` is installed), however the dice fall.
//!
//! The rare token that libinjection reads as SQL (a digit, `-`, `-`: a number and a
//! comment) is what blocked one sign-in in about 15,000 before rules 40120-40122: such
//! tokens are found by libinjection itself among many random ones, then sent through the
//! rules with a sample of ordinary ones.
//!
//! Run: `cargo test --release -p waf --test random_tokens`

use std::path::Path;

use chatgate_seclang::{FileSystem, LoadOptions, Request, RuleSet};

const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";

/// xorshift64: deterministic, so a failure names a token that fails again.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn token(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[(self.next() % alphabet.len() as u64) as usize]))
            .collect()
    }
}

const CRS_ENTRY: &str = "/usr/share/modsecurity-crs/owasp-crs.load";

/// The default rules, and CRS 3.3 after the prompt-field policy where it is installed.
fn rule_sets() -> Vec<(&'static str, RuleSet)> {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let load = |files: &[&str], skip_unsupported| {
        let text: String = files.iter().map(|f| format!("Include {f}\n")).collect();
        RuleSet::from_text(
            &FileSystem,
            &rules.join("random-tokens-test.conf").to_string_lossy(),
            &text,
            LoadOptions { skip_unsupported },
        )
        .unwrap_or_else(|e| panic!("{files:?} does not load: {e}"))
    };
    let mut sets = vec![(
        "default rules",
        load(&[&rules.join("default.conf").to_string_lossy()], false),
    )];
    if Path::new(CRS_ENTRY).exists() {
        let policy = rules.join("chat-policy.conf");
        sets.push((
            "CRS 3.3 + policy",
            load(&[&policy.to_string_lossy(), CRS_ENTRY], true),
        ));
    }
    sets
}

fn browser_get(uri: String, extra: Vec<(String, String)>) -> Request {
    let mut headers = vec![
        ("Host".to_string(), "chat.contoso.example".to_string()),
        (
            "User-Agent".to_string(),
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".to_string(),
        ),
        ("Accept".to_string(), "*/*".to_string()),
    ];
    headers.extend(extra);
    Request {
        method: "GET".into(),
        uri,
        protocol: "HTTP/1.1".into(),
        headers,
        body: Vec::new(),
        remote_addr: "192.0.2.10".into(),
        remote_port: 40000,
        unique_id: "random-tokens".into(),
    }
}

fn assert_passes(rule_sets: &[(&str, RuleSet)], request: &Request, what: &str) {
    for (name, rules) in rule_sets {
        let outcome = rules.evaluate(request);
        assert!(
            outcome.blocking().is_none(),
            "{what} blocked by the {name}: {} {:?}, rules {:?}",
            request.method,
            request.uri,
            outcome.matches.iter().map(|m| m.id).collect::<Vec<_>>()
        );
    }
}

/// The UI's `state` is 16 random bytes in base64url (22 characters); Entra ID's `code` is
/// several hundred characters of base64url and dots.
#[test]
fn an_openid_connect_redirect_passes_whatever_its_state_and_code() {
    let rules = rule_sets();
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    let mut read_as_sql = Vec::new();
    for _ in 0..300_000 {
        let state = dice.token(BASE64URL, 22);
        if libinjectionrs::detect_sqli(state.as_bytes()).is_injection() {
            read_as_sql.push(state);
        }
    }
    // About 68 in a million: the test would prove nothing without some.
    eprintln!(
        "{} of 300,000 random states read as SQL by libinjection",
        read_as_sql.len()
    );
    assert!(
        read_as_sql.len() >= 5,
        "only {} of 300,000 random states read as SQL",
        read_as_sql.len()
    );
    for state in &read_as_sql {
        let code = format!("0.{}", dice.token(BASE64URL, 700));
        let uri = format!(
            "/?code={code}&state={state}&session_state={}",
            dice.token(HEX, 32)
        );
        assert_passes(
            &rules,
            &browser_get(uri, Vec::new()),
            "a redirect whose state reads as SQL",
        );
        let uri = format!("/?code={state}&state={}", dice.token(BASE64URL, 22));
        assert_passes(
            &rules,
            &browser_get(uri, Vec::new()),
            "a redirect whose code reads as SQL",
        );
    }
    for _ in 0..500 {
        let uri = format!(
            "/?code=0.{}&state={}",
            dice.token(BASE64URL, 700),
            dice.token(BASE64URL, 22)
        );
        assert_passes(&rules, &browser_get(uri, Vec::new()), "a random redirect");
    }
}

/// What every API call carries: a bearer token shaped like Entra ID's (a JWT: three
/// base64url parts), or an API key, with trace context and a request id.
#[test]
fn random_credentials_and_trace_context_pass() {
    let rules = rule_sets();
    let mut dice = Dice(0xD1B5_4A32_D192_ED03);
    for _ in 0..1_000 {
        let jwt = format!(
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.{}.{}",
            dice.token(BASE64URL, 900),
            dice.token(BASE64URL, 342)
        );
        let headers = vec![
            ("Authorization".to_string(), format!("Bearer {jwt}")),
            (
                "traceparent".to_string(),
                format!("00-{}-{}-01", dice.token(HEX, 32), dice.token(HEX, 16)),
            ),
            ("x-request-id".to_string(), dice.token(BASE64URL, 26)),
        ];
        assert_passes(
            &rules,
            &browser_get("/v1/models".into(), headers),
            "a random bearer token",
        );
        let headers = vec![("api-key".to_string(), dice.token(BASE64URL, 48))];
        assert_passes(
            &rules,
            &browser_get("/v1/models".into(), headers),
            "a random API key",
        );
    }
}
