//! Rule targets: `ARGS`, `REQUEST_HEADERS:User-Agent`, `&TX:x`, `!ARGS:/^json\./`, joined by `|`.

use regex::bytes::{Regex, RegexBuilder};

use crate::error::ErrorKind;

macro_rules! variables {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, collection = $coll:literal;)*) => {
        /// A SecLang variable. Collections hold named values and accept a `:key` or
        /// `:/regex/` selector; the others hold at most one value.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Var { $($(#[$doc])* $variant,)* }

        impl Var {
            /// The variable named `name` in any ASCII case (`args`, `Request_Headers`);
            /// `None` for a name this engine does not know.
            pub fn parse(name: &str) -> Option<Var> {
                let upper = name.to_ascii_uppercase();
                match upper.as_str() {
                    $($name => Some(Var::$variant),)*
                    _ => None,
                }
            }
            /// The variable's SecLang name, upper case (`REQUEST_HEADERS`), as logs and
            /// `MATCHED_VAR_NAME` spell it.
            pub fn name(self) -> &'static str {
                match self { $(Var::$variant => $name,)* }
            }
            /// Whether the variable is a collection: it takes a `:key` or `:/regex/`
            /// selector and its values have names.
            pub fn is_collection(self) -> bool {
                match self { $(Var::$variant => $coll,)* }
            }
        }
    };
}

variables! {
    /// `ARGS`: all arguments: those of the query string (`ARGS_GET`), then those of the body
    /// (`ARGS_POST`), names and values URL-decoded.
    Args = "ARGS", collection = true;
    /// `ARGS_GET`: the query string's arguments, split on `&` and `=` with names and values
    /// URL-decoded (`+` is a space).
    ArgsGet = "ARGS_GET", collection = true;
    /// `ARGS_POST`: the body's arguments as the body processor gives them: form fields
    /// (URL-encoded or multipart, files excepted), or the flattened JSON document
    /// (`json.messages.0.content`). At most `SecArgumentsLimit` of them.
    ArgsPost = "ARGS_POST", collection = true;
    /// `ARGS_NAMES`: the names of all arguments (`ARGS_GET_NAMES`, then `ARGS_POST_NAMES`);
    /// each value is its own name.
    ArgsNames = "ARGS_NAMES", collection = true;
    /// `ARGS_GET_NAMES`: the names of the query string's arguments.
    ArgsGetNames = "ARGS_GET_NAMES", collection = true;
    /// `ARGS_POST_NAMES`: the names of the body's arguments.
    ArgsPostNames = "ARGS_POST_NAMES", collection = true;
    /// `ARGS_COMBINED_SIZE`: the total length in bytes of every argument's name and value
    /// (query string and body, after URL decoding).
    ArgsCombinedSize = "ARGS_COMBINED_SIZE", collection = false;
    /// `REQUEST_URI`: the request target percent-decoded, without the fragment and, for an
    /// absolute-form target, without its scheme and authority; the query string is kept.
    RequestUri = "REQUEST_URI", collection = false;
    /// `REQUEST_URI_RAW`: the request target exactly as sent (`Request::uri`).
    RequestUriRaw = "REQUEST_URI_RAW", collection = false;
    /// `REQUEST_FILENAME`: the path of [`Var::RequestUri`]: percent-decoded, without the
    /// query string.
    RequestFilename = "REQUEST_FILENAME", collection = false;
    /// `REQUEST_BASENAME`: the last segment of [`Var::RequestFilename`], after its last `/`
    /// or `\`.
    RequestBasename = "REQUEST_BASENAME", collection = false;
    /// `REQUEST_LINE`: `METHOD TARGET PROTOCOL` with the target as sent.
    RequestLine = "REQUEST_LINE", collection = false;
    /// `REQUEST_METHOD`: the request method as sent (`GET`, `POST`, ...).
    RequestMethod = "REQUEST_METHOD", collection = false;
    /// `REQUEST_PROTOCOL`: the protocol as given (`HTTP/1.1`, `HTTP/2.0`, ...).
    RequestProtocol = "REQUEST_PROTOCOL", collection = false;
    /// `QUERY_STRING`: the part of the target after `?` and before `#`, not decoded.
    QueryString = "QUERY_STRING", collection = false;
    /// `REQUEST_HEADERS`: the request headers' values, named by header; a `:name` selector
    /// ignores case, and every header of a repeated name is a value.
    RequestHeaders = "REQUEST_HEADERS", collection = true;
    /// `REQUEST_HEADERS_NAMES`: the request headers' names, as sent.
    RequestHeadersNames = "REQUEST_HEADERS_NAMES", collection = true;
    /// `REQUEST_COOKIES`: the cookies of every `Cookie` header, split on `;` and the first
    /// `=`; values are not decoded.
    RequestCookies = "REQUEST_COOKIES", collection = true;
    /// `REQUEST_COOKIES_NAMES`: the cookies' names.
    RequestCookiesNames = "REQUEST_COOKIES_NAMES", collection = true;
    /// `REQUEST_BODY`: the raw request body. Absent while request body access is off
    /// (`SecRequestBodyAccess Off`, `ctl:requestBodyAccess=Off`); without access the body is
    /// not processed at all.
    RequestBody = "REQUEST_BODY", collection = false;
    /// `REQUEST_BODY_LENGTH`: the length of the processed request body in bytes (0 before
    /// phase 2 and without body access).
    RequestBodyLength = "REQUEST_BODY_LENGTH", collection = false;
    /// `REQBODY_ERROR`: `1` when the body processor failed (malformed JSON, XML or multipart,
    /// more arguments than `SecArgumentsLimit`), else `0`.
    ReqbodyError = "REQBODY_ERROR", collection = false;
    /// `REQBODY_ERROR_MSG`: why the body processor failed; absent when it did not.
    ReqbodyErrorMsg = "REQBODY_ERROR_MSG", collection = false;
    /// `REQBODY_PROCESSOR`: the body processor's name (`URLENCODED`, `MULTIPART`, `JSON`,
    /// `XML`), known from phase 1 on: the one a `ctl` chose, or the one the `Content-Type`
    /// calls for. Empty (not absent) when there is none.
    ReqbodyProcessor = "REQBODY_PROCESSOR", collection = false;
    /// `FILES`: the original file names of a multipart body's file parts, named by their form
    /// field.
    Files = "FILES", collection = true;
    /// `FILES_NAMES`: the form field names of a multipart body's file parts.
    FilesNames = "FILES_NAMES", collection = true;
    /// `FILES_SIZES`: the sizes in bytes of a multipart body's files, named by their form
    /// field.
    FilesSizes = "FILES_SIZES", collection = true;
    /// `FILES_COMBINED_SIZE`: the total size in bytes of a multipart body's files.
    FilesCombinedSize = "FILES_COMBINED_SIZE", collection = false;
    /// `MULTIPART_PART_HEADERS`: every header line of every multipart part, named by the
    /// part's form field.
    MultipartPartHeaders = "MULTIPART_PART_HEADERS", collection = true;
    /// `MULTIPART_STRICT_ERROR`: `1` when any of the `MULTIPART_*` anomaly flags is set or
    /// the multipart body could not be parsed at all, else `0`. CRS refuses such a body.
    MultipartStrictError = "MULTIPART_STRICT_ERROR", collection = false;
    /// `MULTIPART_UNMATCHED_BOUNDARY`: `1` when the multipart body has no closing delimiter
    /// (`--boundary--`), else `0`.
    MultipartUnmatchedBoundary = "MULTIPART_UNMATCHED_BOUNDARY", collection = false;
    /// `MULTIPART_BOUNDARY_QUOTED`: `1` when the `Content-Type` boundary parameter was
    /// quoted, else `0`.
    MultipartBoundaryQuoted = "MULTIPART_BOUNDARY_QUOTED", collection = false;
    /// `MULTIPART_BOUNDARY_WHITESPACE`: `1` when the `Content-Type` boundary parameter has
    /// whitespace around it, else `0`.
    MultipartBoundaryWhitespace = "MULTIPART_BOUNDARY_WHITESPACE", collection = false;
    /// `MULTIPART_DATA_BEFORE`: `1` when something other than whitespace precedes the first
    /// delimiter, else `0`.
    MultipartDataBefore = "MULTIPART_DATA_BEFORE", collection = false;
    /// `MULTIPART_DATA_AFTER`: `1` when something other than whitespace follows the closing
    /// delimiter, else `0`.
    MultipartDataAfter = "MULTIPART_DATA_AFTER", collection = false;
    /// `MULTIPART_HEADER_FOLDING`: `1` when a part header is continued on a line starting
    /// with a space or tab, else `0`.
    MultipartHeaderFolding = "MULTIPART_HEADER_FOLDING", collection = false;
    /// `MULTIPART_LF_LINE`: `1` when a delimiter or part header line ends with a bare LF
    /// instead of CRLF, else `0`.
    MultipartLfLine = "MULTIPART_LF_LINE", collection = false;
    /// `MULTIPART_MISSING_SEMICOLON`: `1` when a `Content-Disposition` parameter is not
    /// preceded by `;`, else `0`.
    MultipartMissingSemicolon = "MULTIPART_MISSING_SEMICOLON", collection = false;
    /// `MULTIPART_INVALID_QUOTING`: `1` when a `Content-Disposition` value has an
    /// unterminated quote or a quote inside an unquoted value, else `0`.
    MultipartInvalidQuoting = "MULTIPART_INVALID_QUOTING", collection = false;
    /// `MULTIPART_INVALID_PART`: `1` when a part has a header line without `:`, a
    /// `Content-Disposition` that is not `form-data`, or no field name, else `0`.
    MultipartInvalidPart = "MULTIPART_INVALID_PART", collection = false;
    /// `MULTIPART_INVALID_HEADER_FOLDING`: always `0`: this engine reports folding only
    /// through [`Var::MultipartHeaderFolding`].
    MultipartInvalidHeaderFolding = "MULTIPART_INVALID_HEADER_FOLDING", collection = false;
    /// `MULTIPART_FILE_LIMIT_EXCEEDED`: always `0`: this engine sets no limit on the number
    /// of files.
    MultipartFileLimitExceeded = "MULTIPART_FILE_LIMIT_EXCEEDED", collection = false;
    /// `MULTIPART_CRLF_LF_LINES`: meant to be `1` when CRLF and bare-LF line endings are
    /// mixed; the multipart parser does not set it yet, so it is always `0` (mixed endings
    /// set [`Var::MultipartLfLine`]).
    MultipartCrlfLfLines = "MULTIPART_CRLF_LF_LINES", collection = false;
    /// `XML`: with the XML body processor and no body error: member `/*` is the document's
    /// text content and each member `//@*` one attribute value. Other XPath selectors are
    /// refused at load time.
    Xml = "XML", collection = true;
    /// `TX`: the transaction's variables, set by `setvar:tx.*`, names compared without regard
    /// to ASCII case; `capture` puts groups in `TX:0` .. `TX:9`. [`crate::Outcome::tx`]
    /// reports them at the end.
    Tx = "TX", collection = true;
    /// `IP`: ModSecurity's persistent per-client collection; here it lives for one
    /// transaction only (`initcol` is accepted and does nothing).
    Ip = "IP", collection = true;
    /// `GLOBAL`: ModSecurity's persistent global collection; here it lives for one
    /// transaction only.
    Global = "GLOBAL", collection = true;
    /// `SESSION`: ModSecurity's persistent per-session collection; here it lives for one
    /// transaction only.
    Session = "SESSION", collection = true;
    /// `USER`: ModSecurity's persistent per-user collection; here it lives for one
    /// transaction only.
    User = "USER", collection = true;
    /// `RESOURCE`: ModSecurity's persistent per-resource collection; here it lives for one
    /// transaction only.
    Resource = "RESOURCE", collection = true;
    /// `GEO`: what the last matching `@geoLookup` found (`COUNTRY_CODE`, `COUNTRY_NAME`,
    /// `CITY`, ...; see [`crate::lookup`]).
    Geo = "GEO", collection = true;
    /// `ENV`: environment variables. This engine does not read the process environment (and
    /// `setenv` does nothing), so only a `setvar:env.*` fills it.
    Env = "ENV", collection = true;
    /// `MATCHED_VAR`: the last value a rule's operator matched, in the current rule or an
    /// earlier one, after transformation.
    MatchedVar = "MATCHED_VAR", collection = false;
    /// `MATCHED_VAR_NAME`: the full name of [`Var::MatchedVar`] (`ARGS:q`, `REQUEST_URI`).
    MatchedVarName = "MATCHED_VAR_NAME", collection = false;
    /// `MATCHED_VARS`: the values the current rule's most recent matching link matched, named
    /// by their full names; emptied when a new rule starts.
    MatchedVars = "MATCHED_VARS", collection = true;
    /// `MATCHED_VARS_NAMES`: the full names of [`Var::MatchedVars`]' values.
    MatchedVarsNames = "MATCHED_VARS_NAMES", collection = true;
    /// `UNIQUE_ID`: the transaction's id as the embedder gives it (`Request::unique_id`).
    UniqueId = "UNIQUE_ID", collection = false;
    /// `REMOTE_ADDR`: the client's address as the embedder gives it (`Request::remote_addr`).
    RemoteAddr = "REMOTE_ADDR", collection = false;
    /// `REMOTE_PORT`: the client's port (`Request::remote_port`).
    RemotePort = "REMOTE_PORT", collection = false;
    /// `SERVER_NAME`: the `Host` header up to its first `:` (empty without one).
    ServerName = "SERVER_NAME", collection = false;
    /// `SERVER_PORT`: accepted in rules but never has a value here: the request model carries
    /// no server port.
    ServerPort = "SERVER_PORT", collection = false;
    /// `DURATION`: microseconds since the transaction started.
    Duration = "DURATION", collection = false;
    /// `FULL_REQUEST`: the request line, each header as `\nName: value`, then `\n\n` and
    /// the processed body.
    FullRequest = "FULL_REQUEST", collection = false;
    /// `FULL_REQUEST_LENGTH`: the length in bytes of [`Var::FullRequest`].
    FullRequestLength = "FULL_REQUEST_LENGTH", collection = false;
    /// `RESPONSE_BODY`: the response body; absent before
    /// [`crate::Transaction::process_response`], empty in phase 3 and set for phase 4.
    ResponseBody = "RESPONSE_BODY", collection = false;
    /// `RESPONSE_STATUS`: the response status code, in decimal; absent before the response is
    /// processed.
    ResponseStatus = "RESPONSE_STATUS", collection = false;
    /// `RESPONSE_PROTOCOL`: the response's protocol (`HTTP/1.1`, ...); absent before the
    /// response is processed.
    ResponseProtocol = "RESPONSE_PROTOCOL", collection = false;
    /// `RESPONSE_HEADERS`: the response headers' values, named by header; empty before the
    /// response is processed.
    ResponseHeaders = "RESPONSE_HEADERS", collection = true;
    /// `RESPONSE_HEADERS_NAMES`: the response headers' names; empty before the response is
    /// processed.
    ResponseHeadersNames = "RESPONSE_HEADERS_NAMES", collection = true;
    /// `RESPONSE_CONTENT_TYPE`: the response's `Content-Type` header, empty without one;
    /// absent before the response is processed.
    ResponseContentType = "RESPONSE_CONTENT_TYPE", collection = false;
    /// `RESPONSE_CONTENT_LENGTH`: the response's `Content-Length` header, empty without one;
    /// absent before the response is processed.
    ResponseContentLength = "RESPONSE_CONTENT_LENGTH", collection = false;
}

/// Picks members of a collection: by name (case-insensitive, as in ModSecurity) or by a
/// regular expression over the name.
#[derive(Debug, Clone)]
pub enum Selector {
    /// `VAR:name`: the members with this name, compared without regard to ASCII case
    /// (stored lowercased, surrounding single quotes removed).
    Key(String),
    /// `VAR:/regex/`: the members whose name the regular expression matches anywhere,
    /// case-insensitively.
    Regex(Regex),
}

impl Selector {
    /// Reads the text after `VAR:`: `/.../` is a regular expression, anything else a name.
    /// Only a regular expression that does not compile is an error.
    pub fn parse(text: &str) -> Result<Selector, String> {
        if text.len() >= 2 && text.starts_with('/') && text.ends_with('/') {
            let pattern = &text[1..text.len() - 1];
            // Collection keys are compared case-insensitively everywhere else, so a
            // regex selector is too (`REQUEST_COOKIES:/^session/` catches `SESSIONID`).
            RegexBuilder::new(pattern)
                .case_insensitive(true)
                .build()
                .map(Selector::Regex)
                .map_err(|e| format!("selector regex: {e}"))
        } else {
            // `ARGS:'foo'` is sometimes written with quotes.
            let key = text.trim_matches('\'');
            Ok(Selector::Key(key.to_ascii_lowercase()))
        }
    }

    /// Whether the member named `key` is selected.
    pub fn matches(&self, key: &str) -> bool {
        match self {
            Selector::Key(k) => k.eq_ignore_ascii_case(key),
            Selector::Regex(r) => r.is_match(key.as_bytes()),
        }
    }

    /// For a regular expression that is `^` and a literal of ASCII letters, digits and
    /// `_` (CRS's `TX:/^HEADER_NAME_/`): the literal, which a key starts with, compared
    /// without regard to ASCII case, exactly when the expression matches the key (its
    /// matching is case-insensitive). Not for a literal with `k` or `s`, which the
    /// expression's Unicode case folding also matches with `K` (Kelvin) and `ſ`.
    pub(crate) fn anchored_literal(&self) -> Option<&str> {
        let Selector::Regex(r) = self else {
            return None;
        };
        let literal = r.as_str().strip_prefix('^')?;
        literal
            .bytes()
            .all(|b| {
                (b.is_ascii_alphanumeric() || b == b'_') && !matches!(b, b'k' | b'K' | b's' | b'S')
            })
            .then_some(literal)
    }

    fn same(&self, other: &Selector) -> bool {
        match (self, other) {
            (Selector::Key(a), Selector::Key(b)) => a == b,
            (Selector::Regex(a), Selector::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// One element of a rule's target list.
#[derive(Debug, Clone)]
pub struct Target {
    /// The variable inspected.
    pub var: Var,
    /// Which members of a collection; `None` inspects all of them (or the variable's
    /// single value).
    pub selector: Option<Selector>,
    /// `&VAR`: the number of values instead of the values.
    pub count: bool,
}

/// `!VAR:sel`: removes members from the rule's other targets of the same variable.
#[derive(Debug, Clone)]
pub struct Exclusion {
    /// The variable whose members are removed.
    pub var: Var,
    /// `None` removes the whole variable.
    pub selector: Option<Selector>,
}

impl Exclusion {
    /// Whether this exclusion removes the value of `var` named `key` (`None` for a
    /// variable that is not a collection, which only an exclusion without selector
    /// removes).
    pub fn excludes(&self, var: Var, key: Option<&str>) -> bool {
        self.var == var
            && match (&self.selector, key) {
                (None, _) => true,
                (Some(s), Some(k)) => s.matches(k),
                (Some(_), None) => false,
            }
    }

    /// Whether `other` removes exactly what this one does: the same variable and the
    /// same selector (same name, or same regular expression text).
    pub fn same(&self, other: &Exclusion) -> bool {
        self.var == other.var
            && match (&self.selector, &other.selector) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same(b),
                _ => false,
            }
    }
}

/// A rule's parsed target list: the variables it inspects and the `!` exclusions
/// applied to them.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// The targets inspected, in the order written.
    pub include: Vec<Target>,
    /// The `!VAR` / `!VAR:selector` entries, from the rule itself and from
    /// `SecRuleUpdateTargetById` / `ByTag`.
    pub exclude: Vec<Exclusion>,
}

/// Parses `A|!B:x|&C:/re/`. Splits on `|` outside a `/regex/` selector.
pub fn parse_targets(text: &str) -> Result<Targets, ErrorKind> {
    let mut targets = Targets::default();
    for part in split_targets(text) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let error = |reason: String| ErrorKind::Variable {
            text: part.to_owned(),
            reason,
        };
        let (negate, count, body) = match part.as_bytes()[0] {
            b'!' => (true, false, &part[1..]),
            b'&' => (false, true, &part[1..]),
            _ => (false, false, part),
        };
        let (name, selector) = match body.split_once(':') {
            Some((n, s)) => (n, Some(s)),
            None => (body, None),
        };
        let var = Var::parse(name.trim()).ok_or_else(|| error("unknown variable".into()))?;
        let selector = match selector {
            Some(s) if !var.is_collection() => {
                return Err(error(format!(
                    "{} takes no selector, got {s:?}",
                    var.name()
                )));
            }
            Some(s) if var == Var::Xml && s != "/*" && s != "//@*" => {
                return Err(ErrorKind::Unsupported {
                    feature: format!("XML:{s}"),
                    reason: "only the XPath expressions /* and //@* are implemented".into(),
                });
            }
            Some(s) => Some(Selector::parse(s).map_err(error)?),
            None => None,
        };
        if negate {
            targets.exclude.push(Exclusion { var, selector });
        } else {
            targets.include.push(Target {
                var,
                selector,
                count,
            });
        }
    }
    if targets.include.is_empty() && targets.exclude.is_empty() {
        return Err(ErrorKind::Variable {
            text: text.to_owned(),
            reason: "no variable".into(),
        });
    }
    Ok(targets)
}

fn split_targets(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut in_regex = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_regex => i += 1,
            // A regex selector starts right after `:` and ends with `/` before `|` or the end;
            // `XML:` takes an XPath expression instead, which is no regex.
            b'/' if !in_regex
                && i > 0
                && bytes[i - 1] == b':'
                && !text[start..i - 1]
                    .trim_start_matches(['!', '&', ' '])
                    .eq_ignore_ascii_case("XML") =>
            {
                in_regex = true
            }
            b'/' if in_regex && (i + 1 == bytes.len() || bytes[i + 1] == b'|') => in_regex = false,
            b'|' if !in_regex => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The literal of `^LITERAL` selects what the case-insensitive expression
        /// selects, keys with non-ASCII letters (`K` Kelvin, `ſ`, `ı`) included.
        #[test]
        fn anchored_literal_selects_as_the_expression_does(
            pattern in "\\^[a-zA-Z0-9_]{0,6}",
            key in "[aeHhIiKkSsnN_0-9\u{212a}\u{17f}\u{131}\u{130}]{0,9}",
        ) {
            let selector = Selector::parse(&format!("/{pattern}/")).unwrap();
            let literal = selector.anchored_literal();
            let no_fold = !pattern.contains(['k', 'K', 's', 'S']);
            proptest::prop_assert_eq!(literal.is_some(), no_fold);
            if let Some(l) = literal {
                let starts = key
                    .as_bytes()
                    .get(..l.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(l.as_bytes()));
                proptest::prop_assert_eq!(starts, selector.matches(&key));
            }
        }
    }

    #[test]
    fn anchored_literal_only_for_plain_prefixes() {
        let literal = |p: &str| {
            Selector::parse(p)
                .unwrap()
                .anchored_literal()
                .map(str::to_owned)
        };
        assert_eq!(literal("/^HEADER_NAME_/").as_deref(), Some("HEADER_NAME_"));
        assert_eq!(literal("/^header_name_.*$/"), None);
        assert_eq!(literal("/HEADER_NAME_/"), None);
        assert_eq!(literal("/^session/"), None);
        assert_eq!(literal("header_name_"), None);
    }

    #[test]
    fn lists_counts_exclusions_and_selectors() {
        let t = parse_targets("REQUEST_COOKIES|!REQUEST_COOKIES:/__utm/|&ARGS|ARGS:json.a|tx:X")
            .unwrap();
        assert_eq!(t.include.len(), 4);
        assert_eq!(t.exclude.len(), 1);
        assert!(t.include[1].count);
        assert!(t.exclude[0].excludes(Var::RequestCookies, Some("__utmz")));
        assert!(!t.exclude[0].excludes(Var::RequestCookies, Some("session")));
        assert!(matches!(&t.include[2].selector, Some(Selector::Key(k)) if k == "json.a"));
        assert_eq!(t.include[3].var, Var::Tx);
    }

    #[test]
    fn xml_xpath_selectors_are_not_regexes() {
        let t = parse_targets("XML:/*|XML://@*|ARGS").unwrap();
        assert_eq!(t.include.len(), 3);
        assert!(matches!(&t.include[1].selector, Some(Selector::Key(k)) if k == "//@*"));
    }

    #[test]
    fn pipe_inside_regex_selector_does_not_split() {
        let t = parse_targets("ARGS:/^(a|b)$/|ARGS_NAMES").unwrap();
        assert_eq!(t.include.len(), 2);
        let Some(Selector::Regex(r)) = &t.include[0].selector else {
            panic!()
        };
        assert!(r.is_match(b"B"));
    }

    #[test]
    fn unknown_variable_and_selector_on_scalar_are_errors() {
        assert!(matches!(
            parse_targets("ARGZ"),
            Err(ErrorKind::Variable { .. })
        ));
        assert!(matches!(
            parse_targets("REQUEST_URI:x"),
            Err(ErrorKind::Variable { .. })
        ));
    }
}
