//! `@rx` patterns RE2 cannot express (look-around, backreferences) run on the bounded
//! backtracking matcher; the cases come from the three CRS 3.3 rules that need it.

use chatgate_seclang::ErrorKind;
use chatgate_seclang::macros::Resolve;
use chatgate_seclang::operators::{
    BACKTRACK_LIMIT, Operator, Pattern, compile, compile_pattern, relax,
};
use chatgate_seclang::variables::Var;

struct NoVars;

/// `TX:word` is `select`; nothing else exists.
struct Word;

impl Resolve for Word {
    fn first(&self, var: Var, key: Option<&str>) -> Option<Vec<u8>> {
        (var == Var::Tx && key == Some("word")).then(|| b"select".to_vec())
    }
    fn rule_property(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
}

impl Resolve for NoVars {
    fn first(&self, _: Var, _: Option<&str>) -> Option<Vec<u8>> {
        None
    }
    fn rule_property(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
}

fn no_files(name: &str) -> Result<String, ErrorKind> {
    Err(ErrorKind::Io {
        path: name.into(),
        reason: "missing".into(),
    })
}

fn op(text: &str) -> Operator {
    compile(text, &no_files).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn is_backtracking(pattern: &str) -> bool {
    matches!(compile_pattern(pattern), Ok(Pattern::Backtracking(_)))
}

#[track_caller]
fn check(pattern: &str, cases: &[(&[u8], bool)]) {
    assert!(
        is_backtracking(pattern),
        "{pattern} should need backtracking"
    );
    let o = op(&format!("@rx {pattern}"));
    for (input, expected) in cases {
        assert_eq!(
            o.matches(input, &NoVars, None),
            *expected,
            "{pattern} on {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// REQUEST-920 rule 920120 (file names): a `;` that does not end one of the listed HTML
/// entities, or a quote or `=`. The look-behind's alternatives have different lengths.
const CRS_920120: &str = r#"(?<!&(?:[aAoOuUyY]uml)|&(?:[aAeEiIoOuU]circ)|&(?:[eEiIoOuUyY]acute)|&(?:[aAeEiIoOuU]grave)|&(?:[cC]cedil)|&(?:[aAnNoO]tilde)|&(?:amp)|&(?:apos));|['"=]"#;

/// REQUEST-942 rule 942130 (SQL tautologies): `x = x` and `x != y`, through a
/// backreference inside negative look-aheads.
const CRS_942130: &str = r#"(?i:[\s'"`()]*?\b([\d\w]+)\b[\s'"`()]*?(?:<(?:=(?:[\s'"`()]*?(?!\b\1\b)[\d\w]+|>[\s'"`()]*?(?:\b\1\b))|>?[\s'"`()]*?(?!\b\1\b)[\d\w]+)|(?:not\s+(?:regexp|like)|is\s+not|>=?|!=|\^)[\s'"`()]*?(?!\b\1\b)[\d\w]+|(?:(?:sounds\s+)?like|r(?:egexp|like)|=)[\s'"`()]*?(?:\b\1\b)))"#;

/// RESPONSE-953 rule 953120 (PHP source leaking): `<?` not followed by `xml`.
const CRS_953120: &str = r"<\?(?!xml)";

#[test]
fn negative_look_behind_with_alternatives_of_different_lengths() {
    check(
        CRS_920120,
        &[
            (b"report.pdf", false),
            (b"M&uuml;ller.txt", false), // 4-letter entity name
            (b"caf&eacute;.jpg", false), // 5-letter entity name
            (b"fa&ccedil;ade.png", false),
            (b"a&amp;b.txt", false),
            (b"it&apos;s.txt", false),
            (b"a;b.txt", true),
            (b"&bogus;.txt", true),
            (b"uml;.txt", true), // the entity name without its `&`
            (b"it's.txt", true),
            (b"a=b", true),
        ],
    );
}

#[test]
fn negative_look_ahead() {
    check(
        CRS_953120,
        &[
            (b"<?php echo 1; ?>", true),
            (b"<?= $x ?>", true),
            (b"<?xml version=\"1.0\"?>", false),
            (b"plain <b>html</b>", false),
        ],
    );
}

#[test]
fn backreference_in_look_ahead() {
    check(
        CRS_942130,
        &[
            (b"1=1", true),
            (b"x' or 'a'='a", true),
            (b"1 != 2", true),
            (b"a LIKE a", true),
            (b"1 != 1", false),
            (b"a=b", false),
            (b"hello world", false),
        ],
    );
    // Outside look-around too.
    check(r"(\w)\1", &[(b"hello", true), (b"helo", false)]);
}

#[test]
fn captures_fill_tx_0_to_9() {
    let o = op(r"@rx (?<=id=)(\d+)(?!\d)");
    let mut captures = Vec::new();
    assert!(o.matches(b"?id=42&x=1", &NoVars, Some(&mut captures)));
    assert_eq!(captures, [b"42".to_vec(), b"42".to_vec()]);

    let o = op(r"@rx (a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)\11");
    let mut captures = Vec::new();
    assert!(o.matches(b"abcdefghijkk", &NoVars, Some(&mut captures)));
    // The whole match and the first nine groups, as ModSecurity's TX:0 .. TX:9.
    assert_eq!(captures.len(), 10);
    assert_eq!(captures[0], b"abcdefghijkk");
    assert_eq!(captures[9], b"i");
}

/// Each backtracking pattern has a linear pre-check that matches a superset of its
/// matches, so most values never reach the backtracking matcher: plain chat text does not
/// pass 942130's (it needs a comparison operator or `like` after a word).
#[test]
fn crs_patterns_get_a_linear_pre_check() {
    for p in [CRS_920120, CRS_942130, CRS_953120] {
        let Ok(Pattern::Backtracking(b)) = compile_pattern(p) else {
            panic!("{p} should need backtracking");
        };
        assert!(b.filter().is_some(), "{p}: {:?}", relax(p));
    }
    assert_eq!(relax(CRS_953120).unwrap(), r"<\x3F(?:xml)?");
    assert_eq!(relax(r"(a)\11x").unwrap(), "(a)(?s:.*)x");
    assert_eq!(relax(r"(a)\1(?<!b)").unwrap(), "(a)(?s:.*)(?:b)?");
    let Ok(Pattern::Backtracking(b)) = compile_pattern(CRS_942130) else {
        unreachable!()
    };
    let filter = b.filter().unwrap();
    let chat = "Please summarise the following meeting notes for the team, keeping the \
        action items and their owners (two per line).";
    assert!(!filter.is_match(chat.as_bytes()));
    for attack in [&b"1=1"[..], b"x' or 'a'='a", b"1 != 2"] {
        assert!(filter.is_match(attack));
    }
}

/// A pattern with a macro is compiled when first evaluated, on the fallback when it
/// needs it.
#[test]
fn a_macro_pattern_with_look_around_compiles_on_use() {
    let o = op("@rx (?<![a-z])%{tx.word}(?!_)");
    assert!(o.matches(b"1 select 2", &Word, None));
    assert!(!o.matches(b"xselect", &Word, None));
    assert!(!o.matches(b"select_", &Word, None));
}

/// Same flags and byte semantics as the linear path: `.` crosses newlines, `^` matches at
/// line starts, and bytes that are not UTF-8 are matched as bytes.
#[test]
fn flags_and_bytes_match_the_linear_path() {
    check(r"(?<=a).b", &[(b"a\nb", true), (b"\nb", false)]);
    check(r"^(?!x)y", &[(b"x\ny", true), (b"xy", false)]);
    check(r"(?<=\W)a", &[(b"\xffa", true), (b"ba", false)]);
    check(r"(?<=[^a])b", &[(b"\xe9b", true), (b"ab", false)]);
    check(
        r"(?i)(?<!x)select",
        &[(b"SeLeCt", true), (b"xselect", false)],
    );
    check(r"\w(?=\d)", &[(b"\xe9\xe91", false), (b"a1", true)]);
}

/// Patterns RE2 can express keep the linear engine (and their prefilter factors).
#[test]
fn other_patterns_stay_linear() {
    for p in [r"(?i)<script", r"a{1,}b{x}", r"(?>ab)++", r"\d+"] {
        assert!(matches!(compile_pattern(p), Ok(Pattern::Linear(_))), "{p}");
    }
    // fancy-regex would read `\xff` as U+00FF, not the byte: refused, not mismatched.
    for p in [r"(?<=\xff)a", "(?<=é)a", r"(\w)\1\x{80}", r"(?!\h)"] {
        let err = compile_pattern(p).err().unwrap_or_default();
        assert!(err.contains("not supported"), "{p}: {err}");
    }
    // A malformed pattern is still an error.
    assert!(compile_pattern(r"(?<=a(").is_err());
}

/// Catastrophic backtracking stops at [`BACKTRACK_LIMIT`] steps and counts as no match,
/// as a PCRE match-limit error does in ModSecurity v3.
#[test]
fn exceeding_the_backtrack_limit_is_no_match() {
    // Overlapping alternatives under a quantifier, kept in the backtracking matcher by
    // the backreference: exponential in the run of `a`s when the final `b` is missing.
    let pattern = r"^(a|aa)+\1?b";
    let hostile = [b"a".repeat(40), b"c".to_vec()].concat();
    let raw = fancy_regex::RegexBuilder::new(pattern)
        .backtrack_limit(BACKTRACK_LIMIT)
        .build()
        .unwrap();
    assert!(
        matches!(
            raw.is_match(std::str::from_utf8(&hostile).unwrap()),
            Err(fancy_regex::Error::RuntimeError(
                fancy_regex::RuntimeError::BacktrackLimitExceeded
            ))
        ),
        "the input should exhaust the step budget"
    );
    let o = op(&format!("@rx {pattern}"));
    assert!(!o.matches(&hostile, &NoVars, None));
    let mut captures = Vec::new();
    assert!(!o.matches(&hostile, &NoVars, Some(&mut captures)));
    // The same pattern on a short value still works.
    assert!(o.matches(b"aab", &NoVars, None));
    assert!(!o.matches(b"aac", &NoVars, None));
}
