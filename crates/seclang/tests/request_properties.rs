//! Property tests of the request parsers on structured input: `properties.rs` feeds them
//! random bytes, which rarely get past a multipart boundary, a JSON token or an XML tag;
//! here the input is built from the pieces each format is made of, so the deep branches
//! run. No parser may panic, and valid JSON of any shape is accepted.

use chatgate_seclang::request::{
    BodyProcessor, MAX_JSON_DEPTH, parse_cookies, parse_json, parse_multipart, parse_urlencoded,
    parse_xml,
};
use proptest::prelude::*;

/// `pieces` concatenated in any order and number, with arbitrary bytes between them.
fn made_of(pieces: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => prop::sample::select(pieces).prop_map(|p| p.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..6),
    ];
    prop::collection::vec(piece, 0..48).prop_map(|pieces| pieces.concat())
}

const MULTIPART: &[&str] = &[
    "--x",
    "--x--",
    "--",
    "\r\n",
    "\n",
    "\r\n\r\n",
    "Content-Disposition: form-data",
    "; name=\"a\"",
    "; name=a",
    "; filename=\"f.txt\"",
    "; filename*=UTF-8''f%20g",
    "Content-Type: text/plain",
    "Content-Transfer-Encoding: base64",
    ": ",
    "\"",
    "\\",
    "value",
];

const JSON: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\"k\"",
    "\"\\u00e9\"",
    "\"\\ud83d\\ude00\"",
    "\"\\ud800\"",
    "\\",
    "1",
    "-0.5e+3",
    "1e999",
    "true",
    "false",
    "null",
    " ",
    "\n",
];

const XML: &[&str] = &[
    "<?xml version=\"1.0\"?>",
    "<a>",
    "</a>",
    "<b x=\"1\">",
    "</b>",
    "<c/>",
    "<!-- c -->",
    "<![CDATA[",
    "]]>",
    "<!DOCTYPE a [<!ENTITY e \"v\">]>",
    "&e;",
    "&amp;",
    "&#x41;",
    "&#99999999;",
    "text",
    "<",
    ">",
    "\"",
];

// The documents below nest at most 9 deep.
const _: () = assert!(MAX_JSON_DEPTH >= 9);

/// A JSON string literal for `text` (escapes as RFC 8259 requires, `\u` for controls).
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Valid JSON text of any shape, up to a depth the parser accepts, with any of the four
/// whitespace characters between tokens.
fn json_document() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (prop::num::f64::NORMAL | prop::num::f64::ZERO).prop_map(|f| format!("{f:e}")),
        any::<String>().prop_map(|s| json_string(&s)),
    ];
    let space = prop::sample::select(vec!["", " ", "\n", "\t", "\r\n  "]);
    leaf.prop_recursive(8, 64, 6, move |inner| {
        prop_oneof![
            (prop::collection::vec(inner.clone(), 0..6), space.clone())
                .prop_map(|(items, space)| format!("[{space}{}{space}]", items.join(","))),
            (
                prop::collection::vec((any::<String>(), inner), 0..6),
                space.clone()
            )
                .prop_map(|(fields, space)| {
                    let fields: Vec<String> = fields
                        .iter()
                        .map(|(key, value)| format!("{}{space}:{space}{value}", json_string(key)))
                        .collect();
                    format!("{{{space}{}{space}}}", fields.join(","))
                }),
        ]
    })
}

proptest! {
    // Bounded so that the file runs in about a second in release.
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cookies_and_content_types_never_panic(header in any::<String>()) {
        let mut out = Vec::new();
        parse_cookies(&header, &mut out);
        let _ = BodyProcessor::for_content_type(&header);
        let _ = BodyProcessor::parse(&header);
    }

    #[test]
    fn multipart_shaped_bodies_never_panic(
        body in made_of(MULTIPART),
        content_type in prop_oneof![
            Just("multipart/form-data; boundary=x".to_string()),
            Just("multipart/form-data; boundary=\"x\"".to_string()),
            Just("multipart/form-data; boundary=".to_string()),
            Just("multipart/form-data".to_string()),
            "multipart/form-data; [a-z=;\" ]{0,24}",
            any::<String>(),
        ],
    ) {
        let _ = parse_multipart(&content_type, &body);
        let mut out = Vec::new();
        parse_urlencoded(&body, &mut out);
    }

    #[test]
    fn json_shaped_bodies_never_panic(body in made_of(JSON)) {
        let _ = parse_json(&body, &mut Vec::new());
    }

    #[test]
    fn xml_shaped_bodies_never_panic(body in made_of(XML)) {
        let _ = parse_xml(&body);
    }

    /// Valid JSON of any shape within the depth limit is accepted.
    #[test]
    fn valid_json_is_accepted(document in json_document()) {
        prop_assert_eq!(parse_json(document.as_bytes(), &mut Vec::new()), Ok(()), "{}", document);
    }
}
