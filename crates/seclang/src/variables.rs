//! Rule targets: `ARGS`, `REQUEST_HEADERS:User-Agent`, `&TX:x`, `!ARGS:/^json\./`, joined by `|`.

use regex::bytes::{Regex, RegexBuilder};

use crate::error::ErrorKind;

macro_rules! variables {
    ($($variant:ident = $name:literal, collection = $coll:literal;)*) => {
        /// A SecLang variable. Collections hold named values and accept a `:key` or
        /// `:/regex/` selector; the others hold at most one value.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Var { $($variant,)* }

        impl Var {
            pub fn parse(name: &str) -> Option<Var> {
                let upper = name.to_ascii_uppercase();
                match upper.as_str() {
                    $($name => Some(Var::$variant),)*
                    _ => None,
                }
            }
            pub fn name(self) -> &'static str {
                match self { $(Var::$variant => $name,)* }
            }
            pub fn is_collection(self) -> bool {
                match self { $(Var::$variant => $coll,)* }
            }
        }
    };
}

variables! {
    Args = "ARGS", collection = true;
    ArgsGet = "ARGS_GET", collection = true;
    ArgsPost = "ARGS_POST", collection = true;
    ArgsNames = "ARGS_NAMES", collection = true;
    ArgsGetNames = "ARGS_GET_NAMES", collection = true;
    ArgsPostNames = "ARGS_POST_NAMES", collection = true;
    ArgsCombinedSize = "ARGS_COMBINED_SIZE", collection = false;
    RequestUri = "REQUEST_URI", collection = false;
    RequestUriRaw = "REQUEST_URI_RAW", collection = false;
    RequestFilename = "REQUEST_FILENAME", collection = false;
    RequestBasename = "REQUEST_BASENAME", collection = false;
    RequestLine = "REQUEST_LINE", collection = false;
    RequestMethod = "REQUEST_METHOD", collection = false;
    RequestProtocol = "REQUEST_PROTOCOL", collection = false;
    QueryString = "QUERY_STRING", collection = false;
    RequestHeaders = "REQUEST_HEADERS", collection = true;
    RequestHeadersNames = "REQUEST_HEADERS_NAMES", collection = true;
    RequestCookies = "REQUEST_COOKIES", collection = true;
    RequestCookiesNames = "REQUEST_COOKIES_NAMES", collection = true;
    RequestBody = "REQUEST_BODY", collection = false;
    RequestBodyLength = "REQUEST_BODY_LENGTH", collection = false;
    ReqbodyError = "REQBODY_ERROR", collection = false;
    ReqbodyErrorMsg = "REQBODY_ERROR_MSG", collection = false;
    ReqbodyProcessor = "REQBODY_PROCESSOR", collection = false;
    Files = "FILES", collection = true;
    FilesNames = "FILES_NAMES", collection = true;
    FilesSizes = "FILES_SIZES", collection = true;
    FilesCombinedSize = "FILES_COMBINED_SIZE", collection = false;
    MultipartPartHeaders = "MULTIPART_PART_HEADERS", collection = true;
    MultipartStrictError = "MULTIPART_STRICT_ERROR", collection = false;
    MultipartUnmatchedBoundary = "MULTIPART_UNMATCHED_BOUNDARY", collection = false;
    MultipartBoundaryQuoted = "MULTIPART_BOUNDARY_QUOTED", collection = false;
    MultipartBoundaryWhitespace = "MULTIPART_BOUNDARY_WHITESPACE", collection = false;
    MultipartDataBefore = "MULTIPART_DATA_BEFORE", collection = false;
    MultipartDataAfter = "MULTIPART_DATA_AFTER", collection = false;
    MultipartHeaderFolding = "MULTIPART_HEADER_FOLDING", collection = false;
    MultipartLfLine = "MULTIPART_LF_LINE", collection = false;
    MultipartMissingSemicolon = "MULTIPART_MISSING_SEMICOLON", collection = false;
    MultipartInvalidQuoting = "MULTIPART_INVALID_QUOTING", collection = false;
    MultipartInvalidPart = "MULTIPART_INVALID_PART", collection = false;
    MultipartInvalidHeaderFolding = "MULTIPART_INVALID_HEADER_FOLDING", collection = false;
    MultipartFileLimitExceeded = "MULTIPART_FILE_LIMIT_EXCEEDED", collection = false;
    MultipartCrlfLfLines = "MULTIPART_CRLF_LF_LINES", collection = false;
    Xml = "XML", collection = true;
    Tx = "TX", collection = true;
    Ip = "IP", collection = true;
    Global = "GLOBAL", collection = true;
    Session = "SESSION", collection = true;
    User = "USER", collection = true;
    Resource = "RESOURCE", collection = true;
    Geo = "GEO", collection = true;
    Env = "ENV", collection = true;
    MatchedVar = "MATCHED_VAR", collection = false;
    MatchedVarName = "MATCHED_VAR_NAME", collection = false;
    MatchedVars = "MATCHED_VARS", collection = true;
    MatchedVarsNames = "MATCHED_VARS_NAMES", collection = true;
    UniqueId = "UNIQUE_ID", collection = false;
    RemoteAddr = "REMOTE_ADDR", collection = false;
    RemotePort = "REMOTE_PORT", collection = false;
    ServerName = "SERVER_NAME", collection = false;
    ServerPort = "SERVER_PORT", collection = false;
    Duration = "DURATION", collection = false;
    FullRequest = "FULL_REQUEST", collection = false;
    FullRequestLength = "FULL_REQUEST_LENGTH", collection = false;
    ResponseBody = "RESPONSE_BODY", collection = false;
    ResponseStatus = "RESPONSE_STATUS", collection = false;
    ResponseProtocol = "RESPONSE_PROTOCOL", collection = false;
    ResponseHeaders = "RESPONSE_HEADERS", collection = true;
    ResponseHeadersNames = "RESPONSE_HEADERS_NAMES", collection = true;
    ResponseContentType = "RESPONSE_CONTENT_TYPE", collection = false;
    ResponseContentLength = "RESPONSE_CONTENT_LENGTH", collection = false;
}

/// Picks members of a collection: by name (case-insensitive, as in ModSecurity) or by a
/// regular expression over the name.
#[derive(Debug, Clone)]
pub enum Selector {
    /// Lowercased.
    Key(String),
    Regex(Regex),
}

impl Selector {
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

    pub fn matches(&self, key: &str) -> bool {
        match self {
            Selector::Key(k) => k.eq_ignore_ascii_case(key),
            Selector::Regex(r) => r.is_match(key.as_bytes()),
        }
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
    pub var: Var,
    pub selector: Option<Selector>,
    /// `&VAR`: the number of values instead of the values.
    pub count: bool,
}

/// `!VAR:sel`: removes members from the rule's other targets of the same variable.
#[derive(Debug, Clone)]
pub struct Exclusion {
    pub var: Var,
    /// `None` removes the whole variable.
    pub selector: Option<Selector>,
}

impl Exclusion {
    pub fn excludes(&self, var: Var, key: Option<&str>) -> bool {
        self.var == var
            && match (&self.selector, key) {
                (None, _) => true,
                (Some(s), Some(k)) => s.matches(k),
                (Some(_), None) => false,
            }
    }

    pub fn same(&self, other: &Exclusion) -> bool {
        self.var == other.var
            && match (&self.selector, &other.selector) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same(b),
                _ => false,
            }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub include: Vec<Target>,
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
