//! A `SecGeoLookupDb` database travels in the rule bundle (as base64) and the rule set
//! compiled from the bundle alone looks addresses up in it.

#[path = "../../../crates/seclang/tests/support/mmdb.rs"]
mod mmdb;

use chatgate_seclang::{MemoryFiles, Request};
use mmdb::Value::{Map, Str};
use waf::bundle::{Bundle, Recorder, compile};

/// Files on "disk": the rule file as text, the database as bytes.
struct Disk {
    text: MemoryFiles,
    db: Vec<u8>,
}

impl chatgate_seclang::Files for Disk {
    fn read(&self, path: &str) -> std::io::Result<String> {
        self.text.read(path)
    }
    fn read_bytes(&self, path: &str) -> std::io::Result<Vec<u8>> {
        if path == "rules/GeoLite2-Country.mmdb" {
            Ok(self.db.clone())
        } else {
            self.text.read_bytes(path)
        }
    }
    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>> {
        self.text.glob(pattern)
    }
}

#[test]
fn the_geo_database_travels_in_the_bundle() {
    let db = mmdb::ipv4_database(
        "GeoLite2-Country",
        &[(
            [198, 51, 100, 0],
            24,
            Map(vec![("country", Map(vec![("iso_code", Str("KP"))]))]),
        )],
    );
    // A byte that is not UTF-8 (the tree's records, the metadata marker): it must survive
    // as bytes, not as text.
    assert!(std::str::from_utf8(&db).is_err());
    let rules = "SecGeoLookupDb GeoLite2-Country.mmdb\n\
        SecRule REMOTE_ADDR \"@geoLookup\" \"id:1,phase:1,deny,status:403,chain\"\n\
        SecRule GEO:COUNTRY_CODE \"@streq KP\" \"\"\n";
    let disk = Disk {
        text: MemoryFiles(
            [("rules/main.conf".to_string(), rules.to_string())]
                .into_iter()
                .collect(),
        ),
        db: db.clone(),
    };
    let entries = vec!["rules/main.conf".to_string()];
    let recorder = Recorder::new(disk);
    compile(&recorder, &entries, false).unwrap();
    let (files, binary_files) = recorder.into_all_files();
    assert_eq!(binary_files.get("rules/GeoLite2-Country.mmdb"), Some(&db));
    assert!(!files.contains_key("rules/GeoLite2-Country.mmdb"));
    let bundle = Bundle {
        entries,
        skip_unsupported: false,
        files,
        binary_files,
    };
    let json = bundle.to_json();
    let again = Bundle::from_json(&json).unwrap();
    assert_eq!(again, bundle);
    let rule_set = again.compile().unwrap();
    let request = |addr: &str| Request {
        method: "GET".into(),
        uri: "/".into(),
        protocol: "HTTP/1.1".into(),
        remote_addr: addr.into(),
        ..Request::default()
    };
    let blocked = rule_set.evaluate(&request("198.51.100.9"));
    assert_eq!(blocked.blocking().map(|i| i.rule_id), Some(1));
    assert!(
        rule_set
            .evaluate(&request("192.0.2.9"))
            .blocking()
            .is_none()
    );
}
