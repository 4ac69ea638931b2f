//! Differences from ModSecurity v3 (Debian 12's libmodsecurity 3.0.9, the reference WAF of
//! `tests/tests/e2e/waf_reference.rs`) found by replaying the WAF corpora through both, each
//! pinned by what libmodsecurity 3.0.9 does.

use chatgate_seclang::transform::parse;
use chatgate_seclang::{LoadOptions, MemoryFiles, Request, RuleSet};

fn utf8_to_unicode(input: &[u8]) -> Vec<u8> {
    parse("utf8toUnicode").unwrap().unwrap().apply(input)
}

/// libmodsecurity 3.0.9's `utf8toUnicode` (src/actions/transformations/utf8_to_unicode.cc)
/// reads a sequence by its lead byte and continuation bytes only: an overlong sequence is
/// decoded too (then its lead byte is written after the `%u`), as is a surrogate. So
/// `\xc0\xaf`, the overlong `/` of the classic `..%c0%af..` traversal, becomes
/// `%u002f\xc0`, and `urlDecodeUni` then makes it a `/`. Found with attacks/lfi-013 and
/// lfi-014: CRS 930110 fired in ModSecurity only.
#[test]
fn utf8_to_unicode_decodes_overlong_sequences_as_modsecurity_v3() {
    assert_eq!(utf8_to_unicode(b"..\xc0\xaf.."), b"..%u002f\xc0..");
    assert_eq!(utf8_to_unicode(b"\xe0\x80\xaf"), b"%u002f\xe0");
    assert_eq!(utf8_to_unicode(b"\xf0\x80\x80\xaf"), b"%u002f\xf0");
    // A surrogate (not UTF-8, but decoded by v3), then its lead byte.
    assert_eq!(utf8_to_unicode(b"\xed\xa0\x80"), b"%ud800\xed");
    // A lead byte without its continuation bytes is dropped; the next byte is read anew.
    assert_eq!(utf8_to_unicode(b"a\xc3(b"), b"a(b");
    assert_eq!(utf8_to_unicode(b"a\xe2\x82"), b"a\x82");
    // Bytes that lead nothing are kept; so are 0xF5..0xF7 leads, decoded as v3 does.
    assert_eq!(utf8_to_unicode(b"\x80\xff"), b"\x80\xff");
    assert_eq!(utf8_to_unicode(b"\xf5\x80\x80\x80"), b"\xf5%u140000");
    // Well-formed UTF-8 as before.
    assert_eq!(utf8_to_unicode("aé€😀".as_bytes()), b"a%u00e9%u20ac%u1f600");
}

#[test]
fn crs_path_traversal_rule_sees_the_overlong_slash() {
    // CRS 3.3's 930110, as written.
    let rules = RuleSet::from_text(
        &MemoryFiles::default(),
        "rules.conf",
        r#"SecRule REQUEST_URI|ARGS "@rx (?:^|[\\/])\.\.(?:[\\/]|$)" "id:930110,phase:2,deny,status:403,capture,t:none,t:utf8toUnicode,t:urlDecodeUni,t:removeNulls,t:cmdLine,multiMatch""#,
        LoadOptions::default(),
    )
    .unwrap();
    let request = Request {
        method: "GET".into(),
        uri: "/v1/models?file=..%c0%af..%c0%af..%c0%afetc/passwd".into(),
        protocol: "HTTP/1.1".into(),
        headers: vec![("Host".into(), "localhost".into())],
        ..Request::default()
    };
    let outcome = rules.evaluate(&request);
    assert_eq!(outcome.blocking().map(|i| i.rule_id), Some(930110));
}
