//! The vendored libinjection (`libinjection/`, a faster keyword look-up) answers exactly
//! as the published `libinjectionrs` 0.1.1 it was taken from: the same verdict and the
//! same fingerprint for `detect_sqli`, the same verdict for `detect_xss`, on known
//! payloads, benign text and generated inputs.

use libinjection_reference as reference;
use proptest::prelude::*;

fn same(input: &[u8]) {
    let (ours, theirs) = (
        libinjectionrs::detect_sqli(input),
        reference::detect_sqli(input),
    );
    assert_eq!(
        (
            ours.is_injection(),
            ours.fingerprint.map(|f| f.as_str().to_owned())
        ),
        (
            theirs.is_injection(),
            theirs.fingerprint.map(|f| f.as_str().to_owned())
        ),
        "detect_sqli({:?})",
        String::from_utf8_lossy(input)
    );
    assert_eq!(
        libinjectionrs::detect_xss(input).is_injection(),
        reference::detect_xss(input).is_injection(),
        "detect_xss({:?})",
        String::from_utf8_lossy(input)
    );
}

const KNOWN: &[&str] = &[
    "' OR '1'='1' --",
    "x' OR 1=1 --",
    "1 UNION SELECT username, password FROM users",
    "SELECT name FROM a UNION ALL SELECT name FROM b",
    "1; DROP TABLE users",
    "admin'--",
    "1' AND SLEEP(5)#",
    "1 AND 1=1",
    "' UNION SELECT @@version --",
    "1/*!50000UNION*/SELECT",
    "\" or \"\"=\"",
    "1' WAITFOR DELAY '0:0:5'--",
    "T-SQL: I tried `WAITFOR DELAY '00:00:05'` and it hangs",
    "-1 OR 1 IN (SELECT CHAR(65))",
    "1 ORDER BY 3--",
    "' AND extractvalue(1,concat(0x7e,version()))--",
    "$1,000.00",
    "$$body$$",
    "$tag$ select $tag$",
    "`select` from t",
    "@@version",
    "@a := 1",
    "N'unicode' OR 1=1",
    "x'41' OR 1",
    "e'\\x41' union select",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<svg onload=alert(1)>",
    "json.messages.3.content",
    "json.model",
    "chatgate-rag",
    "user",
    "assistant",
    "How do I configure the retrieval index so that answers cite the right documents? \
     I have a folder of markdown files and want incremental updates. ",
    "Run the index command over the folder, then restart.",
    "OpenAI/Python 1.54.0",
    "Bearer sk-test-0123456789abcdef",
    "What's the difference between <script defer> and <script async>?",
    "a really.long.dotted.word.with.many.parts.that.goes.past.thirty.two.bytes",
    "select.from.where",
    "user.name`x` union.select",
    "",
    "0",
    "1e5",
    "0x",
    "\u{a0}select\u{a0}1",
    "ÿ select ÿ",
];

#[test]
fn known_payloads_and_text() {
    for k in KNOWN {
        same(k.as_bytes());
        same(k.to_ascii_lowercase().as_bytes());
        same(k.to_ascii_uppercase().as_bytes());
    }
}

/// Every keyword of the table, in several cases and next to other words: the look-up
/// itself is what changed.
#[test]
fn every_keyword() {
    for k in libinjectionrs::sqli::sqli_data::SQL_KEYWORDS {
        let w = k.word;
        for input in [
            w.to_owned(),
            w.to_ascii_lowercase(),
            format!("1 {w} 1"),
            format!("'{w}'"),
            format!("x.{w}.y"),
            format!("{w} {w}"),
            format!("{w}x"),
        ] {
            same(input.as_bytes());
        }
    }
}

/// Inputs built from SQL-ish pieces and single bytes (deterministic, many).
#[test]
fn generated_inputs() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let bytes: &[u8] = b"aAbBcCsSeElLtTuUnNiIoOrRdD01239 '\"-#/*()=;,.`@$:\\|&!<>%_\t\n\xa0\xff";
    let words = [
        "SELECT",
        "union",
        "Or",
        "and",
        "FROM",
        "where",
        "sleep",
        "benchmark",
        "--",
        "/*",
        "*/",
        "1=1",
        "'",
        "\"",
        "#",
        "char(",
        "concat",
        "information_schema",
        "@@version",
        "LIKE",
        "xp_cmdshell",
        "WAITFOR DELAY",
        "0x41",
        "<script>",
        "onerror=",
        "$$",
    ];
    for _ in 0..100_000 {
        let len = (next() % 48) as usize;
        let mut v = Vec::new();
        while v.len() < len {
            if next() % 3 == 0 {
                v.extend_from_slice(words[(next() % words.len() as u64) as usize].as_bytes());
            } else {
                v.push(bytes[(next() % bytes.len() as u64) as usize]);
            }
        }
        same(&v);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..96)) {
        same(&input);
    }

    #[test]
    fn arbitrary_text(input in "[ -~\\t\\n]{0,96}") {
        same(input.as_bytes());
    }

    /// The vendored `detect_xss` answers "safe" without parsing an input that has no `<`
    /// and no `=`: the published crate must find no XSS in any such input, however
    /// attribute-like (black attribute and event names, URLs, quotes, slashes, `>`,
    /// comment and doctype openers without their `<`).
    #[test]
    fn no_xss_without_a_tag_or_an_attribute_value(
        input in "(onload|onerror|style|href|src|formaction|xmlns|xlink:href|javascript:|vbscript:|data:|script|svg|!DOCTYPE|!--|\\?import|\\[if|xml|'|\"|`|/|>|!|\\?|%|-|:|\\x00|\\t|\\n|\\x0b|\\x0c|\\r| |[a-zA-Z0-9]){0,48}"
    ) {
        let bytes = input.as_bytes();
        prop_assert!(!bytes.contains(&b'<') && !bytes.contains(&b'='));
        prop_assert!(!reference::detect_xss(bytes).is_injection(), "{input:?}");
        prop_assert!(!libinjectionrs::detect_xss(bytes).is_injection(), "{input:?}");
    }
}

/// The XSS detector's attribute, event and tag names (looked up from a normalised copy of
/// the name since the vendoring, not compared once per list entry): each in several
/// cases, with NUL bytes inside, cut short and lengthened, in the places libinjection
/// reads them, the same verdict as the published crate.
#[test]
fn xss_attribute_event_and_tag_names() {
    use libinjectionrs::xss::blacklists::{BLACK_ATTR_EVENTS, BLACK_ATTRS, BLACK_TAGS};
    let names: Vec<String> = BLACK_ATTR_EVENTS
        .iter()
        .map(|e| format!("on{}", e.name))
        .chain(BLACK_ATTRS.iter().map(|a| a.name.to_owned()))
        .chain(BLACK_TAGS.iter().map(|t| (*t).to_owned()))
        .chain(["xmlns:x", "XLINK:href", "svg", "xsl", "o", "on", "onx"].map(String::from))
        .collect();
    for name in &names {
        let lower = name.to_ascii_lowercase();
        let mixed: String = name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect();
        let with_nul = format!(
            "{}\0{}",
            &lower[..lower.len() / 2],
            &lower[lower.len() / 2..]
        );
        let short = &lower[..lower.len() - 1];
        let long = format!("{lower}x");
        for n in [name.as_str(), &lower, &mixed, &with_nul, short, &long] {
            for input in [
                format!("<a {n}=alert(1)>"),
                format!("<a {n}=\"javascript:x\">"),
                format!("<{n}>"),
                format!("<{n} src=x>"),
                format!("x {n}=1"),
                format!("\" {n}=x"),
                format!("' {n}='y'"),
            ] {
                same(input.as_bytes());
            }
        }
    }
}
