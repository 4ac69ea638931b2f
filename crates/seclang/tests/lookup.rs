//! `@geoLookup` with a `SecGeoLookupDb` database, and `@rbl` with a resolver, against
//! libmodsecurity 3.0.9's semantics (source read: `src/utils/geo_lookup.cc`,
//! `src/operators/rbl.cc`; see `chatgate_seclang::lookup`).

#[path = "support/mmdb.rs"]
mod mmdb;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use chatgate_seclang::lookup::{GeoDb, Rbl, Resolver, decode_httpbl, rbl_name};
use chatgate_seclang::{Files, LoadOptions, MemoryFiles, Request, RuleSet};
use mmdb::Value::{Double, Map, Str};

/// A City-shaped record for 192.0.2.0/24 and a Country-shaped one for 198.51.100.0/24.
fn database() -> Vec<u8> {
    mmdb::ipv4_database(
        "GeoLite2-City",
        &[
            (
                [192, 0, 2, 0],
                24,
                Map(vec![
                    (
                        "city",
                        Map(vec![("names", Map(vec![("en", Str("Paris"))]))]),
                    ),
                    (
                        "continent",
                        Map(vec![
                            ("code", Str("EU")),
                            ("names", Map(vec![("en", Str("Europe"))])),
                        ]),
                    ),
                    (
                        "country",
                        Map(vec![
                            ("iso_code", Str("FR")),
                            (
                                "names",
                                Map(vec![("en", Str("France")), ("fr", Str("France"))]),
                            ),
                        ]),
                    ),
                    (
                        "location",
                        Map(vec![
                            ("latitude", Double(48.8566)),
                            ("longitude", Double(2.3522)),
                        ]),
                    ),
                    ("postal", Map(vec![("code", Str("75001"))])),
                ]),
            ),
            (
                [198, 51, 100, 0],
                24,
                Map(vec![(
                    "country",
                    Map(vec![
                        ("iso_code", Str("KP")),
                        ("names", Map(vec![("en", Str("North Korea"))])),
                    ]),
                )]),
            ),
        ],
    )
}

/// Text files plus binary ones, as a bundle holds them.
struct WithBinary {
    text: MemoryFiles,
    binary: BTreeMap<String, Vec<u8>>,
}

impl Files for WithBinary {
    fn read(&self, path: &str) -> std::io::Result<String> {
        self.text.read(path)
    }
    fn read_bytes(&self, path: &str) -> std::io::Result<Vec<u8>> {
        match self.binary.get(path) {
            Some(b) => Ok(b.clone()),
            None => self.text.read_bytes(path),
        }
    }
    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>> {
        self.text.glob(pattern)
    }
}

fn load(rules: &str, db: Option<Vec<u8>>) -> Result<RuleSet, String> {
    let files = WithBinary {
        text: MemoryFiles::default(),
        binary: db
            .map(|b| ("/rules/geo/test.mmdb".to_string(), b))
            .into_iter()
            .collect(),
    };
    RuleSet::from_text(&files, "/rules/main.conf", rules, LoadOptions::default())
        .map_err(|e| e.to_string())
}

fn from(addr: &str) -> Request {
    Request {
        method: "GET".into(),
        uri: "/".into(),
        protocol: "HTTP/1.1".into(),
        remote_addr: addr.into(),
        ..Request::default()
    }
}

/// Copies every GEO variable into TX (a `GEO:x` macro that does not exist expands to
/// nothing in either engine) and records whether `@geoLookup` matched.
const GEO_RULES: &str = r#"
SecRule REMOTE_ADDR "@geoLookup" "id:1,phase:1,pass,nolog,setvar:tx.geo_matched=1"
SecAction "id:2,phase:1,pass,nolog,setvar:'tx.cc=%{geo.country_code}',setvar:'tx.name=%{geo.country_name}',setvar:'tx.continent=%{geo.country_continent}',setvar:'tx.city=%{geo.city}',setvar:'tx.postal=%{geo.postal_code}',setvar:'tx.lat=%{geo.latitude}',setvar:'tx.lon=%{geo.longitude}'"
SecRule &GEO "@rx ^(\d+)$" "id:4,phase:1,pass,nolog,capture,setvar:'tx.geo_count=%{tx.1}'"
SecRule REMOTE_ADDR "@geoLookup" "id:3,phase:1,deny,status:403,chain"
    SecRule GEO:COUNTRY_CODE "@within KP IR" ""
"#;

#[test]
fn the_mmdb_writer_writes_what_maxminddb_reads() {
    let db = GeoDb::from_bytes(database()).unwrap();
    assert_eq!(
        db.lookup(b"192.0.2.200").unwrap()[0],
        ("COUNTRY_CODE", "FR".to_string())
    );
    assert_eq!(db.lookup(b"192.0.3.1"), None);
    assert!(GeoDb::from_bytes(b"not a database".to_vec()).is_err());
}

#[test]
fn geo_lookup_fills_geo_as_modsecurity_does() {
    let rules = load(
        &format!("SecGeoLookupDb geo/test.mmdb\n{GEO_RULES}"),
        Some(database()),
    )
    .unwrap();
    assert!(rules.has_geo_db());
    let outcome = rules.evaluate(&from("192.0.2.10"));
    assert_eq!(outcome.tx("geo_matched"), Some("1"));
    for (key, want) in [
        ("cc", "FR"),
        ("name", "France"),
        ("continent", "Europe"), // the continent's English name, not its code
        ("city", "Paris"),
        ("postal", "75001"),
        ("lat", "48.856600"), // std::to_string(double): six decimals
        ("lon", "2.352200"),
        ("geo_count", "7"),
    ] {
        assert_eq!(outcome.tx(key), Some(want), "GEO {key}");
    }
    assert!(outcome.blocking().is_none());

    // A Country record has only the country fields; the chain on GEO:COUNTRY_CODE then
    // blocks, as CRS 910100 does with tx.high_risk_country_codes.
    let outcome = rules.evaluate(&from("198.51.100.7"));
    assert_eq!(outcome.tx("cc"), Some("KP"));
    assert_eq!(outcome.tx("city"), Some(""));
    assert_eq!(outcome.tx("geo_count"), Some("2"));
    assert_eq!(outcome.blocking().map(|i| i.rule_id), Some(3));

    // No entry, or not an address: no match, and GEO stays empty.
    for addr in ["203.0.113.5", "example.com", "2001:db8::1"] {
        let outcome = rules.evaluate(&from(addr));
        assert_eq!(outcome.tx("geo_matched"), None, "{addr}");
        assert_eq!(outcome.tx("geo_count"), Some("0"), "{addr}");
    }
}

/// ModSecurity 3.0.9 without `SecGeoLookupDb`: `GeoLookup::lookup` logs "Database is not
/// open" and returns false, so the rule does not match (CRS 910100 never fires).
#[test]
fn without_a_database_geo_lookup_does_not_match() {
    let rules = load(GEO_RULES, None).unwrap();
    assert!(!rules.has_geo_db());
    let outcome = rules.evaluate(&from("198.51.100.7"));
    assert_eq!(outcome.tx("geo_matched"), None);
    assert!(outcome.blocking().is_none());
}

/// ModSecurity refuses the configuration when the database cannot be opened.
#[test]
fn a_database_that_cannot_be_read_is_a_load_error() {
    let err = load("SecGeoLookupDb geo/test.mmdb", Some(b"junk".to_vec())).unwrap_err();
    assert!(
        err.starts_with("/rules/main.conf:1: cannot read /rules/geo/test.mmdb: not a MaxMind DB"),
        "{err}"
    );
    let err = load("SecGeoLookupDb /nowhere.mmdb", None).unwrap_err();
    assert!(err.contains("cannot read /nowhere.mmdb"), "{err}");
    let err = load("SecGeoLookupDb", None).unwrap_err();
    assert!(err.contains("SecGeoLookupDb expects"), "{err}");
}

/// A test double: answers from a fixed table and records every name asked.
#[derive(Default)]
struct FakeResolver {
    answers: BTreeMap<String, Vec<IpAddr>>,
    asked: Mutex<Vec<String>>,
}

impl Resolver for FakeResolver {
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        self.asked.lock().unwrap().push(name.to_owned());
        self.answers.get(name).cloned()
    }
}

fn listed(answers: &[(&str, [u8; 4])]) -> Arc<FakeResolver> {
    Arc::new(FakeResolver {
        answers: answers
            .iter()
            .map(|(n, a)| (n.to_string(), vec![IpAddr::V4(Ipv4Addr::from(*a))]))
            .collect(),
        asked: Mutex::default(),
    })
}

#[test]
fn rbl_names_are_built_as_modsecurity_builds_them() {
    let zone = Rbl::new("zen.spamhaus.org");
    let name = |v: &str| rbl_name(&zone, v.as_bytes(), None);
    assert_eq!(
        name("192.0.2.10").as_deref(),
        Some("10.2.0.192.zen.spamhaus.org")
    );
    // sscanf("%d.%d.%d.%d"): leading zeros and trailing text do not matter.
    assert_eq!(
        name("010.0.2.1x").as_deref(),
        Some("1.2.0.10.zen.spamhaus.org")
    );
    // Not four numbers: taken as a domain, the zone appended; IPv6 is not reversed.
    assert_eq!(
        name("2001:db8::1").as_deref(),
        Some("2001:db8::1.zen.spamhaus.org")
    );
    assert_eq!(
        name("example.com").as_deref(),
        Some("example.com.zen.spamhaus.org")
    );
    assert_eq!(name("1.2.3").as_deref(), Some("1.2.3.zen.spamhaus.org"));

    let httpbl = Rbl::new("dnsbl.httpbl.org");
    assert!(httpbl.httpbl && !zone.httpbl);
    assert_eq!(
        rbl_name(&httpbl, b"192.0.2.10", Some("abcdefghijkl")).as_deref(),
        Some("abcdefghijkl.10.2.0.192.dnsbl.httpbl.org")
    );
    // http:BL without `SecHttpBlKey`: no name, no lookup.
    assert_eq!(rbl_name(&httpbl, b"192.0.2.10", None), None);
    // The key only prefixes addresses; a domain is looked up as it is.
    assert_eq!(
        rbl_name(&httpbl, b"example.com", None).as_deref(),
        Some("example.com.dnsbl.httpbl.org")
    );
}

#[test]
fn httpbl_answers_decode_as_modsecurity_logs_them() {
    let answer = decode_httpbl(Ipv4Addr::new(127, 3, 42, 5)).unwrap();
    assert_eq!(answer.days_since_last_activity, 3);
    assert_eq!(answer.threat_score, 42);
    assert_eq!(answer.visitor, "Suspicious comment spammer IP");
    assert_eq!(
        decode_httpbl(Ipv4Addr::new(127, 0, 0, 0)).unwrap().visitor,
        "Search Engine"
    );
    assert_eq!(decode_httpbl(Ipv4Addr::new(10, 1, 2, 3)), None);
}

/// CRS 910140's shape: `@rbl` with `capture` sets TX:0 to the address looked up.
const RBL_RULES: &str = r#"
SecHttpBlKey abcdefghijkl
SecRule REMOTE_ADDR "@rbl dnsbl.httpbl.org" "id:1,phase:1,pass,capture,nolog,setvar:'tx.httpbl=%{tx.0}'"
SecRule REMOTE_ADDR "@rbl sbl.example" "id:2,phase:1,deny,status:403"
"#;

#[test]
fn rbl_matches_when_the_name_resolves() {
    let resolver = listed(&[
        ("abcdefghijkl.10.2.0.192.dnsbl.httpbl.org", [127, 1, 30, 1]),
        ("7.100.51.198.sbl.example", [127, 0, 0, 2]),
    ]);
    let mut rules = load(RBL_RULES, None).unwrap();
    rules.set_resolver(resolver.clone());

    let outcome = rules.evaluate(&from("192.0.2.10"));
    assert_eq!(outcome.tx("httpbl"), Some("192.0.2.10"));
    assert!(outcome.blocking().is_none());

    let outcome = rules.evaluate(&from("198.51.100.7"));
    assert_eq!(outcome.tx("httpbl"), None);
    assert_eq!(
        outcome.blocking().map(|i| (i.rule_id, i.status)),
        Some((2, 403))
    );

    assert_eq!(
        *resolver.asked.lock().unwrap(),
        [
            "abcdefghijkl.10.2.0.192.dnsbl.httpbl.org",
            "10.2.0.192.sbl.example",
            "abcdefghijkl.7.100.51.198.dnsbl.httpbl.org",
            "7.100.51.198.sbl.example",
        ]
    );
}

/// ModSecurity 3.0.9: a failed `getaddrinfo` logs "RBL lookup of ... failed" and the
/// operator returns false. Without a resolver (the WebAssembly component) every lookup
/// fails the same way.
#[test]
fn a_failed_or_impossible_lookup_does_not_match() {
    let rules = load(RBL_RULES, None).unwrap();
    for addr in ["192.0.2.10", "198.51.100.7"] {
        let outcome = rules.evaluate(&from(addr));
        assert!(outcome.blocking().is_none(), "{addr}");
        assert_eq!(outcome.tx("httpbl"), None);
    }
    let mut rules = load(RBL_RULES, None).unwrap();
    rules.set_resolver(listed(&[]));
    assert!(rules.evaluate(&from("198.51.100.7")).blocking().is_none());

    // http:BL without a key asks nothing.
    let resolver = listed(&[]);
    let mut rules = load(&RBL_RULES.replace("SecHttpBlKey abcdefghijkl", ""), None).unwrap();
    rules.set_resolver(resolver.clone());
    rules.evaluate(&from("192.0.2.10"));
    assert_eq!(*resolver.asked.lock().unwrap(), ["10.2.0.192.sbl.example"]);
}
