//! The injection rule set. Each rule has a stable numeric id (reported as `waf_rule_<id>`),
//! a name and a category. Rules match the [`normalize`]d text (lowercase, SQL comments removed,
//! whitespace collapsed) and are written as small scanners rather than regexes: the component
//! is instantiated per request, so there is no start-up cost to amortise a regex compile over.
//!
//! Precision matters as much as recall here: the body is mostly natural-language chat, so
//! patterns require SQL/HTML *structure* (a quote followed by a boolean operator and a
//! comparison, a tag followed by an event-handler attribute) rather than single keywords.

use crate::normalize::normalize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    SqlInjection,
    CrossSiteScripting,
    PathTraversal,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::SqlInjection => "sql_injection",
            Category::CrossSiteScripting => "xss",
            Category::PathTraversal => "path_traversal",
        }
    }
}

/// Where the inspected text came from; a few rules depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    UrlPath,
    UrlQuery,
    Header,
    /// A string or object key inside the JSON body.
    JsonString,
}

/// One piece of inspected text in its original and normalized forms.
pub struct Subject<'a> {
    pub original: &'a str,
    pub normalized: &'a str,
    pub context: Context,
}

pub struct Rule {
    pub id: u32,
    pub name: &'static str,
    pub category: Category,
    matches: fn(&Subject) -> bool,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rule {} ({})", self.id, self.name)
    }
}

/// All rules, in evaluation order (the first match is reported).
pub static RULES: &[Rule] = &[
    Rule {
        id: 1001,
        name: "sqli_quote_tautology",
        category: Category::SqlInjection,
        matches: sqli_quote_tautology,
    },
    Rule {
        id: 1002,
        name: "sqli_unquoted_tautology",
        category: Category::SqlInjection,
        matches: sqli_unquoted_tautology,
    },
    Rule {
        id: 1003,
        name: "sqli_union_select",
        category: Category::SqlInjection,
        matches: sqli_union_select,
    },
    Rule {
        id: 1004,
        name: "sqli_stacked_statement",
        category: Category::SqlInjection,
        matches: sqli_stacked_statement,
    },
    Rule {
        id: 1005,
        name: "sqli_comment_after_quote",
        category: Category::SqlInjection,
        matches: sqli_comment_after_quote,
    },
    Rule {
        id: 1006,
        name: "sqli_time_delay",
        category: Category::SqlInjection,
        matches: sqli_time_delay,
    },
    Rule {
        id: 2001,
        name: "xss_script_tag",
        category: Category::CrossSiteScripting,
        matches: xss_script_tag,
    },
    Rule {
        id: 2002,
        name: "xss_script_uri",
        category: Category::CrossSiteScripting,
        matches: xss_script_uri,
    },
    Rule {
        id: 2003,
        name: "xss_event_handler",
        category: Category::CrossSiteScripting,
        matches: xss_event_handler,
    },
    Rule {
        id: 2004,
        name: "xss_embedding_tag",
        category: Category::CrossSiteScripting,
        matches: xss_embedding_tag,
    },
    Rule {
        id: 3001,
        name: "path_traversal_dot_dot",
        category: Category::PathTraversal,
        matches: traversal_dot_dot,
    },
    Rule {
        id: 3002,
        name: "path_traversal_encoded_dots",
        category: Category::PathTraversal,
        matches: traversal_encoded_dots,
    },
    Rule {
        id: 3003,
        name: "path_traversal_sensitive_file",
        category: Category::PathTraversal,
        matches: traversal_sensitive_file,
    },
    Rule {
        id: 3004,
        name: "path_traversal_null_byte",
        category: Category::PathTraversal,
        matches: traversal_null_byte,
    },
];

/// The first rule `text` matches, if any.
pub fn first_match(text: &str, context: Context) -> Option<&'static Rule> {
    let normalized = normalize(text);
    let subject = Subject {
        original: text,
        normalized: &normalized,
        context,
    };
    RULES.iter().find(|rule| (rule.matches)(&subject))
}

pub fn rule_by_id(id: u32) -> Option<&'static Rule> {
    RULES.iter().find(|rule| rule.id == id)
}

// ---------------------------------------------------------------------------------------------
// Scanning helpers over the normalized bytes (all patterns are ASCII, so byte scanning of
// UTF-8 text is exact).

const QUOTES: &[u8] = b"'\"`";

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn skip(s: &[u8], mut i: usize, set: &[u8]) -> usize {
    while i < s.len() && set.contains(&s[i]) {
        i += 1;
    }
    i
}

fn skip_spaces(s: &[u8], i: usize) -> usize {
    skip(s, i, b" ")
}

fn skip_while(s: &[u8], mut i: usize, keep: impl Fn(u8) -> bool) -> usize {
    while i < s.len() && keep(s[i]) {
        i += 1;
    }
    i
}

fn at(s: &[u8], i: usize, pattern: &[u8]) -> bool {
    s.get(i..).is_some_and(|rest| rest.starts_with(pattern))
}

/// `word` at `i` with no word character on either side.
fn word_at(s: &[u8], i: usize, word: &[u8]) -> bool {
    at(s, i, word)
        && (i == 0 || !is_word(s[i - 1]))
        && s.get(i + word.len()).is_none_or(|&b| !is_word(b))
}

fn positions<'a>(s: &'a [u8], pattern: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    s.windows(pattern.len())
        .enumerate()
        .filter(move |(_, window)| *window == pattern)
        .map(|(i, _)| i)
}

fn quote_positions(s: &[u8]) -> impl Iterator<Item = usize> + '_ {
    s.iter()
        .enumerate()
        .filter(|(_, b)| QUOTES.contains(b))
        .map(|(i, _)| i)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OperandKind {
    Number,
    Quoted,
    Identifier,
}

struct Operand<'a> {
    kind: OperandKind,
    text: &'a [u8],
}

/// A SQL literal or identifier at `i`, and the index after it. An unterminated quoted string
/// runs to the end: injected input often leaves the closing quote to the application's query.
fn operand(s: &[u8], i: usize) -> Option<(Operand<'_>, usize)> {
    let first = *s.get(i)?;
    if first.is_ascii_digit() {
        let end = skip_while(s, i, |b| b.is_ascii_digit() || b == b'.');
        return Some((
            Operand {
                kind: OperandKind::Number,
                text: &s[i..end],
            },
            end,
        ));
    }
    if QUOTES.contains(&first) {
        let body = &s[i + 1..];
        return Some(match body.iter().position(|&b| b == first) {
            Some(length) => (
                Operand {
                    kind: OperandKind::Quoted,
                    text: &body[..length],
                },
                i + length + 2,
            ),
            None => (
                Operand {
                    kind: OperandKind::Quoted,
                    text: body,
                },
                s.len(),
            ),
        });
    }
    if first.is_ascii_alphabetic() || first == b'_' {
        let end = skip_while(s, i, is_word);
        return Some((
            Operand {
                kind: OperandKind::Identifier,
                text: &s[i..end],
            },
            end,
        ));
    }
    None
}

/// A boolean connective at `i` (`or`, `and`, `xor`, `||`, `&&`), and the index after it.
fn logical_operator(s: &[u8], i: usize) -> Option<usize> {
    for symbol in [&b"||"[..], b"&&"] {
        if at(s, i, symbol) {
            return Some(i + symbol.len());
        }
    }
    [&b"or"[..], b"and", b"xor"]
        .into_iter()
        .find(|word| at(s, i, word) && s.get(i + word.len()).is_none_or(|&b| !is_word(b)))
        .map(|word| i + word.len())
}

/// A comparison operator after optional spaces at `i`, and the index after it.
fn comparison(s: &[u8], i: usize, operators: &[&[u8]]) -> Option<usize> {
    let i = skip_spaces(s, i);
    operators.iter().find_map(|op| {
        let is_word_op = op.iter().all(u8::is_ascii_alphabetic);
        let found = if is_word_op {
            word_at(s, i, op)
        } else {
            at(s, i, op)
        };
        found.then_some(i + op.len())
    })
}

const ALL_COMPARISONS: &[&[u8]] = &[
    b"==", b"!=", b"<>", b"<=", b">=", b"=", b"<", b">", b"like", b"is",
];

/// `literal <op> literal`, or `x <op> x` for identical identifiers, starting at `i`.
fn literal_comparison(s: &[u8], i: usize, operators: &[&[u8]]) -> bool {
    let Some((left, i)) = operand(s, i) else {
        return false;
    };
    let Some(i) = comparison(s, i, operators) else {
        return false;
    };
    let Some((right, _)) = operand(s, skip_spaces(s, i)) else {
        return false;
    };
    match (left.kind, right.kind) {
        (OperandKind::Identifier, OperandKind::Identifier) => left.text == right.text,
        // "'a' or 'b' = the same" is prose, not a predicate.
        (OperandKind::Identifier, _) | (_, OperandKind::Identifier) => false,
        _ => true,
    }
}

/// At `i`, after optional spaces: the end of input or a statement terminator/comment.
fn statement_ends(s: &[u8], i: usize) -> bool {
    let i = skip_spaces(s, i);
    i == s.len() || at(s, i, b"--") || at(s, i, b"#") || at(s, i, b";") || at(s, i, b"/*")
}

// ---------------------------------------------------------------------------------------------
// SQL injection

/// `' OR 1=1`, `' or 'a'='a`, `") OR ("x"="x`, `' or true--`: a quote closing a string, then a
/// boolean operator, then a predicate that is constant or always true.
fn sqli_quote_tautology(x: &Subject) -> bool {
    let s = x.normalized.as_bytes();
    quote_positions(s).any(|quote| {
        let i = skip(s, quote + 1, b" )");
        let Some(i) = logical_operator(s, i) else {
            return false;
        };
        let i = skip(s, i, b" (");
        literal_comparison(s, i, ALL_COMPARISONS) || truthy_literal_then_end(s, i)
    })
}

fn truthy_literal_then_end(s: &[u8], i: usize) -> bool {
    let Some((literal, end)) = operand(s, i) else {
        return false;
    };
    let truthy = match literal.kind {
        OperandKind::Number => literal.text.iter().any(|&b| (b'1'..=b'9').contains(&b)),
        OperandKind::Identifier => literal.text == b"true",
        OperandKind::Quoted => false,
    };
    truthy && statement_ends(s, end)
}

/// `id=1 OR 1=1`: a numeric-context tautology comparing a value with itself.
fn sqli_unquoted_tautology(x: &Subject) -> bool {
    let s = x.normalized.as_bytes();
    (0..s.len()).any(|i| {
        let Some(after) = [&b"or"[..], b"and"]
            .into_iter()
            .find(|w| word_at(s, i, w))
            .map(|w| i + w.len())
        else {
            return false;
        };
        let i = skip(s, after, b" (");
        let Some((left, i)) = operand(s, i) else {
            return false;
        };
        let Some(i) = comparison(s, i, &[b"==", b"=", b"like"]) else {
            return false;
        };
        let Some((right, _)) = operand(s, skip_spaces(s, i)) else {
            return false;
        };
        left.kind != OperandKind::Quoted && left.kind == right.kind && left.text == right.text
    })
}

/// `UNION SELECT`, `UNION ALL SELECT`, `union(select`.
fn sqli_union_select(x: &Subject) -> bool {
    let s = x.normalized.as_bytes();
    positions(s, b"union").any(|i| {
        if !word_at(s, i, b"union") {
            return false;
        }
        let mut j = skip(s, i + 5, b" (");
        for modifier in [&b"all"[..], b"distinct"] {
            if word_at(s, j, modifier) {
                j = skip(s, j + modifier.len(), b" (");
            }
        }
        word_at(s, j, b"select")
    })
}

/// `; DROP TABLE`, `; delete from`, `;exec xp_cmdshell`: a second, destructive statement.
fn sqli_stacked_statement(x: &Subject) -> bool {
    const STATEMENTS: &[(&[u8], &[&[u8]])] = &[
        (
            b"drop",
            &[
                b"table",
                b"database",
                b"schema",
                b"view",
                b"user",
                b"index",
                b"procedure",
                b"function",
            ],
        ),
        (b"truncate", &[b"table"]),
        (b"alter", &[b"table", b"user", b"database"]),
        (b"create", &[b"table", b"user", b"database", b"procedure"]),
        (b"delete", &[b"from"]),
        (b"insert", &[b"into"]),
        (b"grant", &[b"all"]),
    ];
    let s = x.normalized.as_bytes();
    positions(s, b";").any(|semicolon| {
        let i = skip_spaces(s, semicolon + 1);
        if (word_at(s, i, b"exec") || word_at(s, i, b"execute")) && {
            let j = skip_spaces(s, skip_while(s, i, |b| b.is_ascii_alphabetic()));
            at(s, j, b"xp_") || at(s, j, b"sp_") || at(s, j, b"master.")
        } {
            return true;
        }
        STATEMENTS.iter().any(|(verb, objects)| {
            word_at(s, i, verb) && {
                let j = skip_spaces(s, i + verb.len());
                objects.iter().any(|object| word_at(s, j, object))
            }
        })
    })
}

/// `admin'--`, `admin' #`, `') /*`: a quote closing a string, then a comment that discards the
/// rest of the application's query.
fn sqli_comment_after_quote(x: &Subject) -> bool {
    let s = x.normalized.as_bytes();
    quote_positions(s).any(|quote| {
        let i = skip(s, quote + 1, b" );");
        // Normalization removed every terminated block comment, so this one is left open.
        if at(s, i, b"/*") {
            return true;
        }
        let comment_end = if at(s, i, b"--") {
            i + 2
        } else if at(s, i, b"#") {
            i + 1
        } else {
            return false;
        };
        let directly_after_quote = i == quote + 1 && s[i] == b'-';
        directly_after_quote || skip_spaces(s, comment_end) == s.len()
    })
}

/// `SLEEP(5)`, `pg_sleep(`, `BENCHMARK(1000000,`, `WAITFOR DELAY '`: time-based blind probes.
fn sqli_time_delay(x: &Subject) -> bool {
    let s = x.normalized.as_bytes();
    let call_with_number = |i: usize, name: &[u8], then: u8| -> bool {
        if !word_at(s, i, name) {
            return false;
        }
        let j = skip_spaces(s, i + name.len());
        if !at(s, j, b"(") {
            return false;
        }
        let j = skip_spaces(s, j + 1);
        let end = skip_while(s, j, |b| b.is_ascii_digit() || b == b'.');
        end > j && at(s, skip_spaces(s, end), &[then])
    };
    (0..s.len()).any(|i| {
        call_with_number(i, b"sleep", b')')
            || (word_at(s, i, b"pg_sleep") && at(s, skip_spaces(s, i + 8), b"("))
            || call_with_number(i, b"benchmark", b',')
            || (word_at(s, i, b"waitfor") && {
                let j = skip_spaces(s, i + 7);
                word_at(s, j, b"delay") || word_at(s, j, b"time")
            })
    })
}

// ---------------------------------------------------------------------------------------------
// Cross-site scripting

/// `<name` followed by something that ends a tag name (so `<scripts` or `Box<ScriptRunner>`
/// style generics do not count).
fn tag_at(s: &[u8], i: usize, name: &[u8]) -> bool {
    let Some(after_bracket) = s.get(i + 1..) else {
        return false;
    };
    let after_bracket = after_bracket.strip_prefix(b"/").unwrap_or(after_bracket);
    after_bracket.starts_with(name)
        && after_bracket
            .get(name.len())
            .is_none_or(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

fn xss_script_tag(x: &Subject) -> bool {
    let s = x.normalized.as_bytes();
    positions(s, b"<").any(|i| tag_at(s, i, b"script"))
}

/// `javascript:` / `vbscript:` URIs. Browsers ignore tabs and newlines inside a URL scheme,
/// so those may be interleaved; the colon must be followed directly by code (not a space),
/// which keeps "JavaScript: how do closures work?" legal.
fn xss_script_uri(x: &Subject) -> bool {
    let s = x.original.as_bytes();
    [&b"javascript:"[..], b"vbscript:"]
        .into_iter()
        .any(|scheme| (0..s.len()).any(|start| scheme_at(s, start, scheme)))
}

fn scheme_at(s: &[u8], start: usize, scheme: &[u8]) -> bool {
    const IGNORED_IN_SCHEME: &[u8] = b"\t\n\r\0";
    let mut i = start;
    for (k, &expected) in scheme.iter().enumerate() {
        if k > 0 {
            i = skip(s, i, IGNORED_IN_SCHEME);
        }
        match s.get(i) {
            Some(b) if b.to_ascii_lowercase() == expected => i += 1,
            _ => return false,
        }
    }
    s.get(i).is_some_and(|b| !b.is_ascii_whitespace())
}

/// `<img src=x onerror=...>`, `<svg/onload=...>`, `<body onpageshow=...>`: an event-handler
/// attribute inside a tag. Only real DOM handler names count, so `<b> online=` is prose.
fn xss_event_handler(x: &Subject) -> bool {
    let s = x.normalized.as_bytes();
    positions(s, b"<").any(|open| {
        if !s.get(open + 1).is_some_and(u8::is_ascii_alphabetic) {
            return false;
        }
        let mut i = skip_while(s, open + 1, |b| {
            b.is_ascii_alphanumeric() || b == b'-' || b == b':'
        });
        let mut in_quote: Option<u8> = None;
        while i < s.len() {
            let b = s[i];
            match in_quote {
                Some(quote) if b == quote => in_quote = None,
                Some(_) => {}
                None if b == b'>' || b == b'<' => return false,
                None if b == b'"' || b == b'\'' => in_quote = Some(b),
                None if b == b'o'
                    && matches!(s[i - 1], b' ' | b'/' | b'"' | b'\'')
                    && at(s, i, b"on") =>
                {
                    let name_end = skip_while(s, i, |b| b.is_ascii_lowercase());
                    if EVENT_HANDLERS.contains(&&s[i..name_end])
                        && at(s, skip_spaces(s, name_end), b"=")
                    {
                        return true;
                    }
                }
                None => {}
            }
            i += 1;
        }
        false
    })
}

/// Tags that load another document or plugin: `<iframe`, `<frameset`, `<embed`, `<applet`.
/// (`<object` and `<frame` are left out: `List<Object>` and `Option<Frame>` are everyday code.)
fn xss_embedding_tag(x: &Subject) -> bool {
    let s = x.normalized.as_bytes();
    positions(s, b"<").any(|i| {
        [&b"iframe"[..], b"frameset", b"embed", b"applet"]
            .into_iter()
            .any(|name| tag_at(s, i, name))
    })
}

/// DOM event-handler attribute names (HTML GlobalEventHandlers, WindowEventHandlers,
/// DocumentAndElementEventHandlers, SVG animation events and a few legacy ones).
static EVENT_HANDLERS: &[&[u8]] = &[
    b"onabort",
    b"onafterprint",
    b"onafterscriptexecute",
    b"onanimationcancel",
    b"onanimationend",
    b"onanimationiteration",
    b"onanimationstart",
    b"onauxclick",
    b"onbeforecopy",
    b"onbeforecut",
    b"onbeforeinput",
    b"onbeforematch",
    b"onbeforepaste",
    b"onbeforeprint",
    b"onbeforescriptexecute",
    b"onbeforetoggle",
    b"onbeforeunload",
    b"onbegin",
    b"onblur",
    b"oncancel",
    b"oncanplay",
    b"oncanplaythrough",
    b"onchange",
    b"onclick",
    b"onclose",
    b"oncommand",
    b"oncontentvisibilityautostatechange",
    b"oncontextlost",
    b"oncontextmenu",
    b"oncontextrestored",
    b"oncopy",
    b"oncuechange",
    b"oncut",
    b"ondblclick",
    b"ondrag",
    b"ondragend",
    b"ondragenter",
    b"ondragexit",
    b"ondragleave",
    b"ondragover",
    b"ondragstart",
    b"ondrop",
    b"ondurationchange",
    b"onemptied",
    b"onend",
    b"onended",
    b"onerror",
    b"onfocus",
    b"onfocusin",
    b"onfocusout",
    b"onformdata",
    b"onfullscreenchange",
    b"onfullscreenerror",
    b"ongotpointercapture",
    b"onhashchange",
    b"oninput",
    b"oninvalid",
    b"onkeydown",
    b"onkeypress",
    b"onkeyup",
    b"onlanguagechange",
    b"onload",
    b"onloadeddata",
    b"onloadedmetadata",
    b"onloadend",
    b"onloadstart",
    b"onlostpointercapture",
    b"onmessage",
    b"onmessageerror",
    b"onmousedown",
    b"onmouseenter",
    b"onmouseleave",
    b"onmousemove",
    b"onmouseout",
    b"onmouseover",
    b"onmouseup",
    b"onmousewheel",
    b"onoffline",
    b"ononline",
    b"onpagehide",
    b"onpagereveal",
    b"onpageshow",
    b"onpageswap",
    b"onpaste",
    b"onpause",
    b"onplay",
    b"onplaying",
    b"onpointercancel",
    b"onpointerdown",
    b"onpointerenter",
    b"onpointerleave",
    b"onpointermove",
    b"onpointerout",
    b"onpointerover",
    b"onpointerrawupdate",
    b"onpointerup",
    b"onpopstate",
    b"onprogress",
    b"onratechange",
    b"onrepeat",
    b"onreset",
    b"onresize",
    b"onscroll",
    b"onscrollend",
    b"onsearch",
    b"onsecuritypolicyviolation",
    b"onseeked",
    b"onseeking",
    b"onselect",
    b"onselectionchange",
    b"onselectstart",
    b"onshow",
    b"onslotchange",
    b"onstalled",
    b"onstart",
    b"onstorage",
    b"onsubmit",
    b"onsuspend",
    b"ontimeupdate",
    b"ontoggle",
    b"ontouchcancel",
    b"ontouchend",
    b"ontouchmove",
    b"ontouchstart",
    b"ontransitioncancel",
    b"ontransitionend",
    b"ontransitionrun",
    b"ontransitionstart",
    b"onunhandledrejection",
    b"onunload",
    b"onvolumechange",
    b"onwaiting",
    b"onwebkitanimationend",
    b"onwebkitanimationiteration",
    b"onwebkitanimationstart",
    b"onwebkittransitionend",
    b"onwheel",
];

// ---------------------------------------------------------------------------------------------
// Path traversal

/// `../` and `..\` (and a trailing `/..` in a URL path). In JSON strings only a single token
/// counts: a path a component might open has no spaces, while a chat message quoting
/// `import x from '../utils'` is prose.
fn traversal_dot_dot(x: &Subject) -> bool {
    let s = x.normalized.as_bytes();
    if x.context == Context::JsonString && x.normalized.trim().contains(' ') {
        return false;
    }
    let climbs = at_any(s, &[b"../", b"..\\"]);
    let trailing = x.context == Context::UrlPath
        && (s == b".." || s.ends_with(b"/..") || s.ends_with(b"\\.."));
    climbs || trailing
}

fn at_any(s: &[u8], patterns: &[&[u8]]) -> bool {
    patterns.iter().any(|p| positions(s, p).next().is_some())
}

/// Dots hidden by (over-long UTF-8 or double) percent-encoding that survived decoding.
fn traversal_encoded_dots(x: &Subject) -> bool {
    at_any(
        x.normalized.as_bytes(),
        &[
            b"%2e%2e",
            b".%2e",
            b"%2e.",
            b"%c0%ae",
            b"%e0%80%ae",
            b"%c0%af",
            b"%c1%9c",
        ],
    )
}

/// Well-known targets of traversal attacks, with `\` and repeated or `./` separators folded.
fn traversal_sensitive_file(x: &Subject) -> bool {
    let folded = fold_separators(x.normalized);
    at_any(
        folded.as_bytes(),
        &[
            b"/etc/passwd",
            b"/etc/shadow",
            b"/proc/self/",
            b"win.ini",
            b"boot.ini",
            b"/.ssh/id_",
        ],
    )
}

fn fold_separators(text: &str) -> String {
    let mut folded = text.replace('\\', "/");
    loop {
        let next = folded.replace("//", "/").replace("/./", "/");
        if next == folded {
            return folded;
        }
        folded = next;
    }
}

/// A NUL byte truncates paths in C-backed file APIs (`file.txt%00.png`).
fn traversal_null_byte(x: &Subject) -> bool {
    x.original.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_for(text: &str, context: Context) -> Option<u32> {
        first_match(text, context).map(|rule| rule.id)
    }

    fn assert_caught(cases: &[(&str, u32)], context: Context) {
        for (text, id) in cases {
            assert_eq!(
                rule_for(text, context),
                Some(*id),
                "{text:?} should match rule {id}"
            );
        }
    }

    fn assert_clean(cases: &[&str], context: Context) {
        for text in cases {
            assert_eq!(rule_for(text, context), None, "{text:?} is benign");
        }
    }

    #[test]
    fn rule_ids_are_unique_and_names_stable() {
        let mut ids: Vec<u32> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len());
        assert_eq!(rule_by_id(1003).unwrap().name, "sqli_union_select");
        assert_eq!(
            rule_by_id(2001).unwrap().category,
            Category::CrossSiteScripting
        );
        assert_eq!(Category::PathTraversal.as_str(), "path_traversal");
    }

    #[test]
    fn catches_sql_injection() {
        assert_caught(
            &[
                ("' OR 1=1 --", 1001),
                ("admin' or '1'='1", 1001),
                ("' or 'a'='a", 1001),
                ("x' OR 'x'='x'", 1001),
                ("\") OR (\"x\"=\"x", 1001),
                ("'or''='", 1001),
                ("' || 1=1", 1001),
                ("1' AND 1=2", 1001),
                ("' or true--", 1001),
                ("' OR 1#", 1001),
                ("' or x=x", 1001),
                ("' OR/**/1=1", 1001),
                ("'\tOR\n1 = 1", 1001),
                ("1 OR 1=1", 1002),
                ("10 and a=a", 1002),
                ("1 UNION SELECT username, password FROM users", 1003),
                ("1 union all select null", 1003),
                ("1 UNION/**/SELECT 1", 1003),
                ("1 /*!50000UNION*/ /*!50000SELECT*/ 1", 1003),
                ("x union(select 1)", 1003),
                ("x'; DROP TABLE users", 1004),
                ("1;drop   table users", 1004),
                ("1; delete from accounts", 1004),
                ("1; EXEC xp_cmdshell 'dir'", 1004),
                ("admin'--", 1005),
                ("admin' --", 1005),
                ("admin')#", 1005),
                ("admin'/*", 1005),
                ("admin'-- anything after", 1005),
                ("1 and sleep(5)", 1006),
                ("1 AND SLEEP ( 10 )", 1006),
                ("1;select pg_sleep(5)", 1006),
                ("1 and benchmark(5000000,md5(1))", 1006),
                ("1; waitfor delay '0:0:5'", 1006),
            ],
            Context::JsonString,
        );
    }

    #[test]
    fn leaves_prose_about_sql_words_alone() {
        assert_clean(
            &[
                "Which union members selected the new representative?",
                "I'm not sure, or 1 of them",
                "a -- b",
                "It's fine -- really",
                "Do you prefer 'tea' or 'coffee'?",
                "Answer 'a' or 'b' = the same thing",
                "Select the union option, or both.",
                "We need to drop the table from the agenda; delete nothing.",
                "How much sleep (8 hours?) do adults need?",
                "I fell asleep(ish) at 10",
                "Let's meet at 5; drop me a line",
                "Use C# or F#",
                "x = 1 or y = 2",
                "The 'benchmark' was fine",
                "Order by date, or 1=2 days later?",
            ],
            Context::JsonString,
        );
    }

    #[test]
    fn catches_cross_site_scripting() {
        assert_caught(
            &[
                ("<script>alert(1)</script>", 2001),
                ("<SCRIPT SRC=//evil.example/x.js>", 2001),
                ("</script><script>", 2001),
                ("<script", 2001),
                ("javascript:alert(1)", 2002),
                ("JaVaScRiPt:alert(1)", 2002),
                ("java\tscript:alert(1)", 2002),
                ("<a href=\"jav&#x09;ascript:\">vbscript:msgbox(1)", 2002),
                ("<img src=x onerror=alert(1)>", 2003),
                ("<IMG SRC=x ONERROR = alert(1)>", 2003),
                ("<svg/onload=alert(1)>", 2003),
                ("<body onload='x()'>", 2003),
                ("<img alt=\">\" src=x onerror=alert(1)>", 2003),
                ("<div\nonmouseover=\"x()\">", 2003),
                ("<iframe src=//evil.example>", 2004),
                ("<IFRAME>", 2004),
                ("<embed src=x.swf>", 2004),
            ],
            Context::JsonString,
        );
    }

    #[test]
    fn leaves_prose_and_code_about_html_alone() {
        assert_clean(
            &[
                "what does <T> mean in Rust generics",
                "Vec<Option<Frame>> and List<Object>",
                "if a<b then online=true",
                "JavaScript: how do closures work?",
                "I love JavaScript:\nit is fun",
                "Write a script that prints the onerror count",
                "Use <b>bold</b> and <i>italics</i>",
                "x < y and y > z",
                "The descriptions are at onerror=1 without a tag",
                "Box<ScriptRunner>",
                "iframes are rendered as <iframes-list>",
            ],
            Context::JsonString,
        );
    }

    #[test]
    fn catches_path_traversal() {
        assert_caught(
            &[
                ("/v1/../../etc/passwd", 3001),
                ("/a/..", 3001),
                ("..", 3001),
            ],
            Context::UrlPath,
        );
        assert_caught(
            &[
                ("../../etc/passwd", 3001),
                ("..\\..\\windows\\win.ini", 3001),
                ("%2e%2e/secret", 3002),
                (".%2e/secret", 3002),
                ("%c0%ae%c0%ae/", 3002),
                ("/etc/passwd", 3003),
                ("/ETC//./passwd", 3003),
                ("c:\\Windows\\win.ini", 3003),
                ("/proc/self/environ", 3003),
                ("report.pdf\0.png", 3004),
            ],
            Context::JsonString,
        );
    }

    #[test]
    fn leaves_ordinary_paths_and_prose_alone() {
        assert_clean(
            &["/v1/chat/completions", "/healthz", "/docs/a..b", "/x/...y"],
            Context::UrlPath,
        );
        assert_clean(
            &[
                "Wait... what?",
                "import x from '../utils' is a relative import",
                "docs/guide.md",
                "The passwd command changes passwords",
                "3.14 is pi",
            ],
            Context::JsonString,
        );
    }
}
