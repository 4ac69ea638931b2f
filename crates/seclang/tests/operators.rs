//! Each operator against values chosen from the SecLang reference semantics.

use chatgate_seclang::ErrorKind;
use chatgate_seclang::macros::Resolve;
use chatgate_seclang::operators::{Operator, atoi, compile, translate_pcre};
use chatgate_seclang::variables::Var;

/// `TX:limit` is 5; nothing else exists.
struct Vars;

impl Resolve for Vars {
    fn first(&self, var: Var, key: Option<&str>) -> Option<Vec<u8>> {
        (var == Var::Tx && key == Some("limit")).then(|| b"5".to_vec())
    }
    fn rule_property(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
}

fn no_files(name: &str) -> Result<String, ErrorKind> {
    match name {
        "words.data" => Ok("# comment\n\nfoo bar\nBaz\n".into()),
        _ => Err(ErrorKind::Io {
            path: name.into(),
            reason: "missing".into(),
        }),
    }
}

fn op(text: &str) -> Operator {
    compile(text, &no_files).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[track_caller]
fn yes(text: &str, input: &[u8]) {
    assert!(
        op(text).matches(input, &Vars, None),
        "{text} should match {:?}",
        String::from_utf8_lossy(input)
    );
}

#[track_caller]
fn no(text: &str, input: &[u8]) {
    assert!(
        !op(text).matches(input, &Vars, None),
        "{text} should not match {:?}",
        String::from_utf8_lossy(input)
    );
}

#[test]
fn rx_has_modsecurity_v3_flags() {
    yes("@rx ^a.c$", b"a\nc"); // DOTALL
    yes("@rx ^b$", b"a\nb\nc"); // MULTILINE
    yes("@rx (?i)select", b"SeLeCt");
    yes("@rx \\xff", b"a\xffb"); // bytes, not UTF-8 code points
    yes("@rx ^\\w+$", b"abc_1");
    no("@rx ^\\w+$", "é".as_bytes()); // \w is ASCII, as in PCRE without UTF mode
    yes("^a", b"abc"); // no @: an @rx pattern
    no("!@rx ^a", b"abc");
    yes("!@rx ^a", b"bc");
}

#[test]
fn rx_reads_pcre_spellings() {
    yes("@rx ^\\(\\s*\\)\\s+{", b"() {"); // a `{` that starts no quantifier
    yes("@rx {{.*?}}", b"{{7*7}}");
    yes("@rx a{2}", b"xaax");
    no("@rx a{3}", b"xaax");
    yes("@rx [\\'\\\"]", b"'");
    yes("@rx [a[]", b"[");
    yes("@rx x++y", b"xxy"); // possessive read as greedy
    yes("@rx (?>ab|a)c", b"abc"); // atomic group read as a plain group
    yes("@rx [´’]", "’".as_bytes()); // non-ASCII class members are their bytes
    yes("@rx \\h", b"a\tb");
    yes("@rx [\\x7f-\\x{ff}]", b"\xe9"); // braced hex, as CRS 4 writes bytes
    yes("@rx \\x{c2}\\x{b4}", "´".as_bytes());
    // Look-around and backreferences run on the backtracking fallback (tests/backtracking.rs);
    // with a byte above 0x7f they cannot, and a malformed pattern never can.
    for bad in [
        "@rx (?<!\\xe9)b",
        "@rx (?=\\xff)",
        "@rx (a)\\1\\xff",
        "@rx (unclosed",
    ] {
        assert!(
            matches!(compile(bad, &no_files), Err(ErrorKind::Regex { .. })),
            "{bad} should be a regex error"
        );
    }
    assert_eq!(translate_pcre("a{1,}b{x}").unwrap(), "a{1,}b\\{x\\}");
}

#[test]
fn rx_captures() {
    let o = op("@rx (\\d+)-(\\d+)");
    let mut groups = Vec::new();
    assert!(o.matches(b"id 12-34", &Vars, Some(&mut groups)));
    assert_eq!(groups, [b"12-34".to_vec(), b"12".to_vec(), b"34".to_vec()]);
}

#[test]
fn rx_with_macro_is_compiled_on_use() {
    yes("@rx ^%{tx.limit}$", b"5");
    no("@rx ^%{tx.limit}$", b"6");
}

#[test]
fn phrase_match() {
    yes("@pm foo bar", b"xxBARxx");
    no("@pm foo bar", b"fo ba");
    yes("@pmFromFile words.data", b"a BAZ b");
    yes("@pmf words.data", b"foo bar");
    no("@pmFromFile words.data", b"comment");
    assert!(matches!(
        compile("@pmFromFile nope.data", &no_files),
        Err(ErrorKind::Io { .. })
    ));
}

#[test]
fn string_operators() {
    yes("@streq abc", b"abc");
    no("@streq abc", b"abcd");
    yes("@contains ell", b"hello");
    yes("@containsWord select", b"a select b");
    yes("@containsWord select", b"select");
    no("@containsWord select", b"selected");
    yes("@beginsWith /admin", b"/admin/x");
    no("@beginsWith /admin", b"/x/admin");
    yes("@endsWith .php", b"index.php");
    yes("@within GET HEAD POST", b"POST");
    no("@within GET HEAD POST", b"PUT");
    yes("@streq %{tx.limit}", b"5");
    yes("!@streq a", b"b");
}

#[test]
fn numeric_operators_compare_like_atoi() {
    assert_eq!(
        (atoi(b" 42abc"), atoi(b"-7"), atoi(b"x"), atoi(b"")),
        (42, -7, 0, 0)
    );
    yes("@eq 0", b"");
    yes("@gt 5", b"10abc");
    yes("@ge %{tx.limit}", b"5");
    no("@gt %{tx.limit}", b"5");
    yes("@lt 5", b"4");
    yes("@le 5", b"5");
    no("@eq 1", b"2");
}

#[test]
fn validation_operators_match_invalid_input() {
    no("@validateByteRange 32-126", b"abc ~");
    yes("@validateByteRange 32-126", b"a\x01");
    yes("@validateByteRange 1-255", b"a\0b");
    no("@validateByteRange 9,10,13,32-126", b"a\tb\r\n");
    no("@validateUrlEncoding", b"a%41%2f");
    yes("@validateUrlEncoding", b"a%4g");
    yes("@validateUrlEncoding", b"a%4");
    no("@validateUtf8Encoding", "é€".as_bytes());
    yes("@validateUtf8Encoding", b"\xc3");
    yes("@validateUtf8Encoding", b"\xc0\xaf"); // overlong `/`
    yes("@validateUtf8Encoding", b"\xed\xa0\x80"); // surrogate
}

#[test]
fn ip_match() {
    yes("@ipMatch 10.0.0.0/8,192.168.1.1", b"10.1.2.3");
    yes("@ipMatch 10.0.0.0/8,192.168.1.1", b"192.168.1.1");
    no("@ipMatch 10.0.0.0/8,192.168.1.1", b"11.0.0.1");
    yes("@ipMatch 127.0.0.1,::1", b"::1");
    yes("@ipMatch 2001:db8::/32", b"2001:db8::5");
    yes("@ipMatch 192.0.2.0/24", b"::ffff:192.0.2.7");
    no("@ipMatch 192.0.2.0/24", b"not an ip");
    assert!(matches!(
        compile("@ipMatch 10.0.0.0/33", &no_files),
        Err(ErrorKind::Operator { .. })
    ));
}

#[test]
fn unconditional_and_no_match() {
    yes("@unconditionalMatch", b"");
    no("@noMatch", b"x");
}

#[test]
fn libinjection_operators() {
    for attack in [
        &b"' OR '1'='1' --"[..],
        b"1' or 1=1--",
        b"1 UNION SELECT password FROM users",
        b"admin'--",
    ] {
        yes("@detectSQLi", attack);
    }
    for benign in [
        &b"hello world"[..],
        b"O'Reilly",
        b"it's 5 o'clock",
        b"-1",
        b"foo@example.com",
    ] {
        no("@detectSQLi", benign);
    }
    // With `capture`, TX:0 is libinjection's token fingerprint, as in ModSecurity.
    let mut fingerprint = Vec::new();
    assert!(op("@detectSQLi").matches(b"' OR '1'='1' --", &Vars, Some(&mut fingerprint)));
    assert_eq!(fingerprint, [b"s&sos".to_vec()]);
    for attack in [
        &b"<script>alert(1)</script>"[..],
        b"<img src=x onerror=alert(1)>",
        b"<svg/onload=alert(1)>",
    ] {
        yes("@detectXSS", attack);
    }
    for benign in [
        &b"hello <b>world</b>"[..],
        b"a < b and c > d",
        b"plain text",
    ] {
        no("@detectXSS", benign);
    }
}

#[test]
fn operators_without_an_implementation_are_reported_not_silent() {
    for text in ["@gsbLookup x", "@fuzzyHash x.txt 4", "@verifyCC \\d{13,16}"] {
        assert!(
            matches!(compile(text, &no_files), Err(ErrorKind::Unsupported { .. })),
            "{text}"
        );
    }
    assert!(matches!(
        compile("@bogus x", &no_files),
        Err(ErrorKind::Operator { .. })
    ));
}
