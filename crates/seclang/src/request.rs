//! The request model rules see, and the body processors that fill `ARGS_POST`, `FILES`,
//! `MULTIPART_*` and `REQBODY_ERROR` from the body.

use crate::transform::url_decode;

/// An HTTP request as received. Header names keep their case; lookups ignore it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `REQUEST_METHOD`, as sent.
    pub method: String,
    /// The request target as sent: origin form (`/path?query`) or absolute form.
    pub uri: String,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub protocol: String,
    /// The request headers in order, repeated names kept (`REQUEST_HEADERS`). `Host`
    /// gives `SERVER_NAME`, `Cookie` the cookies and `Content-Type` the body processor.
    pub headers: Vec<(String, String)>,
    /// The body, processed before phase 2 unless a body is given to
    /// [`crate::Transaction::process_request_body`] instead. May be empty.
    pub body: Vec<u8>,
    /// `REMOTE_ADDR`: the client's address as text (`192.0.2.1`, `2001:db8::1`); what
    /// `@ipMatch`, `@geoLookup` and `@rbl` rules usually inspect.
    pub remote_addr: String,
    /// `REMOTE_PORT`: the client's port.
    pub remote_port: u16,
    /// Names the transaction in logs (`UNIQUE_ID`).
    pub unique_id: String,
}

impl Request {
    /// The value of the first header named `name`, compared without regard to ASCII
    /// case; `None` when there is none.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the body is parsed into variables (`REQBODY_PROCESSOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProcessor {
    /// `URLENCODED`: `name=value&...` form fields into `ARGS_POST`.
    UrlEncoded,
    /// `MULTIPART`: `multipart/form-data` fields into `ARGS_POST`, file parts into
    /// `FILES*`, anomalies into the `MULTIPART_*` flags.
    Multipart,
    /// `JSON`: the document flattened into `ARGS_POST` named by path ([`parse_json`]).
    Json,
    /// `XML`: a well-formedness check, and the text and attribute values into `XML`
    /// ([`parse_xml`]).
    Xml,
}

impl BodyProcessor {
    /// The name ModSecurity uses (`REQBODY_PROCESSOR`, `ctl:requestBodyProcessor`),
    /// upper case.
    pub fn name(self) -> &'static str {
        match self {
            BodyProcessor::UrlEncoded => "URLENCODED",
            BodyProcessor::Multipart => "MULTIPART",
            BodyProcessor::Json => "JSON",
            BodyProcessor::Xml => "XML",
        }
    }

    /// The processor with this [`BodyProcessor::name`], in any ASCII case; `None` for
    /// any other name.
    pub fn parse(name: &str) -> Option<BodyProcessor> {
        match name.to_ascii_uppercase().as_str() {
            "URLENCODED" => Some(BodyProcessor::UrlEncoded),
            "MULTIPART" => Some(BodyProcessor::Multipart),
            "JSON" => Some(BodyProcessor::Json),
            "XML" => Some(BodyProcessor::Xml),
            _ => None,
        }
    }

    /// The processor for a `Content-Type`. ModSecurity picks URLENCODED and MULTIPART by
    /// itself and JSON / XML through the `ctl:requestBodyProcessor` rules of its
    /// recommended configuration (ids 200000, 200001); this engine does the same
    /// without needing those rules.
    pub fn for_content_type(content_type: &str) -> Option<BodyProcessor> {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/x-www-form-urlencoded" => Some(BodyProcessor::UrlEncoded),
            "multipart/form-data" => Some(BodyProcessor::Multipart),
            "application/json" => Some(BodyProcessor::Json),
            "text/xml" | "application/xml" => Some(BodyProcessor::Xml),
            m if m.ends_with("+json") => Some(BodyProcessor::Json),
            m if m.ends_with("+xml") => Some(BodyProcessor::Xml),
            _ => None,
        }
    }
}

/// A named value: header, argument, cookie, file name, ...
pub type Pair = (String, Vec<u8>);

/// `name=value&...` as ModSecurity splits query strings and form bodies: both sides
/// URL-decoded (`+` is a space), a piece without `=` is a name with an empty value.
pub fn parse_urlencoded(text: &[u8], out: &mut Vec<Pair>) {
    for piece in text.split(|&b| b == b'&') {
        if piece.is_empty() {
            continue;
        }
        let (name, value) = match piece.iter().position(|&b| b == b'=') {
            Some(p) => (&piece[..p], &piece[p + 1..]),
            None => (piece, &b""[..]),
        };
        let name = String::from_utf8_lossy(&url_decode(name, false)).into_owned();
        out.push((name, url_decode(value, false)));
    }
}

/// `a=1; b=2` into cookies as ModSecurity v3 splits them: on `;`, the name left-trimmed,
/// the value after the first `=` and not decoded, pieces without a name skipped.
pub fn parse_cookies(header: &str, out: &mut Vec<Pair>) {
    for piece in header.trim_end().split(';') {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let name = name.trim_start();
        if name.is_empty() {
            continue;
        }
        out.push((name.to_owned(), value.as_bytes().to_vec()));
    }
}

/// JSON nesting deeper than this is a body error, not a stack overflow.
pub const MAX_JSON_DEPTH: usize = 256;

/// Flattens a JSON document into `ARGS`-style pairs named by their path, as Coraza's JSON
/// body processor does: `{"messages":[{"content":"hi"}]}` gives
/// `json.messages.0.content = hi`. (ModSecurity v3 names array elements `array_0` instead:
/// `json.messages.array_0.content`; exclusions written for it need that changed.) Every occurrence of a duplicated key is kept, so a value
/// can't hide behind a later duplicate. Strings are unescaped, numbers and `true` / `false`
/// kept as written, `null` is empty.
pub fn parse_json(body: &[u8], out: &mut Vec<Pair>) -> Result<(), String> {
    let start = out.len();
    parse_json_over(body, out, start)
}

/// [`parse_json`] writing the pairs over those of `out` (a previous request's, kept for
/// their room) and dropping the rest: a chat body's few dozen names and values then
/// reuse their strings instead of allocating them (and freeing them at the end of
/// the transaction). What `out` holds afterwards is what `parse_json` gives an empty one.
pub(crate) fn parse_json_reusing(body: &[u8], out: &mut Vec<Pair>) -> Result<(), String> {
    parse_json_over(body, out, 0)
}

fn parse_json_over(body: &[u8], pairs: &mut Vec<Pair>, start: usize) -> Result<(), String> {
    let mut parser = Json { input: body, at: 0 };
    let mut out = Out { pairs, used: start };
    parser.skip_ws();
    let mut path = String::from("json");
    let result = parser.value(&mut path, 0, &mut out).and_then(|()| {
        parser.skip_ws();
        if parser.at == body.len() {
            Ok(())
        } else {
            Err(format!(
                "unexpected data after the JSON value at byte {}",
                parser.at
            ))
        }
    });
    let used = out.used;
    pairs.truncate(used);
    result
}

/// The pairs [`parse_json_over`] writes: the next one is `pairs[used]`, emptied, or a new
/// one past the end.
struct Out<'a> {
    pairs: &'a mut Vec<Pair>,
    used: usize,
}

impl Out<'_> {
    /// The next pair, named `path`, its value empty.
    fn next(&mut self, path: &str) -> &mut Vec<u8> {
        if self.used == self.pairs.len() {
            self.pairs.push((String::new(), Vec::new()));
        }
        let pair = &mut self.pairs[self.used];
        self.used += 1;
        pair.0.clear();
        pair.0.push_str(path);
        pair.1.clear();
        &mut pair.1
    }
}

/// Appends `n` in decimal, without the allocation of `to_string`.
fn push_decimal(out: &mut String, n: usize) {
    let mut buf = [0; 20];
    let digits = crate::numbers::decimal(n as u64, &mut buf);
    out.extend(digits.iter().map(|&d| char::from(d)));
}

struct Json<'a> {
    input: &'a [u8],
    at: usize,
}

impl Json<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.input.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.at)
    }

    fn value(&mut self, path: &mut String, depth: usize, out: &mut Out) -> Result<(), String> {
        if depth > MAX_JSON_DEPTH {
            return Err(self.error("JSON nesting too deep"));
        }
        match self.input.get(self.at) {
            Some(b'{') => {
                self.at += 1;
                self.skip_ws();
                if self.input.get(self.at) == Some(&b'}') {
                    self.at += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    if self.input.get(self.at) != Some(&b'"') {
                        return Err(self.error("expected an object key"));
                    }
                    let len = path.len();
                    path.push('.');
                    self.key(path)?;
                    self.skip_ws();
                    if self.input.get(self.at) != Some(&b':') {
                        return Err(self.error("expected ':'"));
                    }
                    self.at += 1;
                    self.skip_ws();
                    self.value(path, depth + 1, out)?;
                    path.truncate(len);
                    self.skip_ws();
                    match self.input.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(());
                        }
                        _ => return Err(self.error("expected ',' or '}'")),
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                self.skip_ws();
                if self.input.get(self.at) == Some(&b']') {
                    self.at += 1;
                    return Ok(());
                }
                let mut index = 0usize;
                loop {
                    self.skip_ws();
                    let len = path.len();
                    path.push('.');
                    push_decimal(path, index);
                    self.value(path, depth + 1, out)?;
                    path.truncate(len);
                    index += 1;
                    self.skip_ws();
                    match self.input.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(());
                        }
                        _ => return Err(self.error("expected ',' or ']'")),
                    }
                }
            }
            Some(b'"') => {
                let result = self.string_into(out.next(path));
                if result.is_err() {
                    // No pair for a bad string, as for any value that does not parse.
                    out.used -= 1;
                }
                result
            }
            Some(b't') => self.literal(b"true", path, out),
            Some(b'f') => self.literal(b"false", path, out),
            Some(b'n') => {
                self.literal(b"null", path, out)?;
                if let Some(last) = out.pairs[..out.used].last_mut() {
                    last.1.clear();
                }
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.at;
                self.number()?;
                out.next(path)
                    .extend_from_slice(&self.input[start..self.at]);
                Ok(())
            }
            Some(_) => Err(self.error("unexpected character")),
            None => Err(self.error("unexpected end of JSON")),
        }
    }

    fn literal(&mut self, word: &[u8], path: &str, out: &mut Out) -> Result<(), String> {
        if self.input[self.at..].starts_with(word) {
            self.at += word.len();
            out.next(path).extend_from_slice(word);
            Ok(())
        } else {
            Err(self.error("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.input.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<(), String> {
        if self.input.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.input.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.input.get(self.at) == Some(&b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if matches!(self.input.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.input.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .input
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.error("truncated \\u escape"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.error("invalid \\u escape"))?;
        let value = u32::from_str_radix(text, 16).map_err(|_| self.error("invalid \\u escape"))?;
        self.at += 4;
        Ok(value)
    }

    /// A string starting at the opening quote; bytes that are not valid UTF-8 are kept as
    /// they are (rules must see what the application would).
    /// An object key, appended to `path` (invalid UTF-8 replaced): one without escapes
    /// straight from the input, rather than through a copy of its own (a chat's
    /// messages repeat `role` and `content`).
    fn key(&mut self, path: &mut String) -> Result<(), String> {
        let rest = &self.input[(self.at + 1).min(self.input.len())..];
        if let Some(end) = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            && rest[end] == b'"'
        {
            path.push_str(&String::from_utf8_lossy(&rest[..end]));
            self.at += end + 2;
            return Ok(());
        }
        let key = self.string()?;
        path.push_str(&String::from_utf8_lossy(&key));
        Ok(())
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        self.string_into(&mut out)?;
        Ok(out)
    }

    /// A string starting at the opening quote, appended to `out`.
    fn string_into(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        self.at += 1;
        // Most strings hold no escape: copied at once. The loop below takes the others
        // (and reports what is wrong with a bad one).
        let rest = &self.input[self.at.min(self.input.len())..];
        if let Some(end) = string_stop(rest)
            && rest[end] == b'"'
        {
            self.at += end + 1;
            out.extend_from_slice(&rest[..end]);
            return Ok(());
        }
        loop {
            let Some(&b) = self.input.get(self.at) else {
                return Err(self.error("unterminated string"));
            };
            self.at += 1;
            match b {
                b'"' => return Ok(()),
                b'\\' => {
                    let Some(&e) = self.input.get(self.at) else {
                        return Err(self.error("unterminated string"));
                    };
                    self.at += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let first = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&first)
                                && self.input[self.at..].starts_with(b"\\u")
                            {
                                self.at += 2;
                                let second = self.hex4()?;
                                if (0xdc00..0xe000).contains(&second) {
                                    0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
                                } else {
                                    // An unpaired surrogate: keep both as replacement characters.
                                    out.extend_from_slice("\u{fffd}".as_bytes());
                                    second
                                }
                            } else {
                                first
                            };
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(self.error("invalid escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0x00..=0x1f => return Err(self.error("control character in string")),
                _ => out.push(b),
            }
        }
    }
}

/// What the multipart processor found besides the fields themselves. The flags are the
/// `MULTIPART_*` variables; `strict_error` is set when any of them is.
#[derive(Debug, Clone, Default)]
pub struct MultipartFlags {
    /// `MULTIPART_BOUNDARY_QUOTED`: the `Content-Type` boundary parameter was quoted.
    pub boundary_quoted: bool,
    /// `MULTIPART_BOUNDARY_WHITESPACE`: the boundary parameter has whitespace around it.
    pub boundary_whitespace: bool,
    /// `MULTIPART_DATA_BEFORE`: something other than whitespace precedes the first
    /// delimiter.
    pub data_before: bool,
    /// `MULTIPART_DATA_AFTER`: something other than whitespace follows the closing
    /// delimiter.
    pub data_after: bool,
    /// `MULTIPART_HEADER_FOLDING`: a part header continues on a line starting with a
    /// space or tab.
    pub header_folding: bool,
    /// `MULTIPART_LF_LINE`: a delimiter or part header line ends with a bare LF.
    pub lf_line: bool,
    /// `MULTIPART_CRLF_LF_LINES`: meant for CRLF and bare-LF line endings mixed, but
    /// [`parse_multipart`] never sets it (mixed endings set `lf_line`), and it is not
    /// part of [`MultipartFlags::strict_error`].
    pub crlf_lf_lines: bool,
    /// `MULTIPART_MISSING_SEMICOLON`: a `Content-Disposition` parameter is not preceded
    /// by `;`.
    pub missing_semicolon: bool,
    /// `MULTIPART_INVALID_QUOTING`: a `Content-Disposition` value has an unterminated
    /// quote, or a quote inside an unquoted value.
    pub invalid_quoting: bool,
    /// `MULTIPART_INVALID_PART`: a part has a header line without `:`, a
    /// `Content-Disposition` that is not `form-data`, or no field name (such a part is
    /// skipped).
    pub invalid_part: bool,
    /// `MULTIPART_UNMATCHED_BOUNDARY`: the body has no closing delimiter
    /// (`--boundary--`).
    pub unmatched_boundary: bool,
}

impl MultipartFlags {
    /// `MULTIPART_STRICT_ERROR` as far as the flags go: whether any of them is set
    /// (`crlf_lf_lines` excepted). The variable is also set when the body cannot be
    /// parsed at all.
    pub fn strict_error(&self) -> bool {
        self.boundary_quoted
            || self.boundary_whitespace
            || self.data_before
            || self.data_after
            || self.header_folding
            || self.lf_line
            || self.missing_semicolon
            || self.invalid_quoting
            || self.invalid_part
            || self.unmatched_boundary
    }
}

/// What [`parse_multipart`] extracts from a `multipart/form-data` body.
#[derive(Debug, Clone, Default)]
pub struct Multipart {
    /// The form fields that are not files (`ARGS_POST`): field name and content.
    pub args: Vec<Pair>,
    /// Field name and file name of each file part.
    pub files: Vec<Pair>,
    /// Field name and size in bytes of each file part (`FILES_SIZES`).
    pub file_sizes: Vec<(String, usize)>,
    /// Field name and each header line of each part.
    pub part_headers: Vec<Pair>,
    /// The anomalies found while parsing.
    pub flags: MultipartFlags,
}

/// `multipart/form-data` (RFC 7578). Returns an error when the body cannot be split into
/// parts at all; anomalies that still allow parsing set flags instead.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Multipart, String> {
    let mut result = Multipart::default();
    let boundary = content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        .ok_or("multipart body without a boundary")?;
    if boundary.starts_with(char::is_whitespace) || boundary.ends_with(char::is_whitespace) {
        result.flags.boundary_whitespace = true;
    }
    let mut boundary = boundary.trim();
    if boundary.len() >= 2 && boundary.starts_with('"') && boundary.ends_with('"') {
        result.flags.boundary_quoted = true;
        boundary = &boundary[1..boundary.len() - 1];
    }
    if boundary.is_empty() {
        return Err("empty multipart boundary".into());
    }
    let delimiter = format!("--{boundary}").into_bytes();
    let mut positions = Vec::new();
    let mut from = 0;
    while let Some(p) = find(&body[from..], &delimiter) {
        let at = from + p;
        // A delimiter counts only at the start of the body or of a line.
        if at == 0 || body[at - 1] == b'\n' {
            positions.push(at);
        }
        from = at + delimiter.len();
    }
    if positions.is_empty() {
        return Err("no multipart boundary in the body".into());
    }
    if positions[0] != 0 && !body[..positions[0]].iter().all(|b| b.is_ascii_whitespace()) {
        result.flags.data_before = true;
    }
    let mut closed = false;
    for (n, &start) in positions.iter().enumerate() {
        let after = start + delimiter.len();
        if body[after..].starts_with(b"--") {
            closed = true;
            let rest = &body[after + 2..];
            if !rest.iter().all(|b| b.is_ascii_whitespace()) {
                result.flags.data_after = true;
            }
            break;
        }
        let end = positions.get(n + 1).copied().unwrap_or(body.len());
        // A body cut after a delimiter (no closing `--`): nothing left to parse.
        if end == body.len() && body[after..].iter().all(u8::is_ascii_whitespace) {
            break;
        }
        let part = &body[after..end];
        // The line break before the next delimiter belongs to the delimiter.
        let part = part
            .strip_suffix(b"\r\n")
            .or_else(|| part.strip_suffix(b"\n"))
            .unwrap_or(part);
        parse_part(part, &mut result)?;
    }
    if !closed {
        result.flags.unmatched_boundary = true;
    }
    Ok(result)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_part(part: &[u8], out: &mut Multipart) -> Result<(), String> {
    // Skip the rest of the delimiter line.
    let part = match part.iter().position(|&b| b == b'\n') {
        Some(p) => {
            if p == 0 || part[p - 1] != b'\r' {
                out.flags.lf_line = true;
            }
            &part[p + 1..]
        }
        None => return Err("multipart part without headers".into()),
    };
    let mut headers: Vec<String> = Vec::new();
    let mut rest = part;
    loop {
        let Some(p) = rest.iter().position(|&b| b == b'\n') else {
            return Err("multipart part headers do not end".into());
        };
        let mut line = &rest[..p];
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        } else {
            out.flags.lf_line = true;
        }
        rest = &rest[p + 1..];
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line).into_owned();
        if text.starts_with([' ', '\t']) {
            out.flags.header_folding = true;
            match headers.last_mut() {
                Some(previous) => previous.push_str(text.trim_start()),
                None => return Err("multipart header folding before any header".into()),
            }
        } else {
            headers.push(text);
        }
    }
    let mut name = None;
    let mut filename = None;
    for header in &headers {
        let Some((key, value)) = header.split_once(':') else {
            out.flags.invalid_part = true;
            continue;
        };
        if key.trim().eq_ignore_ascii_case("content-disposition") {
            let (n, f) = disposition(value, &mut out.flags);
            name = n;
            filename = f;
        }
    }
    let Some(name) = name else {
        out.flags.invalid_part = true;
        return Ok(());
    };
    for header in headers {
        out.part_headers.push((name.clone(), header.into_bytes()));
    }
    match filename {
        Some(file) => {
            out.file_sizes.push((name.clone(), rest.len()));
            out.files.push((name, file.into_bytes()));
        }
        None => out.args.push((name, rest.to_vec())),
    }
    Ok(())
}

/// `form-data; name="field"; filename="a.txt"` into its name and file name.
fn disposition(value: &str, flags: &mut MultipartFlags) -> (Option<String>, Option<String>) {
    let value = value.trim();
    let Some(params) = value
        .get(..9)
        .filter(|v| v.eq_ignore_ascii_case("form-data"))
        .map(|_| &value[9..])
    else {
        flags.invalid_part = true;
        return (None, None);
    };
    let (mut name, mut filename) = (None, None);
    let mut rest = params.trim_start();
    while !rest.is_empty() {
        match rest.strip_prefix(';') {
            Some(r) => rest = r.trim_start(),
            None => flags.missing_semicolon = true,
        }
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let parsed;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    // Only the quote and the backslash can be escaped; before anything
                    // else the backslash is kept (ModSecurity v3, multipart.cc: "IE sends
                    // improperly escaped content"), so `filename="a\b.php"` keeps its
                    // backslash for CRS 920120/920121 and 930110 to see.
                    '\\' if matches!(quoted[i + 1..].chars().next(), Some('"' | '\\')) => {
                        if let Some((_, e)) = chars.next() {
                            v.push(e);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => v.push(c),
                }
            }
            match end {
                Some(e) => rest = quoted[e..].trim_start(),
                None => {
                    flags.invalid_quoting = true;
                    rest = "";
                }
            }
            parsed = v;
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            let v = rest[..end].trim();
            if v.contains(['"', '\'']) {
                flags.invalid_quoting = true;
            }
            parsed = v.to_owned();
            rest = &rest[end..];
        }
        match key.as_str() {
            "name" => name = Some(parsed),
            "filename" | "filename*" => filename = Some(parsed),
            _ => {}
        }
    }
    (name, filename)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        parse_json(body.as_bytes(), &mut out).unwrap();
        out.into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn json_paths_follow_the_modsecurity_v3_and_coraza_naming() {
        let got = json(
            r#"{"model":"m","messages":[{"role":"user","content":"hi \u00e9\n"}],"n":1.5e3,"s":true,"x":null,"e":{}}"#,
        );
        assert_eq!(
            got,
            pairs(&[
                ("json.model", "m"),
                ("json.messages.0.role", "user"),
                ("json.messages.0.content", "hi é\n"),
                ("json.n", "1.5e3"),
                ("json.s", "true"),
                ("json.x", ""),
            ])
        );
    }

    #[test]
    fn json_duplicate_keys_are_all_kept_and_top_level_arrays_are_indexed() {
        assert_eq!(
            json(r#"{"a":"evil","a":"ok"}"#),
            pairs(&[("json.a", "evil"), ("json.a", "ok")])
        );
        assert_eq!(
            json(r#"[1,["x"]]"#),
            pairs(&[("json.0", "1"), ("json.1.0", "x")])
        );
        assert_eq!(json(r#""\ud83d\ude00""#), pairs(&[("json", "😀")]));
    }

    #[test]
    fn malformed_json_is_an_error_not_a_partial_result() {
        for bad in [
            "{",
            "{\"a\":}",
            "[1,]",
            "{\"a\":1} x",
            "\"\\q\"",
            "01",
            "tru",
            "",
        ] {
            let mut out = Vec::new();
            assert!(parse_json(bad.as_bytes(), &mut out).is_err(), "{bad}");
        }
        let deep = "[".repeat(MAX_JSON_DEPTH + 2) + &"]".repeat(MAX_JSON_DEPTH + 2);
        assert!(parse_json(deep.as_bytes(), &mut Vec::new()).is_err());
    }

    #[test]
    fn urlencoded_and_cookies() {
        let mut out = Vec::new();
        parse_urlencoded(b"a=1+2&b&&c=%3Cx%3E&d=%zz", &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        assert_eq!(
            got,
            [("a", &b"1 2"[..]), ("b", b""), ("c", b"<x>"), ("d", b"%zz")]
        );
        let mut cookies = Vec::new();
        parse_cookies("a=1; b=x%20y;c;=z;  ", &mut cookies);
        assert_eq!(cookies.len(), 3);
        assert_eq!(cookies[1], ("b".to_string(), b"x%20y".to_vec()));
        assert_eq!(cookies[2], ("c".to_string(), Vec::new()));
    }

    #[test]
    fn multipart_fields_files_and_flags() {
        let body = "--XB\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhello\r\n--XB\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.php\"\r\nContent-Type: text/plain\r\n\r\n<?php\r\n--XB--\r\n";
        let m = parse_multipart("multipart/form-data; boundary=XB", body.as_bytes()).unwrap();
        assert_eq!(m.args, [("a".to_string(), b"hello".to_vec())]);
        assert_eq!(m.files, [("f".to_string(), b"x.php".to_vec())]);
        assert_eq!(m.file_sizes, [("f".to_string(), 5)]);
        assert_eq!(m.part_headers.len(), 3);
        assert!(!m.flags.strict_error(), "{:?}", m.flags);

        let sloppy = "junk\r\n--XB\nContent-Disposition: form-data; name=\"a\"\n\nv\n--XB\r\n";
        let m = parse_multipart("multipart/form-data; boundary=\"XB\"", sloppy.as_bytes()).unwrap();
        assert!(
            m.flags.data_before
                && m.flags.lf_line
                && m.flags.boundary_quoted
                && m.flags.unmatched_boundary
        );
        assert!(parse_multipart("multipart/form-data", b"x").is_err());
    }

    /// ModSecurity v3 (multipart.cc): in a quoted parameter only `\"` and `\\` are
    /// escapes; a backslash before anything else stays (CRS 4's tests 920120-40/41,
    /// 920121-6/7 and 930110-11 expect `filename="1.j\s\p"`, `name="cv.p\d\f"` and
    /// `filename="..\1.7z"` to keep it).
    #[test]
    fn multipart_quoted_parameters_keep_backslashes_that_escape_nothing() {
        let mut flags = MultipartFlags::default();
        assert_eq!(
            disposition(
                r#"form-data; name="cv.p\d\f"; filename="..\1.7z""#,
                &mut flags
            ),
            (Some(r"cv.p\d\f".to_string()), Some(r"..\1.7z".to_string()))
        );
        assert_eq!(
            disposition(r#"form-data; name="a\"b"; filename="c\\d""#, &mut flags),
            (Some(r#"a"b"#.to_string()), Some(r"c\d".to_string()))
        );
        assert_eq!(
            disposition(r#"form-data; name="x\\"; filename="y""#, &mut flags),
            (Some(r"x\".to_string()), Some("y".to_string()))
        );
        assert!(!flags.invalid_quoting);
    }
}

/// What the XML body processor extracts: the document's text content (`XML:/*`, all text
/// nodes concatenated, as libxml2 gives the root element's content) and every attribute
/// value (`XML://@*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Xml {
    /// Every text node of the document (entities decoded, CDATA sections included)
    /// concatenated in document order (`XML:/*`).
    pub text: Vec<u8>,
    /// Every attribute value, in document order (`XML://@*`).
    pub attributes: Vec<Vec<u8>>,
}

/// XML nesting deeper than this is a body error.
pub const MAX_XML_DEPTH: usize = 256;

/// A well-formedness check and extraction for the two XPath expressions rule sets use.
/// Not a validating parser: no DTD processing (and so no external entities).
pub fn parse_xml(body: &[u8]) -> Result<Xml, String> {
    let mut xml = Xml::default();
    let mut open: Vec<&[u8]> = Vec::new();
    let mut seen_root = false;
    let mut i = 0;
    let find = |from: usize, needle: &[u8]| {
        body[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| from + p)
    };
    while i < body.len() {
        if body[i] != b'<' {
            let end = body[i..]
                .iter()
                .position(|&b| b == b'<')
                .map_or(body.len(), |p| i + p);
            let text = &body[i..end];
            if open.is_empty() {
                if !text.iter().all(u8::is_ascii_whitespace) {
                    return Err(format!("text outside the root element at byte {i}"));
                }
            } else {
                xml.text.extend(decode_entities(text)?);
            }
            i = end;
            continue;
        }
        let rest = &body[i..];
        if rest.starts_with(b"<?") {
            i = find(i, b"?>").ok_or("unterminated processing instruction")? + 2;
        } else if rest.starts_with(b"<!--") {
            i = find(i + 4, b"-->").ok_or("unterminated comment")? + 3;
        } else if rest.starts_with(b"<![CDATA[") {
            let end = find(i + 9, b"]]>").ok_or("unterminated CDATA section")?;
            if open.is_empty() {
                return Err("CDATA outside the root element".into());
            }
            xml.text.extend_from_slice(&body[i + 9..end]);
            i = end + 3;
        } else if rest.starts_with(b"<!") {
            // A DOCTYPE: skipped, internal subset included (entities are not expanded).
            let mut depth = 0;
            let mut j = i + 2;
            loop {
                match body.get(j) {
                    Some(b'[') => depth += 1,
                    Some(b']') => depth -= 1,
                    Some(b'>') if depth <= 0 => break,
                    Some(_) => {}
                    None => return Err("unterminated declaration".into()),
                }
                j += 1;
            }
            i = j + 1;
        } else if rest.starts_with(b"</") {
            let end = find(i, b">").ok_or("unterminated end tag")?;
            let name = body[i + 2..end].trim_ascii();
            match open.pop() {
                Some(n) if n == name => {}
                _ => return Err(format!("mismatched end tag at byte {i}")),
            }
            i = end + 1;
        } else {
            let (name, attributes, self_closing, end) = start_tag(body, i)?;
            if open.is_empty() && seen_root {
                return Err(format!("second root element at byte {i}"));
            }
            seen_root = true;
            xml.attributes.extend(attributes);
            if !self_closing {
                if open.len() >= MAX_XML_DEPTH {
                    return Err("XML nesting too deep".into());
                }
                open.push(name);
            }
            i = end;
        }
    }
    if !open.is_empty() {
        return Err("unclosed element at the end of the body".into());
    }
    if !seen_root {
        return Err("no root element".into());
    }
    Ok(xml)
}

type StartTag<'a> = (&'a [u8], Vec<Vec<u8>>, bool, usize);

/// `<name a="1" b='2'>` or `<name/>` at `at`: name, attribute values, self-closing, and the
/// position after `>`.
fn start_tag(body: &[u8], at: usize) -> Result<StartTag<'_>, String> {
    let is_name = |b: u8| !b.is_ascii_whitespace() && !matches!(b, b'>' | b'/' | b'=' | b'<');
    let mut i = at + 1;
    let start = i;
    while body.get(i).is_some_and(|&b| is_name(b)) {
        i += 1;
    }
    if i == start {
        return Err(format!("invalid tag at byte {at}"));
    }
    let name = &body[start..i];
    let mut attributes = Vec::new();
    loop {
        while body.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        match body.get(i) {
            Some(b'>') => return Ok((name, attributes, false, i + 1)),
            Some(b'/') if body.get(i + 1) == Some(&b'>') => {
                return Ok((name, attributes, true, i + 2));
            }
            Some(&b) if is_name(b) => {
                while body.get(i).is_some_and(|&b| is_name(b)) {
                    i += 1;
                }
                while body.get(i).is_some_and(u8::is_ascii_whitespace) {
                    i += 1;
                }
                if body.get(i) != Some(&b'=') {
                    return Err(format!("attribute without a value at byte {i}"));
                }
                i += 1;
                while body.get(i).is_some_and(u8::is_ascii_whitespace) {
                    i += 1;
                }
                let Some(&quote @ (b'"' | b'\'')) = body.get(i) else {
                    return Err(format!("unquoted attribute value at byte {i}"));
                };
                let value_start = i + 1;
                let len = body[value_start..]
                    .iter()
                    .position(|&b| b == quote)
                    .ok_or("unterminated attribute value")?;
                attributes.push(decode_entities(&body[value_start..value_start + len])?);
                i = value_start + len + 1;
            }
            _ => return Err(format!("invalid tag at byte {at}")),
        }
    }
}

/// The five predefined entities and character references.
fn decode_entities(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'&' {
            out.push(text[i]);
            i += 1;
            continue;
        }
        let end = text[i..]
            .iter()
            .position(|&b| b == b';')
            .map(|p| i + p)
            .ok_or("unterminated entity reference")?;
        let name = &text[i + 1..end];
        let c = match name {
            b"lt" => '<',
            b"gt" => '>',
            b"amp" => '&',
            b"quot" => '"',
            b"apos" => '\'',
            _ => {
                let number = match name {
                    [b'#', b'x' | b'X', hex @ ..] => std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| u32::from_str_radix(h, 16).ok()),
                    [b'#', dec @ ..] => std::str::from_utf8(dec).ok().and_then(|d| d.parse().ok()),
                    _ => None,
                };
                number
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("unknown entity &{};", String::from_utf8_lossy(name)))?
            }
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        i = end + 1;
    }
    Ok(out)
}

#[cfg(test)]
mod xml_tests {
    use super::*;

    #[test]
    fn text_content_and_attribute_values() {
        let x = parse_xml(
            br#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><a id="1" t='&lt;b&gt;'>hi <b>&amp; <![CDATA[<script>]]></b><!-- c --><c/></a>"#,
        )
        .unwrap();
        assert_eq!(x.text, b"hi & <script>");
        assert_eq!(x.attributes, [b"1".to_vec(), b"<b>".to_vec()]);
    }

    #[test]
    fn malformed_documents_are_errors() {
        for bad in [
            "<a>",
            "<a></b>",
            "x<a/>",
            "<a/><b/>",
            "<a x=1/>",
            "<a>&nope;</a>",
            "",
            "<a><!-- </a>",
        ] {
            assert!(parse_xml(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}

/// The first `"`, `\\` or control character of `bytes` (where a JSON string's plain run
/// stops), eight bytes at a time: a chat body is mostly prose in strings, and a byte at
/// a time with three comparisons cost about five instructions per byte.
fn string_stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Flags (high bit) at least the bytes of `w` below `n` (n <= 0x80); the lowest flag
    // is exactly the first such byte in little-endian order (only bytes after it may be
    // flagged falsely, by the borrow).
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let hits = below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20);
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|p| at + p)
}

#[cfg(test)]
mod string_stop_tests {
    use proptest::prelude::*;

    fn plain(bytes: &[u8]) -> Option<usize> {
        bytes
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
    }

    proptest! {
        #[test]
        fn finds_what_a_byte_loop_finds(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(super::string_stop(&bytes), plain(&bytes));
        }

        #[test]
        fn finds_it_in_text(mut text in "[ -~\\u{80}-\\u{10ffff}]{0,40}", stop in prop::sample::select(vec![b'"', b'\\', 0u8, 0x1f, b'\n']), at in 0usize..41) {
            let mut bytes = std::mem::take(&mut text).into_bytes();
            let at = at.min(bytes.len());
            bytes.insert(at, stop);
            prop_assert_eq!(super::string_stop(&bytes), plain(&bytes));
        }
    }
}

#[cfg(test)]
mod json_reuse_tests {
    use super::*;
    use proptest::prelude::*;

    /// Documents of JSON's own characters, most of them nearly valid.
    fn document() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"a\"",
            "\"role\"",
            "\"x\\ny\"",
            "\"\\u00e9\"",
            "\"bad\\q\"",
            "\"open",
            "1",
            "-2.5e3",
            "true",
            "false",
            "null",
            " ",
            "nul",
        ]);
        prop_oneof![
            prop::collection::vec(piece, 0..24).prop_map(|p| p.concat().into_bytes()),
            Just(br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"t":0.2}"#.to_vec()),
            Just(br#"{"a":[1,null,"x",{"b":true}],"c":"\u00e9\n"}"#.to_vec()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Written over a previous request's pairs, the pairs and the answer are those of
        /// a fresh parse, whatever the pairs held before.
        #[test]
        fn reusing_pairs_parses_as_a_fresh_parse(
            doc in document(),
            before in document(),
            junk in prop::collection::vec(("[a-z.]{0,12}", prop::collection::vec(any::<u8>(), 0..20)), 0..8),
        ) {
            let mut fresh = Vec::new();
            let expected = parse_json(&doc, &mut fresh);
            let mut kept: Vec<Pair> = junk;
            let _ = parse_json_reusing(&before, &mut kept);
            let got = parse_json_reusing(&doc, &mut kept);
            prop_assert_eq!(got, expected);
            prop_assert_eq!(kept, fresh);
        }
    }
}
