//! Property tests: the parser, the PCRE rewriting, the transformations, the body
//! processors and evaluation never panic, whatever the input.

use chatgate_seclang::operators::{Pattern, compile_pattern, compile_rx, translate_pcre};
use chatgate_seclang::request::{parse_json, parse_multipart, parse_urlencoded, parse_xml};
use chatgate_seclang::transform::{self, Features, Transform, apply_all, parse};
use chatgate_seclang::{LoadOptions, MemoryFiles, Request, RuleSet};
use proptest::prelude::*;

const TRANSFORMS: &[&str] = &[
    "lowercase",
    "uppercase",
    "urlDecode",
    "urlDecodeUni",
    "urlEncode",
    "htmlEntityDecode",
    "jsDecode",
    "cssDecode",
    "cmdLine",
    "compressWhitespace",
    "removeWhitespace",
    "removeNulls",
    "replaceNulls",
    "removeComments",
    "removeCommentsChar",
    "replaceComments",
    "normalizePath",
    "normalizePathWin",
    "utf8toUnicode",
    "escapeSeqDecode",
    "base64Decode",
    "base64DecodeExt",
    "base64Encode",
    "hexEncode",
    "hexDecode",
    "length",
    "sha1",
    "trim",
    "trimLeft",
    "trimRight",
];

struct NoVars;

impl chatgate_seclang::macros::Resolve for NoVars {
    fn first(&self, _: chatgate_seclang::variables::Var, _: Option<&str>) -> Option<Vec<u8>> {
        None
    }
    fn rule_property(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
}

fn transform(name: &str) -> Transform {
    parse(name).unwrap().unwrap()
}

/// Bytes biased towards the characters decoders react to.
fn tricky_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(b"%u+&#;\\/.*-<>!?[]=(,^xX0123456789abcdefABCDEF'\"  \t\n\r\0\xa0\x0b".to_vec()),
            1 => any::<u8>(),
        ],
        0..64,
    )
}

/// Text made of SecLang pieces, so that generated files reach deep into the parser.
fn seclang_text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "SecRule ",
        "SecAction ",
        "SecMarker ",
        "SecDefaultAction ",
        "SecRuleRemoveById ",
        "SecRuleUpdateTargetById ",
        "SecRuleRemoveByTag ",
        "SecRuleUpdateTargetByTag ",
        "Include ",
        "SecRuleEngine ",
        "\"",
        "'",
        "\\\n",
        "\n",
        " ",
        ",",
        ":",
        "|",
        "!",
        "&",
        "@rx ",
        "@pm ",
        "@eq ",
        "@within ",
        "!@streq ",
        "ARGS",
        "TX:x",
        "ARGS:/a|b/",
        "REQUEST_HEADERS:Host",
        "id:1",
        "id:2",
        "phase:1",
        "phase:2",
        "chain",
        "deny",
        "pass",
        "block",
        "skipAfter:M",
        "t:none",
        "t:lowercase",
        "setvar:tx.x=+1",
        "setvar:'tx.%{tx.y}=%{MATCHED_VAR}'",
        "ctl:ruleRemoveTargetById=1;ARGS:a",
        "ctl:ruleRemoveById=1-3",
        "msg:'%{",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "(?<=",
        "\\",
        "%{tx.x}",
        "1-2",
        "#",
    ]);
    prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

fn evaluation_rules() -> RuleSet {
    let text = r#"
        SecAction "id:1,phase:1,pass,nolog,setvar:tx.score=0,setvar:tx.limit=%{REQUEST_HEADERS.x-limit}"
        SecRule ARGS|ARGS_NAMES|REQUEST_HEADERS|REQUEST_COOKIES|REQUEST_BODY|FILES|MULTIPART_PART_HEADERS "@rx (?i)<script|select.+from" \
            "id:2,phase:2,pass,capture,t:none,t:urlDecodeUni,t:htmlEntityDecode,t:jsDecode,t:cssDecode,t:cmdLine,t:normalizePathWin,t:removeComments,multiMatch,setvar:'tx.score=+%{tx.limit}',setvar:'tx.m=%{TX.0}'"
        SecRule &ARGS "@gt %{tx.limit}" "id:3,phase:2,pass,chain"
            SecRule MATCHED_VARS "@within %{tx.m}" "setvar:tx.score=-1"
        SecRule REQUEST_URI|REQUEST_FILENAME|REQUEST_BASENAME|QUERY_STRING "@validateUrlEncoding" "id:4,phase:1,pass"
        SecRule ARGS "@validateUtf8Encoding" "id:5,phase:2,pass,ctl:ruleRemoveTargetById=2;ARGS:/^json\./"
        SecRule REQBODY_ERROR "!@eq 0" "id:6,phase:2,pass,msg:'%{REQBODY_ERROR_MSG}'"
        SecRule TX:score "@ge 5" "id:7,phase:2,deny"
    "#;
    RuleSet::from_text(
        &MemoryFiles::default(),
        "/p.conf",
        text,
        LoadOptions::default(),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = RuleSet::from_text(&MemoryFiles::default(), "/a.conf", &text, LoadOptions { skip_unsupported: true });
    }

    #[test]
    fn parser_never_panics_on_seclang_shaped_text(text in seclang_text()) {
        for skip_unsupported in [false, true] {
            let _ = RuleSet::from_text(&MemoryFiles::default(), "/a.conf", &text, LoadOptions { skip_unsupported });
        }
    }

    #[test]
    fn pcre_rewriting_never_panics(pattern in "[\\\\()\\[\\]{}?+*|^$.a-c0-9:<=!>#'\"é,-]{0,24}") {
        let _ = translate_pcre(&pattern);
        let linear = compile_rx(&pattern);
        // The fallback only takes what the linear engine refuses, and then matches
        // without panicking.
        match compile_pattern(&pattern) {
            Ok(Pattern::Linear(_)) => prop_assert!(linear.is_ok()),
            Ok(p @ Pattern::Backtracking(_)) => {
                prop_assert!(linear.is_err());
                let mut captures = Vec::new();
                let _ = p.matches(b"a<b=c>!#'\"\xe9\xff\n0:", Some(&mut captures));
            }
            Err(_) => prop_assert!(linear.is_err()),
        }
    }

    /// The relaxed pre-check of a backtracking pattern never rejects a value the pattern
    /// matches: skipping the backtracking matcher on its "no" loses no detection.
    #[test]
    fn the_relaxed_filter_accepts_everything_the_pattern_matches(
        pattern in "(\\(\\?(=|!|<=|<!)[ab]{1,2}\\)|\\(a\\|b\\)|\\\\1|[abc.*+?|^$]){1,12}",
        input in "[abc\n]{0,12}",
    ) {
        if let Ok(Pattern::Backtracking(b)) = compile_pattern(&pattern)
            && let Some(filter) = b.filter()
            && b.regex().is_match(input.as_bytes()).unwrap_or(false)
        {
            prop_assert!(filter.is_match(input.as_bytes()), "{pattern} on {input:?}");
        }
    }

    #[test]
    fn transformations_never_panic(input in tricky_bytes()) {
        for name in TRANSFORMS {
            let _ = transform(name).apply(&input);
        }
    }

    #[test]
    fn features_agree_with_the_unchanged_shortcut(input in tricky_bytes()) {
        // The one-pass summary must say exactly what the per-transformation scans say,
        // and "unchanged but for case" must hold of the value lowercased.
        let features = Features::of(&input);
        for name in TRANSFORMS {
            let t = transform(name);
            prop_assert_eq!(features.leaves_unchanged(t), t.leaves_unchanged(&input), "t:{}", name);
            if features.leaves_unchanged_but_case(t) {
                let out = t.apply(&input);
                prop_assert!(out.eq_ignore_ascii_case(&input), "t:{} changes more than case", name);
            }
        }
        prop_assert_eq!(transform::ALL.len(), TRANSFORMS.len(), "every transformation is in ALL");
    }

    #[test]
    fn path_shortcuts_are_exact(path in "[a./\\\\ ]{0,8}") {
        // Paths and dotted names, where the normalisations' shortcuts decide.
        for name in ["normalizePath", "normalizePathWin"] {
            let t = transform(name);
            let input = path.as_bytes();
            prop_assert_eq!(Features::of(input).leaves_unchanged(t), t.leaves_unchanged(input));
            if t.leaves_unchanged(input) {
                prop_assert_eq!(t.apply(input), input.to_vec(), "t:{} claims no change", name);
            }
        }
    }

    #[test]
    fn unchanged_shortcut_is_exact(input in tricky_bytes()) {
        for name in TRANSFORMS {
            let t = transform(name);
            if t.leaves_unchanged(&input) {
                prop_assert_eq!(t.apply(&input), input.clone(), "t:{} claims no change", name);
            }
        }
        let chain: Vec<Transform> = ["urlDecodeUni", "htmlEntityDecode", "jsDecode", "lowercase", "cmdLine", "compressWhitespace"]
            .iter()
            .map(|n| transform(n))
            .collect();
        let mut expected = input.clone();
        for t in &chain {
            expected = t.apply(&expected);
        }
        prop_assert_eq!(apply_all(&chain, &input).into_owned(), expected);
    }

    #[test]
    fn encodings_round_trip(input in any::<Vec<u8>>()) {
        let hex = transform("hexEncode").apply(&input);
        prop_assert_eq!(transform("hexDecode").apply(&hex), input.clone());
        let b64 = transform("base64Encode").apply(&input);
        prop_assert_eq!(transform("base64Decode").apply(&b64), input.clone());
        prop_assert_eq!(transform("length").apply(&input), input.len().to_string().into_bytes());
        let lower = transform("lowercase").apply(&input);
        prop_assert_eq!(transform("lowercase").apply(&lower), lower.clone());
        let compact = transform("removeWhitespace").apply(&input);
        prop_assert!(!compact.iter().any(|b| b" \t\n\r\x0b\x0c\xa0".contains(b)));
    }

    #[test]
    fn libinjection_never_panics(tricky in tricky_bytes(), any_bytes in any::<Vec<u8>>(), text in "[ -~]{0,80}") {
        let sqli = chatgate_seclang::operators::compile("@detectSQLi", &|_| unreachable!()).unwrap();
        let xss = chatgate_seclang::operators::compile("@detectXSS", &|_| unreachable!()).unwrap();
        for input in [&tricky[..], &any_bytes[..], text.as_bytes()] {
            let mut captures = Vec::new();
            let _ = sqli.matches(input, &NoVars, Some(&mut captures));
            let _ = xss.matches(input, &NoVars, None);
        }
    }

    #[test]
    fn body_processors_never_panic(body in tricky_bytes(), text in any::<Vec<u8>>()) {
        let mut out = Vec::new();
        let _ = parse_json(&body, &mut out);
        let _ = parse_json(&text, &mut out);
        parse_urlencoded(&body, &mut out);
        let _ = parse_multipart("multipart/form-data; boundary=x", &body);
        let _ = parse_multipart("multipart/form-data; boundary=\"x\"", &text);
        let _ = parse_xml(&body);
        let _ = parse_xml(&text);
    }

    #[test]
    fn json_strings_round_trip(s in any::<String>()) {
        let mut body = String::from("{\"k\":\"");
        for c in s.chars() {
            match c {
                '"' => body.push_str("\\\""),
                '\\' => body.push_str("\\\\"),
                c if (c as u32) < 0x20 => body.push_str(&format!("\\u{:04x}", c as u32)),
                c => body.push(c),
            }
        }
        body.push_str("\"}");
        let mut out = Vec::new();
        prop_assert!(parse_json(body.as_bytes(), &mut out).is_ok());
        prop_assert_eq!(out, vec![("json.k".to_string(), s.into_bytes())]);
    }

    #[test]
    fn evaluation_never_panics(
        uri in "/[a-z%0-9?&=+./<>]{0,30}",
        header in any::<String>(),
        body in tricky_bytes(),
        content_type in prop::sample::select(vec!["text/xml", "application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", ""]),
    ) {
        let rules = evaluation_rules();
        let request = Request {
            method: "POST".into(),
            uri,
            protocol: "HTTP/1.1".into(),
            headers: vec![
                ("Content-Type".into(), content_type.into()),
                ("Cookie".into(), header.clone()),
                ("X-Limit".into(), header),
            ],
            body,
            ..Request::default()
        };
        let _ = rules.evaluate(&request);
    }
}
