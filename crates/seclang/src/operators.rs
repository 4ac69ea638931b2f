//! Operators (`@rx`, `@pm`, `@eq`, ...): whether a transformed value matches.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::{Regex, RegexBuilder};

use crate::error::ErrorKind;
use crate::factors;
use crate::macros::{MacroText, Resolve};
pub use crate::numbers::atoi;

/// Compiles an `@rx` pattern as ModSecurity v3 compiles it for PCRE: `.` also matches a
/// newline (PCRE_DOTALL), `^` and `$` match at line breaks (PCRE_MULTILINE), and byte
/// semantics (no UTF mode: `\w`, `\d`, `\s` and case folding are ASCII), so a value that
/// is not valid UTF-8 is still matched. The pattern is first rewritten from PCRE to RE2
/// syntax by [`translate_pcre`]. Patterns that need look-around or backreferences are an
/// error here; [`compile_pattern`] takes them too.
pub fn compile_rx(pattern: &str) -> Result<Regex, String> {
    build_linear(&translate_pcre(pattern)?)
}

fn build_linear(translated: &str) -> Result<Regex, String> {
    RegexBuilder::new(translated)
        .dot_matches_new_line(true)
        .multi_line(true)
        .unicode(false)
        // CRS's largest alternations need more than the 10 MiB default.
        .size_limit(64 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// How many backtracking steps one match of a [`Pattern::Backtracking`] may take before
/// it gives up. ModSecurity v3 treats a PCRE error, the match limit included, as "no
/// match" (3.0.9 source read: `Rx::evaluate` returns true only when
/// `Regex::searchOneMatch` gave captures, and a negative `pcre_exec` result gives none),
/// and so does this engine: a hostile value costs a bounded amount of work and does not
/// match. 3.0.9 sets no match limit of its own (PCRE's build default, 10 000 000 calls,
/// applies); this budget is lower to bound the cost per value, and the two count
/// different things, so the cut-off points are not the same.
pub const BACKTRACK_LIMIT: usize = 1_000_000;

/// A compiled `@rx` pattern.
#[derive(Debug)]
pub enum Pattern {
    /// RE2 semantics (the `regex` crate): linear time, and the prefilter reads it.
    Linear(Regex),
    /// A pattern with look-around or backreferences, which RE2 cannot express, run by a
    /// backtracking matcher (`fancy-regex`) with at most [`BACKTRACK_LIMIT`] steps per
    /// match. Three CRS 3.3 rules need it (920120, 942130, 953120). Same flags and byte
    /// semantics as the linear form: the value is matched as bytes (ASCII classes, `.`
    /// matches any byte), so non-UTF-8 input needs no lossy conversion.
    Backtracking(Box<Backtracking>),
}

/// The backtracking form of an `@rx` pattern ([`Pattern::Backtracking`]): the
/// `fancy-regex` matcher, bounded by [`BACKTRACK_LIMIT`], and the linear pre-check that
/// rejects most values before it runs.
#[derive(Debug)]
pub struct Backtracking {
    regex: fancy_regex::Regex,
    /// The pattern [`relax`]ed into RE2 syntax: it matches every value the pattern
    /// matches (and more), in linear time, so a value it rejects skips the backtracking
    /// matcher. `None` when the relaxed form does not compile.
    filter: Option<Regex>,
    /// The relaxed form's prefilter factors.
    factors: Option<Vec<Vec<u8>>>,
}

impl Backtracking {
    /// The backtracking matcher itself.
    pub fn regex(&self) -> &fancy_regex::Regex {
        &self.regex
    }

    /// The linear pre-check ([`relax`]), if the relaxed pattern compiled.
    pub fn filter(&self) -> Option<&Regex> {
        self.filter.as_ref()
    }
}

/// Compiles an `@rx` pattern: with [`compile_rx`] when RE2 semantics can express it, and
/// otherwise (look-around, backreferences) as a [`Pattern::Backtracking`].
pub fn compile_pattern(pattern: &str) -> Result<Pattern, String> {
    match compile_rx(pattern) {
        Ok(re) => Ok(Pattern::Linear(re)),
        Err(linear) if linear.contains("not supported by RE2") => {
            let translated = translate(pattern, Mode::Backtracking).map_err(|_| linear.clone())?;
            // fancy-regex reads `\xHH` above 0x7f as the code point U+00HH, which never
            // matches the single byte PCRE means (checked: `(?<=\xff)a` does not match
            // b"\xffa" in its ASCII bytes mode). Such a pattern stays unsupported rather
            // than silently missing; none of CRS 3.3's three needs it.
            if has_high_byte(&translated) {
                return Err(format!(
                    "{linear}; bytes above 0x7f with look-around or backreferences are not supported"
                ));
            }
            let regex = fancy_regex::RegexBuilder::new(&translated)
                .dot_matches_new_line(true)
                .multi_line(true)
                .bytes_mode(fancy_regex::BytesMode::Ascii)
                .backtrack_limit(BACKTRACK_LIMIT)
                .delegate_size_limit(64 << 20)
                .build()
                .map_err(|e| e.to_string())?;
            let relaxed = relax(pattern).ok();
            Ok(Pattern::Backtracking(Box::new(Backtracking {
                regex,
                filter: relaxed.as_deref().and_then(|r| build_linear(r).ok()),
                factors: relaxed.as_deref().and_then(factors::rx_factors),
            })))
        }
        Err(e) => Err(e),
    }
}

impl Pattern {
    /// Whether `input` matches; with `captures`, fills them (the whole match first, at
    /// most [`MAX_CAPTURES`]) when it does.
    pub fn matches(&self, input: &[u8], captures: Option<&mut Vec<Vec<u8>>>) -> bool {
        match self {
            Pattern::Linear(re) => rx(re, input, captures),
            Pattern::Backtracking(b) => {
                if b.filter.as_ref().is_some_and(|f| !f.is_match(input)) {
                    return false;
                }
                let re = &b.regex;
                // An error is the step budget running out: no match, as in ModSecurity.
                let Some(out) = captures else {
                    return re.is_match(input).unwrap_or(false);
                };
                match re.captures(input) {
                    Ok(Some(found)) => {
                        out.clear();
                        for i in 0..found.len().min(MAX_CAPTURES) {
                            out.push(
                                found
                                    .get(i)
                                    .map(|g| g.as_bytes().to_vec())
                                    .unwrap_or_default(),
                            );
                        }
                        true
                    }
                    Ok(None) | Err(_) => false,
                }
            }
        }
    }
}

/// Whether a [`translate`]d pattern names a byte above 0x7f (`\xHH`; the translation
/// spells every non-ASCII byte, `\x{..}`, `\h` and `\v` so).
fn has_high_byte(translated: &str) -> bool {
    let b = translated.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'x')
                && let Some(digits) = translated.get(i + 2..i + 4)
                && u8::from_str_radix(digits, 16).is_ok_and(|v| v >= 0x80)
            {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Rewrites PCRE syntax that means the same in RE2 but is spelled differently:
/// a `{` or `}` that is not part of a `{n}`, `{n,}`, `{n,m}` quantifier is a literal;
/// an escaped punctuation character (`\'`, `\/`) is that character; `[`, `&` and `~`
/// inside a class are literals (RE2 reads them as nested classes and set operations);
/// non-ASCII characters are their UTF-8 bytes (PCRE without UTF mode sees bytes);
/// `\x{HH}`, `\h`, `\v`, `\e` and `\0nn` become explicit bytes.
///
/// Two constructs are widened: possessive quantifiers (`a++`) become greedy and atomic
/// groups `(?>...)` plain groups. Both only drop PCRE's refusal to backtrack, so the
/// rewritten pattern matches everything the original matches (and in rare cases more):
/// a detection is never lost.
///
/// Look-around and backreferences have no RE2 equivalent: they are an error.
pub fn translate_pcre(pattern: &str) -> Result<String, String> {
    translate(pattern, Mode::Re2)
}

/// [`translate_pcre`] for a pattern with look-around or backreferences, into RE2 syntax
/// that matches a superset of what it matches: each look-around `(?=X)`, `(?!X)`,
/// `(?<=X)`, `(?<!X)` becomes an optional group `(?:X)?` (which may match nothing, as a
/// dropped assertion would), and a backreference `\N` becomes `(?s:.*)` (any text,
/// the captured one included). A value the relaxed pattern does not match cannot match
/// the original, and every literal all its matches contain is in the original's too.
pub fn relax(pattern: &str) -> Result<String, String> {
    translate(pattern, Mode::Relaxed)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Look-around and backreferences are an error.
    Re2,
    /// Kept as they are (fancy-regex spells them as PCRE does).
    Backtracking,
    /// Widened ([`relax`]).
    Relaxed,
}

fn translate(pattern: &str, mode: Mode) -> Result<String, String> {
    let backtracking = mode == Mode::Backtracking;
    // Per open group: whether it was a look-around turned into an optional group.
    let mut groups: Vec<bool> = Vec::new();
    let b = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() + 16);
    let hex = |out: &mut String, byte: u8| out.push_str(&format!("\\x{byte:02X}"));
    let mut i = 0;
    // Inside `[...]`, and whether the next character is the first of the class (where `]`
    // is a literal).
    let mut class = false;
    let mut class_first = false;
    // The previous token was a quantifier, so `+` makes it possessive and `?` lazy.
    let mut after_quantifier = false;
    while i < b.len() {
        let c = b[i];
        if c >= 0x80 {
            hex(&mut out, c);
            i += 1;
            after_quantifier = false;
            class_first = false;
            continue;
        }
        if class {
            match c {
                b'\\' => {
                    let Some(&e) = b.get(i + 1) else {
                        return Err("pattern ends with a backslash".into());
                    };
                    i += 2;
                    match e {
                        b'h' => out.push_str("\\t\\x20\\xA0"),
                        b'v' => out.push_str("\\n\\x0B\\x0C\\r\\x85"),
                        b'e' => out.push_str("\\x1B"),
                        b'b' => out.push_str("\\x08"),
                        b'0' => i = octal_escape(b, i, &mut out),
                        b'x' if b.get(i) == Some(&b'{') => i = braced_hex(b, i, &mut out)?,
                        e if e.is_ascii_alphanumeric() => {
                            out.push('\\');
                            out.push(char::from(e));
                        }
                        e => hex(&mut out, e),
                    }
                }
                b']' if !class_first => {
                    class = false;
                    out.push(']');
                    i += 1;
                }
                b'[' if b.get(i + 1) == Some(&b':') => {
                    // A POSIX class `[:alpha:]` is the same in both.
                    let end = pattern[i..]
                        .find(":]")
                        .map(|e| i + e + 2)
                        .ok_or("unterminated POSIX class")?;
                    out.push_str(&pattern[i..end]);
                    i = end;
                }
                b'[' | b'&' | b'~' | b']' => {
                    hex(&mut out, c);
                    i += 1;
                }
                _ => {
                    out.push(char::from(c));
                    i += 1;
                }
            }
            class_first = false;
            continue;
        }
        let quantifier = after_quantifier;
        after_quantifier = false;
        match c {
            b'\\' => {
                let Some(&e) = b.get(i + 1) else {
                    return Err("pattern ends with a backslash".into());
                };
                i += 2;
                match e {
                    b'1'..=b'9' if mode == Mode::Relaxed => {
                        // `\11` is group 11 (or an octal byte): any text covers every
                        // reading.
                        while b.get(i).is_some_and(u8::is_ascii_digit) {
                            i += 1;
                        }
                        out.push_str("(?s:.*)");
                    }
                    b'1'..=b'9' if backtracking => {
                        out.push('\\');
                        out.push(char::from(e));
                    }
                    b'1'..=b'9' => {
                        return Err(format!(
                            "backreference \\{} is not supported by RE2",
                            char::from(e)
                        ));
                    }
                    b'h' => out.push_str("[\\t\\x20\\xA0]"),
                    b'v' => out.push_str("[\\n\\x0B\\x0C\\r\\x85]"),
                    b'e' => out.push_str("\\x1B"),
                    b'0' => i = octal_escape(b, i, &mut out),
                    b'x' if b.get(i) == Some(&b'{') => i = braced_hex(b, i, &mut out)?,
                    b'R' | b'K' | b'G' | b'Z' | b'Q' | b'E' | b'X' | b'C' | b'c' | b'g' | b'k' => {
                        return Err(format!(
                            "PCRE escape \\{} is not supported by RE2",
                            char::from(e)
                        ));
                    }
                    e if e.is_ascii_alphanumeric() => {
                        out.push('\\');
                        out.push(char::from(e));
                    }
                    e => hex(&mut out, e),
                }
            }
            b'[' => {
                class = true;
                class_first = true;
                out.push('[');
                i += 1;
                if b.get(i) == Some(&b'^') {
                    out.push('^');
                    i += 1;
                }
            }
            b'(' => {
                let rest = &pattern[i..];
                let look_around = ["(?=", "(?!", "(?<=", "(?<!"]
                    .into_iter()
                    .find(|l| rest.starts_with(l));
                groups.push(look_around.is_some() && mode == Mode::Relaxed);
                if let Some(l) = look_around {
                    match mode {
                        Mode::Re2 => return Err("look-around is not supported by RE2".into()),
                        Mode::Backtracking => out.push_str(l),
                        Mode::Relaxed => out.push_str("(?:"),
                    }
                    i += l.len();
                } else if rest.starts_with("(?>") {
                    out.push_str("(?:");
                    i += 3;
                } else if rest.starts_with("(?#") {
                    groups.pop();
                    let end = rest.find(')').ok_or("unterminated comment")?;
                    i += end + 1;
                } else if rest.starts_with("(?|") {
                    return Err("branch reset groups are not supported by RE2".into());
                } else if rest.starts_with("(?") {
                    out.push_str("(?");
                    i += 2;
                } else {
                    out.push('(');
                    i += 1;
                }
            }
            b'{' => match counted(&b[i..]) {
                Some(len) => {
                    out.push_str(&pattern[i..i + len]);
                    i += len;
                    after_quantifier = true;
                }
                None => {
                    out.push_str("\\{");
                    i += 1;
                }
            },
            b')' => {
                out.push(')');
                if groups.pop() == Some(true) {
                    out.push('?');
                }
                i += 1;
            }
            b'}' => {
                out.push_str("\\}");
                i += 1;
            }
            b'+' if quantifier => i += 1,
            b'?' if quantifier => {
                out.push('?');
                i += 1;
            }
            b'*' | b'+' | b'?' => {
                out.push(char::from(c));
                i += 1;
                after_quantifier = true;
            }
            _ => {
                out.push(char::from(c));
                i += 1;
            }
        }
    }
    Ok(out)
}

/// `\0`, `\0n`, `\0nn`: an octal byte. `at` is just after the `0`.
fn octal_escape(b: &[u8], at: usize, out: &mut String) -> usize {
    let mut value = 0u32;
    let mut i = at;
    while i < at + 2 && b.get(i).is_some_and(|d| (b'0'..=b'7').contains(d)) {
        value = value * 8 + u32::from(b[i] - b'0');
        i += 1;
    }
    out.push_str(&format!("\\x{value:02X}"));
    i
}

/// `\x{HH}`: one byte (PCRE without UTF mode refuses code points above 0xff). `at` is
/// at the `{`.
fn braced_hex(b: &[u8], at: usize, out: &mut String) -> Result<usize, String> {
    let len = b[at..]
        .iter()
        .position(|&c| c == b'}')
        .ok_or("unterminated \\x{")?;
    let digits = std::str::from_utf8(&b[at + 1..at + len]).map_err(|_| "invalid \\x{} escape")?;
    let value =
        u32::from_str_radix(digits, 16).map_err(|_| format!("invalid \\x{{{digits}}} escape"))?;
    if value > 0xff {
        return Err(format!("\\x{{{digits}}} is above 0xff (no UTF mode)"));
    }
    out.push_str(&format!("\\x{value:02X}"));
    Ok(at + len + 1)
}

/// The length of a `{n}`, `{n,}` or `{n,m}` quantifier at the start of `b`.
fn counted(b: &[u8]) -> Option<usize> {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if digits(&mut i) == 0 {
        return None;
    }
    if b.get(i) == Some(&b',') {
        i += 1;
        digits(&mut i);
    }
    (b.get(i) == Some(&b'}')).then_some(i + 1)
}

/// What an operator does, with its parameter compiled. Values are compared as bytes after
/// the rule's transformations; parameters that are macro texts are expanded against the
/// transaction each time the operator runs.
#[derive(Debug)]
pub enum OpKind {
    /// `@rx` (or an operator without `@`): the regular expression matches somewhere in
    /// the value; with `capture`, the match and its groups go to `TX:0` .. `TX:9`.
    Rx(Pattern),
    /// `@rx` whose pattern has macros (`^%{tx.allowed_request_content_type_charset}$`):
    /// compiled when first seen, kept in a small cache shared by all transactions.
    /// A pattern that expands to one that does not compile does not match.
    RxMacro(MacroText, RegexCache),
    /// `@pm` and `@pmFromFile` (`@pmf`): one of the phrases occurs in the value,
    /// compared without regard to ASCII case. `@pm` phrases are separated by
    /// whitespace; a data file has one phrase per line, `#` lines and empty lines
    /// skipped. With `capture`, `TX:0` is the phrase as found in the value.
    Pm(AhoCorasick),
    /// `@streq`: the value equals the parameter, byte for byte (case-sensitive).
    Streq(MacroText),
    /// `@contains`: the parameter occurs in the value (case-sensitive).
    Contains(MacroText),
    /// `@containsWord`: the parameter occurs in the value with no word character
    /// (ASCII letter, digit, `_`) right before or after it. An empty parameter matches
    /// any value.
    ContainsWord(MacroText),
    /// `@beginsWith`: the value starts with the parameter (case-sensitive).
    BeginsWith(MacroText),
    /// `@endsWith`: the value ends with the parameter (case-sensitive).
    EndsWith(MacroText),
    /// `@within`: the value occurs in the parameter, the reverse of `@contains` (an
    /// empty value matches). CRS uses it to check a value against a space-separated
    /// allow list such as `tx.allowed_methods`.
    Within(MacroText),
    /// `@eq`: value and parameter are equal as integers, each read like C's `atoi`
    /// ([`atoi`]: leading digits, anything else 0).
    Eq(MacroText),
    /// `@ge`: the value is at least the parameter, as integers ([`atoi`]).
    Ge(MacroText),
    /// `@gt`: the value is greater than the parameter, as integers ([`atoi`]).
    Gt(MacroText),
    /// `@le`: the value is at most the parameter, as integers ([`atoi`]).
    Le(MacroText),
    /// `@lt`: the value is less than the parameter, as integers ([`atoi`]).
    Lt(MacroText),
    /// `@validateByteRange 1-255,...`: matches when the value holds a byte outside the
    /// allowed bytes and ranges (the table is indexed by byte, `true` = allowed).
    ValidateByteRange(Box<[bool; 256]>),
    /// `@validateUrlEncoding`: matches when a `%` in the value is not followed by two
    /// hex digits.
    ValidateUrlEncoding,
    /// `@validateUtf8Encoding`: matches when the value is not valid UTF-8 (Rust's
    /// definition: overlong forms, surrogates and code points above U+10FFFF are
    /// invalid too).
    ValidateUtf8Encoding,
    /// `@ipMatch` and `@ipMatchFromFile` (`@ipMatchF`): the value (trimmed) is an IPv4 or
    /// IPv6 address in one of the networks, each an address and a prefix length in bits
    /// (32 or 128 for a single address). An IPv4-mapped IPv6 value also matches IPv4
    /// networks; a value that is not an address does not match.
    IpMatch(Vec<(IpAddr, u8)>),
    /// libinjection's SQL injection detection; `TX:0` is the token fingerprint.
    DetectSqli,
    /// libinjection's XSS detection.
    DetectXss,
    /// Looks the value up in the `SecGeoLookupDb` database and fills `GEO`
    /// ([`crate::lookup`]).
    GeoLookup,
    /// Looks a name built from the value up in a DNS blocklist ([`crate::lookup`]).
    Rbl(crate::lookup::Rbl),
    /// `@unconditionalMatch`: every value matches.
    UnconditionalMatch,
    /// `@noMatch`: no value matches.
    NoMatch,
}

/// The compiled forms of an [`OpKind::RxMacro`] pattern by expanded text, shared by every
/// transaction of the rule set (behind a mutex): the last 32 expansions, oldest dropped
/// first, a pattern that does not compile kept as such.
#[derive(Debug, Default, Clone)]
pub struct RegexCache(Arc<Mutex<Vec<CachedRegex>>>);

/// An expanded pattern and its compiled form (`None`: it does not compile).
type CachedRegex = (Vec<u8>, Option<Arc<Pattern>>);

const REGEX_CACHE_SIZE: usize = 32;

impl RegexCache {
    fn get(&self, pattern: &[u8]) -> Option<Arc<Pattern>> {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, r)) = cache.iter().find(|(p, _)| p == pattern) {
            return r.clone();
        }
        let compiled = std::str::from_utf8(pattern)
            .ok()
            .and_then(|p| compile_pattern(p).ok())
            .map(Arc::new);
        if cache.len() >= REGEX_CACHE_SIZE {
            cache.remove(0);
        }
        cache.push((pattern.to_vec(), compiled.clone()));
        compiled
    }
}

/// A rule's compiled operator (`[!]@name param`), as [`compile`] returns it.
#[derive(Debug)]
pub struct Operator {
    /// What it matches, its parameter compiled.
    pub kind: OpKind,
    /// `!@...`: the rule matches when the operator does not. A negated operator captures
    /// nothing.
    pub negated: bool,
    /// As written, for logs: `@rx`, `!@within`, ...
    pub name: String,
    /// Literals one of which every value the operator matches contains (lowercased,
    /// compared without regard to ASCII case), for the rule set's prefilter
    /// ([`crate::prefilter`]); taken by the compiler. `None`: the operator may match
    /// any value.
    pub(crate) factors: Option<Vec<Vec<u8>>>,
}

/// Operators that parse but need something this engine does not have.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "detectsqli",
        "libinjection SQL detection is not implemented yet",
    ),
    (
        "detectxss",
        "libinjection XSS detection is not implemented yet",
    ),
    ("gsblookup", "needs Google Safe Browsing lookups"),
    ("inspectfile", "runs an external program"),
    ("fuzzyhash", "needs ssdeep"),
    ("verifycc", "not implemented"),
    ("verifycpf", "not implemented"),
    ("verifyssn", "not implemented"),
    ("verifysvnr", "not implemented"),
    ("rsub", "not implemented"),
    ("strmatch", "not implemented"),
];

/// Compiles an operator expression such as `!@rx ^a` or `@pmFromFile x.data`; a text
/// without `@` is an `@rx` pattern. `read_data` reads a data file named relative to the
/// rule file.
pub fn compile(
    text: &str,
    read_data: &dyn Fn(&str) -> Result<String, ErrorKind>,
) -> Result<Operator, ErrorKind> {
    let (negated, rest) = match text.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (name, param) = match rest.strip_prefix('@') {
        Some(r) => {
            let end = r.find(char::is_whitespace).unwrap_or(r.len());
            (r[..end].to_ascii_lowercase(), r[end..].trim_start())
        }
        None => ("rx".to_owned(), rest),
    };
    let error = |reason: String| ErrorKind::Operator {
        text: text.to_owned(),
        reason,
    };
    let macro_text = || MacroText::parse(param);
    let mut factors = None;
    let kind = match name.as_str() {
        "rx" => {
            let m = macro_text()?;
            if m.constant().is_some() {
                let re = compile_pattern(param).map_err(|reason| ErrorKind::Regex {
                    pattern: param.to_owned(),
                    reason,
                })?;
                factors = match &re {
                    Pattern::Linear(_) => translate_pcre(param)
                        .ok()
                        .and_then(|t| factors::rx_factors(&t)),
                    // The relaxed form's literals are in every match of the original.
                    Pattern::Backtracking(b) => b.factors.clone(),
                };
                OpKind::Rx(re)
            } else {
                OpKind::RxMacro(m, RegexCache::default())
            }
        }
        "pm" => {
            let phrases: Vec<String> = param.split_whitespace().map(str::to_owned).collect();
            factors = factors::phrase_factors(phrases.iter().map(|p| p.as_bytes()));
            pm(phrases).map_err(error)?
        }
        "pmf" | "pmfromfile" => {
            let mut phrases = Vec::new();
            for file in param.split_whitespace() {
                let text = read_data(file)?;
                phrases.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned),
                );
            }
            factors = factors::phrase_factors(phrases.iter().map(|p| p.as_bytes()));
            pm(phrases).map_err(error)?
        }
        "streq" | "contains" | "containsword" | "beginswith" | "endswith" => {
            let m = macro_text()?;
            // Comparing the value with a constant phrase matches only values that
            // contain it.
            factors = m.constant().and_then(|c| factors::phrase_factors([c]));
            match name.as_str() {
                "streq" => OpKind::Streq(m),
                "contains" => OpKind::Contains(m),
                "containsword" => OpKind::ContainsWord(m),
                "beginswith" => OpKind::BeginsWith(m),
                _ => OpKind::EndsWith(m),
            }
        }
        "within" => OpKind::Within(macro_text()?),
        "eq" => OpKind::Eq(macro_text()?),
        "ge" => OpKind::Ge(macro_text()?),
        "gt" => OpKind::Gt(macro_text()?),
        "le" => OpKind::Le(macro_text()?),
        "lt" => OpKind::Lt(macro_text()?),
        "validatebyterange" => OpKind::ValidateByteRange(byte_ranges(param).map_err(error)?),
        "validateurlencoding" => OpKind::ValidateUrlEncoding,
        "validateutf8encoding" => OpKind::ValidateUtf8Encoding,
        "ipmatch" => OpKind::IpMatch(networks(param).map_err(error)?),
        "ipmatchfromfile" | "ipmatchf" => {
            let mut all = Vec::new();
            for file in param.split_whitespace() {
                let text = read_data(file)?;
                let list: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .collect();
                all.extend(networks(&list.join(",")).map_err(error)?);
            }
            OpKind::IpMatch(all)
        }
        "detectsqli" => OpKind::DetectSqli,
        "detectxss" => OpKind::DetectXss,
        "geolookup" => OpKind::GeoLookup,
        // ModSecurity reads the zone once, when the rule is loaded (`m_string->evaluate()`
        // without a transaction): a macro in it is not expanded.
        "rbl" => {
            if param.is_empty() {
                return Err(error("@rbl needs a zone".into()));
            }
            OpKind::Rbl(crate::lookup::Rbl::new(param))
        }
        "unconditionalmatch" => OpKind::UnconditionalMatch,
        "nomatch" => OpKind::NoMatch,
        other => {
            return Err(match UNSUPPORTED.iter().find(|(n, _)| *n == other) {
                Some((_, reason)) => ErrorKind::Unsupported {
                    feature: format!("operator @{}", &rest[1..1 + other.len()]),
                    reason: (*reason).to_owned(),
                },
                None => error(format!("unknown operator @{other}")),
            });
        }
    };
    Ok(Operator {
        kind,
        negated,
        name: format!("{}@{}", if negated { "!" } else { "" }, name),
        // A negated operator matches the values that lack its phrases.
        factors: factors.filter(|_| !negated),
    })
}

fn pm(phrases: Vec<String>) -> Result<OpKind, String> {
    if phrases.is_empty() {
        return Err("no phrases".into());
    }
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(&phrases)
        .map(OpKind::Pm)
        .map_err(|e| e.to_string())
}

fn byte_ranges(param: &str) -> Result<Box<[bool; 256]>, String> {
    let mut allowed = Box::new([false; 256]);
    for item in param.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (lo, hi) = item.split_once('-').unwrap_or((item, item));
        let parse = |s: &str| {
            s.trim()
                .parse::<u8>()
                .map_err(|_| format!("bad byte range {item:?}"))
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi {
            return Err(format!("bad byte range {item:?}"));
        }
        for b in lo..=hi {
            allowed[usize::from(b)] = true;
        }
    }
    Ok(allowed)
}

fn networks(param: &str) -> Result<Vec<(IpAddr, u8)>, String> {
    let mut out = Vec::new();
    for item in param
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (addr, bits) = match item.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (item, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("bad address {item:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or(format!("bad prefix {item:?}"))?,
            None => max,
        };
        out.push((addr, bits));
    }
    if out.is_empty() {
        return Err("no address".into());
    }
    Ok(out)
}

fn in_network(ip: IpAddr, (net, bits): (IpAddr, u8)) -> bool {
    fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
        let full = usize::from(bits / 8);
        let rest = bits % 8;
        a[..full] == b[..full] && (rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0)
    }
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => prefix_eq(&a.octets(), &b.octets(), bits),
        (IpAddr::V6(a), IpAddr::V6(b)) => prefix_eq(&a.octets(), &b.octets(), bits),
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|a| in_network(IpAddr::V4(a), (net, bits))),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let Some((&first, rest)) = needle.split_first() else {
        return Some(0);
    };
    // Compared only where the first byte matches: `@within %{tx.restricted_headers}`
    // looks for each header name in a long list, and a comparison at every position
    // (a call to `memcmp` each) was most of its cost. The first bytes are found eight
    // at a time ([`position_of_byte`]): a byte-by-byte loop over CRS's 250-byte
    // `tx.allowed_request_content_type` cost about 800 instructions per `@within`.
    let last = haystack.len().checked_sub(needle.len())?;
    let mut from = 0;
    while from <= last {
        let at = from + position_of_byte(first, &haystack[from..=last])?;
        // The second byte before the rest: most first-byte hits (the `/` or `|` around
        // the items of a list) end there, without a call to `memcmp`.
        if rest.first().is_none_or(|&b| haystack[at + 1] == b)
            && haystack[at + 1..at + needle.len()] == *rest
        {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The first position of `byte` in `haystack`, eight bytes per step (the zero-byte test
/// of a word whose bytes are `haystack`'s xor `byte`): safe Rust without SIMD, so the
/// same code runs inside Wasm.
fn position_of_byte(byte: u8, haystack: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let pattern = ONES * u64::from(byte);
    let mut chunks = haystack.chunks_exact(8);
    for (i, chunk) in chunks.by_ref().enumerate() {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes")) ^ pattern;
        // The lowest byte flagged is the first zero byte of `word` (a borrow can flag
        // bytes above a zero one only).
        let zeros = word.wrapping_sub(ONES) & !word & HIGHS;
        if zeros != 0 {
            return Some(8 * i + zeros.trailing_zeros() as usize / 8);
        }
    }
    let tail = chunks.remainder();
    tail.iter()
        .position(|&b| b == byte)
        .map(|p| haystack.len() - tail.len() + p)
}

/// At most this many `@rx` groups are captured into `TX:0` .. `TX:9`.
pub const MAX_CAPTURES: usize = 10;

impl Operator {
    /// Whether `input` matches (negation applied). When `captures` is given and the
    /// operator matched, it receives `TX:0`.. (the whole match first).
    pub fn matches(
        &self,
        input: &[u8],
        resolve: &dyn Resolve,
        captures: Option<&mut Vec<Vec<u8>>>,
    ) -> bool {
        let capture = if self.negated { None } else { captures };
        let raw = self.raw(input, resolve, capture);
        raw != self.negated
    }

    fn raw(
        &self,
        input: &[u8],
        resolve: &dyn Resolve,
        captures: Option<&mut Vec<Vec<u8>>>,
    ) -> bool {
        let number = |m: &MacroText| atoi(&m.expand_in(resolve));
        match &self.kind {
            OpKind::Rx(re) => re.matches(input, captures),
            OpKind::RxMacro(m, cache) => match cache.get(&m.expand_in(resolve)) {
                Some(re) => re.matches(input, captures),
                None => false,
            },
            OpKind::Pm(ac) => match ac.find(input) {
                Some(m) => {
                    if let Some(c) = captures {
                        c.clear();
                        c.push(input[m.start()..m.end()].to_vec());
                    }
                    true
                }
                None => false,
            },
            OpKind::Streq(m) => input == &*m.expand_in(resolve),
            OpKind::Contains(m) => find(input, &m.expand_in(resolve)).is_some(),
            OpKind::ContainsWord(m) => {
                let word = m.expand_in(resolve);
                if word.is_empty() {
                    return true;
                }
                let mut from = 0;
                while let Some(p) = find(&input[from..], &word) {
                    let start = from + p;
                    let end = start + word.len();
                    let before = start == 0 || !is_word(input[start - 1]);
                    let after = end == input.len() || !is_word(input[end]);
                    if before && after {
                        return true;
                    }
                    from = start + 1;
                }
                false
            }
            OpKind::BeginsWith(m) => input.starts_with(&m.expand_in(resolve)),
            OpKind::EndsWith(m) => input.ends_with(&m.expand_in(resolve)),
            OpKind::Within(m) => find(&m.expand_in(resolve), input).is_some(),
            OpKind::Eq(m) => atoi(input) == number(m),
            OpKind::Ge(m) => atoi(input) >= number(m),
            OpKind::Gt(m) => atoi(input) > number(m),
            OpKind::Le(m) => atoi(input) <= number(m),
            OpKind::Lt(m) => atoi(input) < number(m),
            OpKind::ValidateByteRange(allowed) => input.iter().any(|&b| !allowed[usize::from(b)]),
            OpKind::ValidateUrlEncoding => invalid_url_encoding(input),
            OpKind::ValidateUtf8Encoding => std::str::from_utf8(input).is_err(),
            OpKind::IpMatch(nets) => std::str::from_utf8(input)
                .ok()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
                .is_some_and(|ip| nets.iter().any(|n| in_network(ip, *n))),
            OpKind::DetectSqli => {
                let result = libinjectionrs::detect_sqli(input);
                if !result.is_injection() {
                    return false;
                }
                if let (Some(c), Some(fingerprint)) = (captures, result.fingerprint) {
                    c.clear();
                    c.push(fingerprint.as_str().as_bytes().to_vec());
                }
                true
            }
            OpKind::DetectXss => libinjectionrs::detect_xss(input).is_injection(),
            // Without the rule set's database and resolver ([`Operator::matches_with`]),
            // as ModSecurity without `SecGeoLookupDb` or with DNS failing: no match.
            OpKind::GeoLookup | OpKind::Rbl(_) => false,
            OpKind::UnconditionalMatch => true,
            OpKind::NoMatch => false,
        }
    }
}

/// libinjection's answers by value within a transaction: CRS asks `@detectSQLi` and
/// `@detectXSS` about every argument, and a chat request repeats values (`user`,
/// `assistant`), while each answer costs microseconds.
type Answer = (bool, Vec<u8>, Option<Option<Vec<u8>>>);

/// The most values a [`DetectMemo`] keeps per hash.
const DETECT_BUCKET: usize = 4;

#[derive(Default)]
pub(crate) struct DetectMemo {
    /// By a hash of the value: (SQLi rather than XSS, the value, `Some` if it is an
    /// injection, with the fingerprint if libinjection gave one).
    answers: std::collections::HashMap<
        u64,
        Vec<Answer>,
        std::hash::BuildHasherDefault<crate::collection::AddressHasher>,
    >,
    /// What the last successful `@geoLookup` found, for the caller to put into `GEO`.
    pub(crate) geo: Option<Vec<(&'static str, String)>>,
}

impl DetectMemo {
    /// Forgets every answer, keeping the table's room (for the next transaction).
    pub(crate) fn clear(&mut self) {
        self.answers.clear();
        self.geo = None;
    }

    pub(crate) fn capacity(&self) -> usize {
        self.answers.capacity()
    }
}

/// What `@geoLookup` and `@rbl` consult: the rule set's database, resolver and http:BL
/// key.
#[derive(Clone, Copy, Default)]
pub(crate) struct Services<'a> {
    pub geo: Option<&'a crate::lookup::GeoDb>,
    pub resolver: Option<&'a dyn crate::lookup::Resolver>,
    pub httpbl_key: Option<&'a str>,
}

impl Operator {
    /// Whether the operator's answer depends on the value alone: the same bytes always
    /// give the same answer, whatever the transaction holds. True of the operators with a
    /// parameter fixed at load time and no side effect; false of those whose parameter
    /// has macros (`@within %{tx.restricted_headers}`, `@rx` with macros) and of
    /// `@geoLookup` (fills `GEO`) and `@rbl` (asks a resolver). Only such operators'
    /// answers may be remembered across requests ([`crate::EvalMemo`]).
    /// The parameter's text when it may hold macros (the comparisons, `@rx` with macros).
    pub(crate) fn macro_argument(&self) -> Option<&MacroText> {
        match &self.kind {
            OpKind::RxMacro(m, _)
            | OpKind::Streq(m)
            | OpKind::Contains(m)
            | OpKind::ContainsWord(m)
            | OpKind::BeginsWith(m)
            | OpKind::EndsWith(m)
            | OpKind::Within(m)
            | OpKind::Eq(m)
            | OpKind::Ge(m)
            | OpKind::Gt(m)
            | OpKind::Le(m)
            | OpKind::Lt(m) => Some(m),
            _ => None,
        }
    }

    pub(crate) fn macro_argument_mut(&mut self) -> Option<&mut MacroText> {
        match &mut self.kind {
            OpKind::RxMacro(m, _)
            | OpKind::Streq(m)
            | OpKind::Contains(m)
            | OpKind::ContainsWord(m)
            | OpKind::BeginsWith(m)
            | OpKind::EndsWith(m)
            | OpKind::Within(m)
            | OpKind::Eq(m)
            | OpKind::Ge(m)
            | OpKind::Gt(m)
            | OpKind::Le(m)
            | OpKind::Lt(m) => Some(m),
            _ => None,
        }
    }

    pub(crate) fn value_only(&self) -> bool {
        match &self.kind {
            OpKind::Rx(_)
            | OpKind::Pm(_)
            | OpKind::ValidateByteRange(_)
            | OpKind::ValidateUrlEncoding
            | OpKind::ValidateUtf8Encoding
            | OpKind::IpMatch(_)
            | OpKind::DetectSqli
            | OpKind::DetectXss => true,
            OpKind::Streq(m)
            | OpKind::Contains(m)
            | OpKind::ContainsWord(m)
            | OpKind::BeginsWith(m)
            | OpKind::EndsWith(m)
            | OpKind::Within(m)
            | OpKind::Eq(m)
            | OpKind::Ge(m)
            | OpKind::Gt(m)
            | OpKind::Le(m)
            | OpKind::Lt(m) => m.constant().is_some(),
            // Constant answers: remembering them would only fill the memo.
            OpKind::UnconditionalMatch | OpKind::NoMatch => false,
            OpKind::RxMacro(..) | OpKind::GeoLookup | OpKind::Rbl(_) => false,
        }
    }
}

impl Operator {
    /// [`Operator::matches`], with libinjection's answers remembered in `memo`.
    pub(crate) fn matches_with(
        &self,
        input: &[u8],
        resolve: &dyn Resolve,
        captures: Option<&mut Vec<Vec<u8>>>,
        memo: &mut DetectMemo,
        services: Services<'_>,
    ) -> bool {
        let sqli = match &self.kind {
            OpKind::DetectSqli => true,
            OpKind::DetectXss => false,
            OpKind::GeoLookup => {
                // ModSecurity fills GEO whatever the rule's negation says.
                memo.geo = services.geo.and_then(|db| db.lookup(input));
                return memo.geo.is_some() != self.negated;
            }
            OpKind::Rbl(rbl) => {
                let found = crate::lookup::rbl_name(rbl, input, services.httpbl_key)
                    .zip(services.resolver)
                    .and_then(|(name, resolver)| resolver.lookup(&name))
                    .is_some_and(|addresses| !addresses.is_empty());
                // With `capture`, ModSecurity sets TX:0 to the value looked up.
                if found
                    && !self.negated
                    && let Some(c) = captures
                {
                    c.clear();
                    c.push(input.to_vec());
                }
                return found != self.negated;
            }
            _ => return self.matches(input, resolve, captures),
        };
        // A word-at-a-time hash (SipHash took about 4 % of a chat's evaluation): values
        // are compared whole, so a collision costs a comparison, and a bucket keeps at
        // most `DETECT_BUCKET` values, so crafted collisions cannot make it a long scan.
        let hash = crate::collection::bytes_hash(input);
        let bucket = memo.answers.entry(hash).or_default();
        let answer = match bucket.iter().find(|(s, v, _)| *s == sqli && v == input) {
            Some((_, _, answer)) => answer.clone(),
            None => {
                let answer = if sqli {
                    let result = libinjectionrs::detect_sqli(input);
                    result
                        .is_injection()
                        .then(|| result.fingerprint.map(|f| f.as_str().as_bytes().to_vec()))
                } else {
                    libinjectionrs::detect_xss(input)
                        .is_injection()
                        .then_some(None)
                };
                if bucket.len() < DETECT_BUCKET {
                    bucket.push((sqli, input.to_vec(), answer.clone()));
                }
                answer
            }
        };
        let raw = match answer {
            Some(fingerprint) => {
                // As `raw` does: the fingerprint is `TX:0` of a matching `@detectSQLi`.
                if !self.negated
                    && let (Some(c), Some(fingerprint)) = (captures, fingerprint)
                {
                    c.clear();
                    c.push(fingerprint);
                }
                true
            }
            None => false,
        };
        raw != self.negated
    }
}

fn rx(re: &Regex, input: &[u8], captures: Option<&mut Vec<Vec<u8>>>) -> bool {
    // With the flags of `build_linear` (`.` any byte, `$` at the end), `^.*$` matches
    // every value, whole: CRS's 920450 captures each header name so, and a search with
    // captures cost about 2,000 instructions a name.
    if re.as_str() == "^.*$" {
        if let Some(out) = captures {
            out.clear();
            out.push(input.to_vec());
        }
        return true;
    }
    // Most values do not match: find that out without the cost of capture groups.
    if !re.is_match(input) {
        return false;
    }
    if let Some(out) = captures
        && let Some(found) = re.captures(input)
    {
        out.clear();
        for group in found.iter().take(MAX_CAPTURES) {
            out.push(group.map(|g| g.as_bytes().to_vec()).unwrap_or_default());
        }
    }
    true
}

fn invalid_url_encoding(input: &[u8]) -> bool {
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let ok = input.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && input.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The search of `@within` and `@contains` finds the first occurrence, as a
        /// comparison at every position does (bytes from a small alphabet, so that first
        /// bytes and partial matches are frequent).
        #[test]
        fn find_is_the_first_occurrence(
            haystack in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(0u8), Just(0x80u8), Just(0xffu8)], 0..70),
            needle in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(0u8), Just(0x80u8), Just(0xffu8)], 0..4),
        ) {
            let naive = (0..=haystack.len()).find(|&i| haystack[i..].starts_with(&needle));
            prop_assert_eq!(super::find(&haystack, &needle), naive);
        }

        /// The short cut for `^.*$` answers what the regex answers, captures included.
        #[test]
        fn whole_value_pattern_is_the_regex(input in proptest::collection::vec(any::<u8>(), 0..40)) {
            let re = super::compile_rx("^.*$").unwrap();
            prop_assert_eq!(re.as_str(), "^.*$");
            let mut short = Vec::new();
            prop_assert!(super::rx(&re, &input, Some(&mut short)));
            let found = re.captures(&input).unwrap();
            let groups: Vec<Vec<u8>> = found
                .iter()
                .map(|g| g.map(|g| g.as_bytes().to_vec()).unwrap_or_default())
                .collect();
            prop_assert_eq!(short, groups);
        }
    }
}
