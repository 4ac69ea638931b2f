//! Transformations (`t:`): functions from bytes to bytes applied to a value before the
//! operator sees it. Semantics follow the ModSecurity reference manual (v2/v3); where
//! the manual is silent the ModSecurity behaviour is described next to the function.

use crate::error::ErrorKind;

/// One transformation function. `t:none` is not a function: it clears the list of
/// transformations collected so far, so the rule compiler handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    /// `t:lowercase`: ASCII letters to lower case; other bytes, UTF-8 included, unchanged.
    Lowercase,
    /// `t:uppercase`: ASCII letters to upper case; other bytes unchanged.
    Uppercase,
    /// `t:urlDecode`: `%XX` becomes that byte and `+` a space; a `%` not followed by two hex
    /// digits is kept as it is.
    UrlDecode,
    /// `t:urlDecodeUni`: [`Transform::UrlDecode`] plus `%uHHHH`, which becomes one byte:
    /// full-width ASCII (U+FF01..U+FF5E) its ASCII twin, any other code point its low byte.
    UrlDecodeUni,
    /// `t:urlEncode`: keeps ASCII letters, digits and `-_.*`, turns a space into `+` and
    /// every other byte into `%xx` (lowercase hex).
    UrlEncode,
    /// `t:htmlEntityDecode`: `&#DDD;` and `&#xHH;` become the code point's low byte, `&quot;`
    /// `&amp;` `&lt;` `&gt;` their character and `&nbsp;` byte 0xa0; the `;` is optional and
    /// names ignore case. Other entities are kept.
    HtmlEntityDecode,
    /// `t:jsDecode`: JavaScript escapes: `\uHHHH` (one byte, as for
    /// [`Transform::UrlDecodeUni`]), `\xHH`, octal `\OOO`, `\a \b \f \n \r \t \v`, and `\`
    /// before any other character is that character.
    JsDecode,
    /// `t:cssDecode`: CSS 2 escapes: `\` and 1 to 6 hex digits become one byte (as for
    /// [`Transform::UrlDecodeUni`]), one whitespace after them swallowed; `\` before a
    /// newline is removed with it; `\` before anything else is that character, and a
    /// trailing `\` is dropped.
    CssDecode,
    /// `t:cmdLine`: undoes shell obfuscation: drops `\ " ' ^`, turns runs of whitespace, `,`
    /// and `;` into one space, drops a space before `/` and `(`, and lowercases ASCII.
    CmdLine,
    /// `t:compressWhitespace`: each run of whitespace (C's `isspace` and the non-breaking
    /// space 0xa0) becomes one space.
    CompressWhitespace,
    /// `t:removeWhitespace`: drops every whitespace byte (C's `isspace` and 0xa0).
    RemoveWhitespace,
    /// `t:removeNulls`: drops every NUL byte.
    RemoveNulls,
    /// `t:replaceNulls`: turns every NUL byte into a space.
    ReplaceNulls,
    /// `t:removeComments`: removes `/* */` and `<!-- -->` comments (an unterminated one to
    /// the end) and cuts the value at the first `--` or `#` outside them.
    RemoveComments,
    /// `t:removeCommentsChar`: drops the comment markers `/*`, `*/`, `<!--`, `-->`, `--` and
    /// `#`, keeping the text between them.
    RemoveCommentsChar,
    /// `t:replaceComments`: each `/* ... */` (an unterminated one to the end) becomes one
    /// space, so `UNION/**/SELECT` reads `UNION SELECT`.
    ReplaceComments,
    /// `t:normalizePath` (or `normalisePath`): resolves `.` and `..` segments and collapses
    /// repeated `/`. `..` above the root of an absolute path is dropped; leading `..` of a
    /// relative path kept.
    NormalizePath,
    /// `t:normalizePathWin` (or `normalisePathWin`): turns `\` into `/`, then as
    /// [`Transform::NormalizePath`].
    NormalizePathWin,
    /// `t:utf8toUnicode`: each multi-byte UTF-8 sequence becomes `%uHHHH` (its code point,
    /// lowercase hex); ASCII is kept. Overlong forms and surrogates are decoded too, as
    /// libmodsecurity 3.0.9 does.
    Utf8ToUnicode,
    /// `t:escapeSeqDecode`: ANSI C escapes: `\a \b \f \n \r \t \v \\ \? \' \"`, `\xHH` and
    /// octal `\OOO`; an unknown escape is kept as written.
    EscapeSeqDecode,
    /// `t:base64Decode`: decodes base64 (standard or URL-safe alphabet), stopping at `=` or
    /// the first character outside the alphabet.
    Base64Decode,
    /// `t:base64DecodeExt`: as [`Transform::Base64Decode`], but characters outside the
    /// alphabet are skipped instead of ending the value (`=` still ends it).
    Base64DecodeExt,
    /// `t:base64Encode`: standard base64 with `=` padding.
    Base64Encode,
    /// `t:hexEncode`: each byte as two lowercase hex digits.
    HexEncode,
    /// `t:hexDecode`: each pair of hex digits becomes one byte; a character that does not
    /// start a pair is skipped.
    HexDecode,
    /// `t:length`: the value's length in bytes, in decimal.
    Length,
    /// `t:sha1`: the value's SHA-1 digest, as 20 raw bytes (not hex).
    Sha1,
    /// `t:trim`: removes whitespace (C's `isspace` and 0xa0) at both ends.
    Trim,
    /// `t:trimLeft`: removes whitespace at the start.
    TrimLeft,
    /// `t:trimRight`: removes whitespace at the end.
    TrimRight,
}

/// `Ok(None)` is `t:none`.
pub fn parse(name: &str) -> Result<Option<Transform>, ErrorKind> {
    use Transform::*;
    let t = match name.to_ascii_lowercase().as_str() {
        "none" => return Ok(None),
        "lowercase" => Lowercase,
        "uppercase" => Uppercase,
        "urldecode" => UrlDecode,
        "urldecodeuni" => UrlDecodeUni,
        "urlencode" => UrlEncode,
        "htmlentitydecode" => HtmlEntityDecode,
        "jsdecode" => JsDecode,
        "cssdecode" => CssDecode,
        "cmdline" => CmdLine,
        "compresswhitespace" => CompressWhitespace,
        "removewhitespace" => RemoveWhitespace,
        "removenulls" => RemoveNulls,
        "replacenulls" => ReplaceNulls,
        "removecomments" => RemoveComments,
        "removecommentschar" => RemoveCommentsChar,
        "replacecomments" => ReplaceComments,
        "normalizepath" | "normalisepath" => NormalizePath,
        "normalizepathwin" | "normalisepathwin" => NormalizePathWin,
        "utf8tounicode" => Utf8ToUnicode,
        "escapeseqdecode" => EscapeSeqDecode,
        "base64decode" => Base64Decode,
        "base64decodeext" => Base64DecodeExt,
        "base64encode" => Base64Encode,
        "hexencode" => HexEncode,
        "hexdecode" => HexDecode,
        "length" => Length,
        "sha1" => Sha1,
        "trim" => Trim,
        "trimleft" => TrimLeft,
        "trimright" => TrimRight,
        _ => return Err(ErrorKind::UnknownTransformation(name.to_owned())),
    };
    Ok(Some(t))
}

impl Transform {
    /// Whether this transformation is applied to every value whatever its features: they
    /// never say it leaves one as it is ([`Features::leaves_unchanged`]).
    pub fn rewrites_all(self) -> bool {
        use Transform::*;
        matches!(
            self,
            UrlEncode
                | Base64Decode
                | Base64DecodeExt
                | Base64Encode
                | HexEncode
                | HexDecode
                | Length
                | Sha1
        )
    }

    /// Whether `apply` would return `input` unchanged, decided by a cheap scan that is
    /// exact when it says yes (a property test holds it to `apply`). Benign values rarely
    /// contain what a decoder reacts to, so most transformations then cost no copy.
    pub fn leaves_unchanged(self, input: &[u8]) -> bool {
        use Transform::*;
        // One table look-up per byte: values can be long prompts, scanned by many rules.
        let has = |set: &[bool; 256]| input.iter().any(|&b| set[usize::from(b)]);
        match self {
            Lowercase => !input.iter().any(u8::is_ascii_uppercase),
            Uppercase => !input.iter().any(u8::is_ascii_lowercase),
            UrlDecode | UrlDecodeUni => !has(&URL_DECODE),
            HtmlEntityDecode => !input.contains(&b'&'),
            JsDecode | CssDecode | EscapeSeqDecode => !input.contains(&b'\\'),
            RemoveNulls | ReplaceNulls => !input.contains(&0),
            RemoveWhitespace => !has(&SPACE),
            CompressWhitespace => !input.iter().enumerate().any(|(i, &b)| {
                SPACE[usize::from(b)]
                    && (b != b' ' || input.get(i + 1).is_some_and(|&n| is_space(n)))
            }),
            Utf8ToUnicode => input.is_ascii(),
            RemoveComments | RemoveCommentsChar => !has(&COMMENT),
            ReplaceComments => !input.windows(2).any(|w| w == b"/*"),
            NormalizePath => {
                (!input.contains(&b'.') && !input.windows(2).any(|w| w == b"//"))
                    || (!input.contains(&b'/') && input != b"." && input != b"..")
            }
            NormalizePathWin => {
                (!has(&PATH_WIN) && !input.windows(2).any(|w| w == b"//"))
                    || (!input.contains(&b'/')
                        && !input.contains(&b'\\')
                        && input != b"."
                        && input != b"..")
            }
            CmdLine => {
                !input.iter().any(u8::is_ascii_uppercase)
                    && !has(&CMD_LINE)
                    && !input
                        .windows(2)
                        .any(|w| w[0] == b' ' && matches!(w[1], b' ' | b'/' | b'('))
            }
            Trim => {
                !input.first().is_some_and(|&b| is_space(b))
                    && !input.last().is_some_and(|&b| is_space(b))
            }
            TrimLeft => !input.first().is_some_and(|&b| is_space(b)),
            TrimRight => !input.last().is_some_and(|&b| is_space(b)),
            UrlEncode | Base64Decode | Base64DecodeExt | Base64Encode | HexEncode | HexDecode
            | Length | Sha1 => false,
        }
    }

    /// The transformed value. Transformations are total: input a decoder cannot read is
    /// kept or skipped as each variant says, never an error.
    pub fn apply(self, input: &[u8]) -> Vec<u8> {
        use Transform::*;
        match self {
            Lowercase => input.to_ascii_lowercase(),
            Uppercase => input.to_ascii_uppercase(),
            UrlDecode => url_decode(input, false),
            UrlDecodeUni => url_decode(input, true),
            UrlEncode => url_encode(input),
            HtmlEntityDecode => html_entity_decode(input),
            JsDecode => js_decode(input),
            CssDecode => css_decode(input),
            CmdLine => cmd_line(input),
            CompressWhitespace => compress_whitespace(input),
            RemoveWhitespace => input.iter().copied().filter(|&b| !is_space(b)).collect(),
            RemoveNulls => input.iter().copied().filter(|&b| b != 0).collect(),
            ReplaceNulls => input
                .iter()
                .map(|&b| if b == 0 { b' ' } else { b })
                .collect(),
            RemoveComments => remove_comments(input),
            RemoveCommentsChar => remove_comment_chars(input),
            ReplaceComments => replace_comments(input),
            NormalizePath => normalize_path(input),
            NormalizePathWin => {
                let slashed: Vec<u8> = input
                    .iter()
                    .map(|&b| if b == b'\\' { b'/' } else { b })
                    .collect();
                normalize_path(&slashed)
            }
            Utf8ToUnicode => utf8_to_unicode(input),
            EscapeSeqDecode => escape_seq_decode(input),
            Base64Decode => base64_decode(input, false),
            Base64DecodeExt => base64_decode(input, true),
            Base64Encode => base64_encode(input),
            HexEncode => hex_encode(input),
            HexDecode => hex_decode(input),
            Length => input.len().to_string().into_bytes(),
            Sha1 => sha1(input).to_vec(),
            Trim => trim_right(trim_left(input)).to_vec(),
            TrimLeft => trim_left(input).to_vec(),
            TrimRight => trim_right(input).to_vec(),
        }
    }
}

const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
}

const URL_DECODE: [bool; 256] = byte_set(b"%+");
const SPACE: [bool; 256] = byte_set(b" \t\n\r\x0b\x0c\xa0");
const COMMENT: [bool; 256] = byte_set(b"/*-#<>");
const PATH_WIN: [bool; 256] = byte_set(b".\\");
const CMD_LINE: [bool; 256] = byte_set(b"\\\"'^,;\t\n\r\x0b\x0c");

/// C `isspace` plus the non-breaking space (0xa0), which ModSecurity's whitespace
/// transformations also treat as whitespace.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_pair(input: &[u8], at: usize) -> Option<u8> {
    let hi = hex_value(*input.get(at)?)?;
    let lo = hex_value(*input.get(at + 1)?)?;
    Some(hi << 4 | lo)
}

/// A 16-bit code point from `%uHHHH` / `\uHHHH` as one byte, as ModSecurity does without a
/// unicode map: full-width ASCII (U+FF01..U+FF5E) becomes its ASCII twin (so `％ｓｃｒｉｐｔ`
/// can't dodge an ASCII rule), anything else keeps its low byte.
fn unicode_to_byte(code: u32) -> u8 {
    if (0xff01..=0xff5e).contains(&code) {
        (code - 0xfee0) as u8
    } else {
        (code & 0xff) as u8
    }
}

fn hex_u16(input: &[u8], at: usize) -> Option<u32> {
    let digits = input.get(at..at + 4)?;
    let mut value = 0u32;
    for &d in digits {
        value = value << 4 | u32::from(hex_value(d)?);
    }
    Some(value)
}

/// `%XX` and `+`; with `uni`, also `%uHHHH`. Invalid sequences are kept as they are.
pub fn url_decode(input: &[u8], uni: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if uni
                && matches!(input.get(i + 1), Some(b'u' | b'U'))
                && let Some(code) = hex_u16(input, i + 2)
            {
                out.push(unicode_to_byte(code));
                i += 6;
                continue;
            }
            if let Some(v) = hex_pair(input, i + 1) {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(b);
        } else if b == b'+' {
            out.push(b' ');
        } else {
            out.push(b);
        }
        i += 1;
    }
    out
}

fn url_encode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for &b in input {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{b:02x}").as_bytes()),
        }
    }
    out
}

/// `&#DDD;`, `&#xHH;` and `&quot; &amp; &lt; &gt; &nbsp;`, the `;` optional; numeric
/// entities become one byte (the code point's low byte), as in ModSecurity.
fn html_entity_decode(input: &[u8]) -> Vec<u8> {
    const NAMED: [(&[u8], u8); 5] = [
        (b"quot", b'"'),
        (b"amp", b'&'),
        (b"lt", b'<'),
        (b"gt", b'>'),
        (b"nbsp", 0xa0),
    ];
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    'outer: while i < input.len() {
        if input[i] == b'&' {
            let rest = &input[i + 1..];
            if rest.first() == Some(&b'#') {
                let (hex, start) = match rest.get(1) {
                    Some(b'x' | b'X') => (true, 2),
                    _ => (false, 1),
                };
                let digits = rest[start..]
                    .iter()
                    .take_while(|b| {
                        if hex {
                            b.is_ascii_hexdigit()
                        } else {
                            b.is_ascii_digit()
                        }
                    })
                    .count();
                if digits > 0 {
                    let mut value: u32 = 0;
                    for &d in &rest[start..start + digits] {
                        let digit = u32::from(hex_value(d).unwrap_or(0));
                        value = value
                            .saturating_mul(if hex { 16 } else { 10 })
                            .saturating_add(digit);
                    }
                    out.push((value & 0xff) as u8);
                    i += 1 + start + digits;
                    if input.get(i) == Some(&b';') {
                        i += 1;
                    }
                    continue;
                }
            } else {
                for (name, byte) in NAMED {
                    if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name) {
                        out.push(byte);
                        i += 1 + name.len();
                        if input.get(i) == Some(&b';') {
                            i += 1;
                        }
                        continue 'outer;
                    }
                }
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// JavaScript escapes: `\uHHHH`, `\xHH`, octal `\OOO`, `\b \f \n \r \t \v \a` and
/// `\<any>` for the character itself.
fn js_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] != b'\\' || i + 1 >= input.len() {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let next = input[i + 1];
        if next == b'u'
            && let Some(code) = hex_u16(input, i + 2)
        {
            out.push(unicode_to_byte(code));
            i += 6;
        } else if next == b'x'
            && let Some(v) = hex_pair(input, i + 2)
        {
            out.push(v);
            i += 4;
        } else if (b'0'..=b'7').contains(&next) {
            let (value, used) = octal(&input[i + 1..]);
            out.push(value);
            i += 1 + used;
        } else {
            out.push(match next {
                b'a' => 0x07,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 0x0b,
                other => other,
            });
            i += 2;
        }
    }
    out
}

/// Up to three octal digits, at most 0o377 (a fourth digit that would overflow a byte
/// is left for the next character).
fn octal(digits: &[u8]) -> (u8, usize) {
    let mut value: u16 = 0;
    let mut used = 0;
    for &d in digits.iter().take(3) {
        if !(b'0'..=b'7').contains(&d) {
            break;
        }
        let next = value * 8 + u16::from(d - b'0');
        if next > 0o377 {
            break;
        }
        value = next;
        used += 1;
    }
    (value as u8, used)
}

/// CSS 2 escapes: `\` + 1 to 6 hex digits (one following whitespace is part of the
/// escape), `\` + newline removed, `\` + other character is that character.
fn css_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] != b'\\' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let Some(&next) = input.get(i + 1) else {
            // A trailing backslash escapes nothing and is dropped.
            i += 1;
            continue;
        };
        let digits = input[i + 1..]
            .iter()
            .take(6)
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if digits > 0 {
            let mut value = 0u32;
            for &d in &input[i + 1..i + 1 + digits] {
                value = value << 4 | u32::from(hex_value(d).unwrap_or(0));
            }
            out.push(unicode_to_byte(value));
            i += 1 + digits;
            if input.get(i).is_some_and(|&b| is_space(b) && b != 0xa0) {
                i += 1;
            }
        } else if next == b'\n' {
            i += 2;
        } else {
            out.push(next);
            i += 2;
        }
    }
    out
}

/// Defeats shell obfuscation (`c^md`, `"c"at`, `/bin//sh ,-c`): drops `\ " ' ^`, turns
/// `,` `;` and whitespace runs into one space, drops spaces before `/` and `(`, and lowercases.
fn cmd_line(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut in_space = false;
    for &b in input {
        match b {
            b'\\' | b'"' | b'\'' | b'^' => {}
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | b',' | b';' => {
                if !in_space {
                    out.push(b' ');
                    in_space = true;
                }
            }
            b'/' | b'(' => {
                if in_space {
                    out.pop();
                }
                in_space = false;
                out.push(b);
            }
            _ => {
                in_space = false;
                out.push(b.to_ascii_lowercase());
            }
        }
    }
    out
}

fn compress_whitespace(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut in_space = false;
    for &b in input {
        if is_space(b) {
            if !in_space {
                out.push(b' ');
            }
            in_space = true;
        } else {
            out.push(b);
            in_space = false;
        }
    }
    out
}

/// Removes `/* */` and `<!-- -->` comments (an unterminated one runs to the end) and
/// everything from `--` or `#` on, as ModSecurity's `removeComments`.
fn remove_comments(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let mut closing: Option<&[u8]> = None;
    while i < input.len() {
        let rest = &input[i..];
        if let Some(end) = closing {
            if rest.starts_with(end) {
                i += end.len();
                closing = None;
            } else {
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            closing = Some(b"*/");
            i += 2;
        } else if rest.starts_with(b"<!--") {
            closing = Some(b"-->");
            i += 4;
        } else if rest.starts_with(b"--") || rest[0] == b'#' {
            break;
        } else {
            out.push(rest[0]);
            i += 1;
        }
    }
    out
}

fn remove_comment_chars(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let rest = &input[i..];
        if rest.starts_with(b"/*") || rest.starts_with(b"*/") || rest.starts_with(b"--") {
            i += 2;
        } else if rest.starts_with(b"<!--") {
            i += 4;
        } else if rest.starts_with(b"-->") {
            i += 3;
        } else if rest[0] == b'#' {
            i += 1;
        } else {
            out.push(rest[0]);
            i += 1;
        }
    }
    out
}

/// Each `/* ... */` (or unterminated `/* ...`) becomes one space: `UNION/**/SELECT`
/// reads as `UNION SELECT`.
fn replace_comments(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i..].starts_with(b"/*") {
            out.push(b' ');
            match input[i + 2..].windows(2).position(|w| w == b"*/") {
                Some(p) => i += 2 + p + 2,
                None => break,
            }
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    out
}

/// Resolves `.` and `..` segments and collapses repeated slashes. `..` above the root of
/// an absolute path is dropped; leading `..` of a relative path is kept.
fn normalize_path(input: &[u8]) -> Vec<u8> {
    if input.is_empty() {
        return Vec::new();
    }
    let absolute = input[0] == b'/';
    let segments: Vec<&[u8]> = input.split(|&b| b == b'/').collect();
    let last = segments.last().copied().unwrap_or_default();
    let trailing = input.len() > 1 && (last.is_empty() || last == b"." || last == b"..");
    let mut stack: Vec<&[u8]> = Vec::new();
    for segment in segments {
        match segment {
            b"" | b"." => {}
            b".." => {
                if stack.last().is_some_and(|s| *s != b"..") {
                    stack.pop();
                } else if !absolute {
                    stack.push(segment);
                }
            }
            _ => stack.push(segment),
        }
    }
    let mut out = Vec::with_capacity(input.len());
    if absolute {
        out.push(b'/');
    }
    for (n, segment) in stack.iter().enumerate() {
        if n > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(segment);
    }
    if trailing && !stack.is_empty() {
        out.push(b'/');
    }
    out
}

/// Every multi-byte UTF-8 sequence becomes `%uHHHH` (its code point in lowercase hex, at
/// least four digits); ASCII is kept. As libmodsecurity 3.0.9 does it
/// (`utf8_to_unicode.cc`, what CRS is tested with): a sequence is read by its lead byte
/// and continuation bytes only, so an overlong form (`\xc0\xaf`, a `/`) or a surrogate is
/// decoded too, and its lead byte is then written after the `%u`; a lead byte whose
/// continuation bytes are missing is dropped; any other byte is kept.
fn utf8_to_unicode(input: &[u8]) -> Vec<u8> {
    let continuation = |i: usize| input.get(i).is_some_and(|&b| b & 0xC0 == 0x80);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        let len = match c {
            0x00..=0x7F => 1,
            _ if c & 0xE0 == 0xC0 => 2,
            _ if c & 0xF0 == 0xE0 => 3,
            _ if c & 0xF8 == 0xF0 => 4,
            _ => 1,
        };
        if len == 1 {
            out.push(c);
            i += 1;
            continue;
        }
        if c >= 0xF5 {
            out.push(c);
        }
        if !(1..len).all(|k| continuation(i + k)) {
            i += 1;
            continue;
        }
        let lead = u32::from(c) & (0x7F >> len);
        let d = input[i + 1..i + len]
            .iter()
            .fold(lead, |d, &b| (d << 6) | u32::from(b & 0x3F));
        out.extend_from_slice(format!("%u{d:04x}").as_bytes());
        let overlong = d < [0, 0, 0x80, 0x800, 0x10000][len];
        if (0xD800..=0xDFFF).contains(&d) || overlong {
            out.push(c);
        }
        i += len;
    }
    out
}

/// ANSI C escapes: `\a \b \f \n \r \t \v \\ \? \' \"`, `\xHH` and `\OOO`; an unknown
/// escape is kept as written.
fn escape_seq_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] != b'\\' || i + 1 >= input.len() {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let next = input[i + 1];
        let simple = match next {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' | b'?' | b'\'' | b'"' => Some(next),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            i += 2;
        } else if next == b'x'
            && let Some(v) = hex_pair(input, i + 2)
        {
            out.push(v);
            i += 4;
        } else if (b'0'..=b'7').contains(&next) {
            let (value, used) = octal(&input[i + 1..]);
            out.push(value);
            i += 1 + used;
        } else {
            out.extend_from_slice(&input[i..i + 2]);
            i += 2;
        }
    }
    out
}

fn base64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Standard (and URL-safe) base64. `base64Decode` stops at the first character outside
/// the alphabet, as ModSecurity's decoder does; `base64DecodeExt` skips such characters.
fn base64_decode(input: &[u8], skip_invalid: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in input {
        let Some(v) = base64_value(b) else {
            if skip_invalid && b != b'=' {
                continue;
            }
            break;
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn base64_encode(input: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk.len();
        let v = u32::from(chunk[0]) << 16
            | u32::from(*chunk.get(1).unwrap_or(&0)) << 8
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= n {
                out.push(ALPHABET[(v >> (18 - 6 * k) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

fn hex_encode(input: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(input.len() * 2);
    for &b in input {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
    out
}

/// Pairs of hex digits; characters that do not form a pair are skipped.
fn hex_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 2);
    let mut i = 0;
    while i < input.len() {
        if let Some(v) = hex_pair(input, i) {
            out.push(v);
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}

fn trim_left(input: &[u8]) -> &[u8] {
    let start = input
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(input.len());
    &input[start..]
}

fn trim_right(input: &[u8]) -> &[u8] {
    let end = input
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(0, |p| p + 1);
    &input[..end]
}

/// SHA-1 (FIPS 180-4). CRS hashes values with it only to compare them, so a small local
/// implementation saves a dependency.
pub fn sha1(input: &[u8]) -> [u8; 20] {
    // CRS hashes the User-Agent (901318) in every request, and a client sends the same
    // one each time: the last short input's digest is kept (about 4,500 instructions per
    // request otherwise).
    thread_local! {
        static LAST: std::cell::RefCell<Option<(Vec<u8>, [u8; 20])>> =
            const { std::cell::RefCell::new(None) };
    }
    const KEPT: usize = 512;
    if input.len() > KEPT {
        return sha1_of(input);
    }
    LAST.with_borrow_mut(|last| match last {
        Some((kept, digest)) if kept.as_slice() == input => *digest,
        _ => {
            let digest = sha1_of(input);
            match last {
                Some((kept, d)) => {
                    kept.clear();
                    kept.extend_from_slice(input);
                    *d = digest;
                }
                None => *last = Some((input.to_vec(), digest)),
            }
            digest
        }
    })
}

fn sha1_of(input: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut message = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 80];
        for (t, word) in block.chunks(4).enumerate() {
            w[t] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for t in 16..80 {
            w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (t, &wt) in w.iter().enumerate() {
            let (f, k) = match t {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wt);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        for (slot, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *slot = slot.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Applies a list of transformations, copying only when one of them changes the value.
pub fn apply_all<'a>(transforms: &[Transform], input: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    apply_all_from(transforms, input, None)
}

/// [`apply_all`] with the input's [`Features`] already known. The value is summarised
/// once and again only after a transformation changed it, rather than scanned by every
/// transformation of the list; a transformation whose output equals its input leaves the
/// value borrowed.
pub fn apply_all_with<'a>(
    transforms: &[Transform],
    input: &'a [u8],
    features: Features,
) -> std::borrow::Cow<'a, [u8]> {
    apply_all_from(transforms, input, Some(features))
}

/// [`apply_all`] with the input's [`Features`] if known. A value is summarised only when
/// a transformation is to be tested against it: not for a transformation that rewrites
/// every value (`t:length` over a prompt), nor after the last one.
pub(crate) fn apply_all_from<'a>(
    transforms: &[Transform],
    input: &'a [u8],
    mut features: Option<Features>,
) -> std::borrow::Cow<'a, [u8]> {
    let mut value = std::borrow::Cow::Borrowed(input);
    for &t in transforms {
        if !t.rewrites_all()
            && features
                .get_or_insert_with(|| Features::of(&value))
                .leaves_unchanged(t)
        {
            continue;
        }
        let next = t.apply(&value);
        if next != *value {
            features = None;
            value = std::borrow::Cow::Owned(next);
        }
    }
    value
}

/// What [`Transform::leaves_unchanged`] looks at, gathered in one pass over a value: the
/// bytes it holds and the few byte pairs some transformations react to. With it, whether
/// each transformation of each list would change the value is a bit test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    bytes: [u64; 4],
    /// `//` occurs.
    slash_slash: bool,
    /// `/*` occurs.
    slash_star: bool,
    /// A space followed by a space, `/` or `(` (what `cmdLine` rewrites).
    space_cmd: bool,
    /// A space followed by any whitespace (what `compressWhitespace` squeezes).
    space_space: bool,
    first_space: bool,
    last_space: bool,
    /// The value is `.` or `..` (a path of one segment that normalising removes).
    dots: bool,
}

impl Features {
    /// Summarises `input`.
    pub fn of(input: &[u8]) -> Features {
        if input.len() < WORDWISE_FROM {
            return Features::bytewise(input);
        }
        // A long value (a request body, a message): the bytes it holds marked in a table
        // (one store per byte) and the table folded into the bit set, then the byte pairs
        // looked for eight at a time; about a third of the instructions of
        // [`Features::bytewise`].
        let mut seen = [0u8; 256];
        let mut chunks = input.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            for k in 0..8 {
                seen[usize::from((w >> (8 * k)) as u8)] = 1;
            }
        }
        for &b in chunks.remainder() {
            seen[usize::from(b)] = 1;
        }
        let mut f = Features {
            first_space: input.first().is_some_and(|&b| is_space(b)),
            last_space: input.last().is_some_and(|&b| is_space(b)),
            dots: false,
            ..Features::default()
        };
        for (word, marks) in f.bytes.iter_mut().zip(seen.chunks_exact(64)) {
            for (k, m) in marks.chunks_exact(8).enumerate() {
                let m = u64::from_le_bytes([m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]]);
                // Bytes of 0 or 1: their low bits gathered into the top byte.
                *word |= (m.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * k);
            }
        }
        let slash = seen[usize::from(b'/')] != 0;
        let space = seen[usize::from(b' ')] != 0;
        if !slash && !space {
            return f;
        }
        // Bytes other than a space that may follow one in a pair that counts: without
        // any, only two spaces in a row need looking for.
        let followers = [b'/', b'(', b'\t', b'\n', 0x0b, 0x0c, b'\r', 0xa0]
            .iter()
            .any(|&b| seen[usize::from(b)] != 0);
        let mut i = 0;
        while i + 8 < input.len() {
            let at = |i: usize| {
                let c = &input[i..i + 8];
                u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
            };
            // Each byte of `w` and the byte after it, in `next`.
            let (w, next) = (at(i), at(i + 1));
            let mut pair = 0;
            if space {
                let mut after = bytes_equal(next, b' ');
                if followers {
                    after |= bytes_equal(next, b'/')
                        | bytes_equal(next, b'(')
                        | bytes_equal(next, 0xa0)
                        | bytes_below(next, 14);
                }
                pair |= bytes_equal(w, b' ') & after;
            }
            if slash {
                pair |= bytes_equal(w, b'/') & (bytes_equal(next, b'/') | bytes_equal(next, b'*'));
            }
            if pair != 0 {
                f.pairs(&input[i..i + 9]);
            }
            i += 8;
        }
        f.pairs(&input[i..]);
        f
    }

    /// [`Features::of`] a byte at a time: for short values, where the table would cost
    /// more than it saves.
    fn bytewise(input: &[u8]) -> Features {
        let mut f = Features {
            first_space: input.first().is_some_and(|&b| is_space(b)),
            last_space: input.last().is_some_and(|&b| is_space(b)),
            dots: input == b"." || input == b"..",
            ..Features::default()
        };
        for &b in input {
            f.bytes[usize::from(b >> 6)] |= 1 << (b & 63);
        }
        f.pairs(input);
        f
    }

    /// Records the byte pairs of `input` that some transformations react to.
    fn pairs(&mut self, input: &[u8]) {
        let mut previous = 0u8;
        for &b in input {
            match previous {
                b'/' => {
                    self.slash_slash |= b == b'/';
                    self.slash_star |= b == b'*';
                }
                b' ' => {
                    self.space_cmd |= matches!(b, b' ' | b'/' | b'(');
                    self.space_space |= is_space(b);
                }
                _ => {}
            }
            previous = b;
        }
    }

    fn has(&self, b: u8) -> bool {
        self.bytes[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    fn any(&self, set: &[u64; 4]) -> bool {
        self.bytes.iter().zip(set).any(|(a, b)| a & b != 0)
    }

    /// Exactly [`Transform::leaves_unchanged`] of the value summarised (a property test
    /// holds them together).
    pub fn leaves_unchanged(&self, t: Transform) -> bool {
        use Transform::*;
        match t {
            Lowercase => !self.any(&UPPER_BITS),
            Uppercase => !self.any(&LOWER_BITS),
            CmdLine => !self.any(&UPPER_BITS) && self.leaves_unchanged_but_case(CmdLine),
            t => self.leaves_unchanged_but_case(t),
        }
    }

    /// Whether `t` leaves the value unchanged but for ASCII case: `lowercase`,
    /// `uppercase` and the lowercasing of `cmdLine` aside, every test looks at bytes that
    /// are no letters, so it says the same of the value in any case.
    pub fn leaves_unchanged_but_case(&self, t: Transform) -> bool {
        use Transform::*;
        match t {
            Lowercase | Uppercase => true,
            UrlDecode | UrlDecodeUni => !self.any(&URL_DECODE_BITS),
            HtmlEntityDecode => !self.has(b'&'),
            JsDecode | CssDecode | EscapeSeqDecode => !self.has(b'\\'),
            RemoveNulls | ReplaceNulls => !self.has(0),
            RemoveWhitespace => !self.any(&SPACE_BITS),
            CompressWhitespace => !self.any(&SPACE_BUT_BLANK_BITS) && !self.space_space,
            Utf8ToUnicode => self.bytes[2] == 0 && self.bytes[3] == 0,
            RemoveComments | RemoveCommentsChar => !self.any(&COMMENT_BITS),
            ReplaceComments => !self.slash_star,
            // A value without separators is one segment, kept unless it is `.` or `..`
            // (names such as `json.messages.0.content`).
            NormalizePath => {
                (!self.has(b'.') && !self.slash_slash) || (!self.has(b'/') && !self.dots)
            }
            NormalizePathWin => {
                (!self.any(&PATH_WIN_BITS) && !self.slash_slash)
                    || (!self.has(b'/') && !self.has(b'\\') && !self.dots)
            }
            CmdLine => !self.any(&CMD_LINE_BITS) && !self.space_cmd,
            Trim => !self.first_space && !self.last_space,
            TrimLeft => !self.first_space,
            TrimRight => !self.last_space,
            UrlEncode | Base64Decode | Base64DecodeExt | Base64Encode | HexEncode | HexDecode
            | Length | Sha1 => false,
        }
    }

    /// The transformations (one bit per [`Transform`], see [`Transform::bit`]) that may
    /// change the value; `but_case`: ignoring changes of ASCII case alone.
    pub fn changing(&self, but_case: bool) -> u32 {
        let mut mask = 0;
        for &t in ALL {
            let unchanged = if but_case {
                self.leaves_unchanged_but_case(t)
            } else {
                self.leaves_unchanged(t)
            };
            if !unchanged {
                mask |= t.bit();
            }
        }
        mask
    }
}

/// [`Features::of`] switches from a byte at a time to the table at this length.
const WORDWISE_FROM: usize = 32;

const LOW_BITS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that equals `b` (exactly: no carries between bytes).
fn bytes_equal(w: u64, b: u8) -> u64 {
    let x = w ^ (u64::from(b) * 0x0101_0101_0101_0101);
    !(((x & LOW_BITS) + LOW_BITS) | x) & HIGH_BITS
}

/// The high bit of each byte of `w` below `n` (at most 128).
fn bytes_below(w: u64, n: u8) -> u64 {
    !((w & LOW_BITS) + u64::from(0x80 - n) * 0x0101_0101_0101_0101) & !w & HIGH_BITS
}

const fn bits(table: &[bool; 256]) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut i = 0;
    while i < 256 {
        if table[i] {
            out[i / 64] |= 1 << (i % 64);
        }
        i += 1;
    }
    out
}

const fn range_bits(lo: u8, hi: u8) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut i = lo as usize;
    while i <= hi as usize {
        out[i / 64] |= 1 << (i % 64);
        i += 1;
    }
    out
}

const UPPER_BITS: [u64; 4] = range_bits(b'A', b'Z');
const LOWER_BITS: [u64; 4] = range_bits(b'a', b'z');
// The byte sets above as bits, computed when compiling.
const URL_DECODE_BITS: [u64; 4] = bits(&URL_DECODE);
const SPACE_BITS: [u64; 4] = bits(&SPACE);
/// Whitespace `compressWhitespace` replaces even alone (all but the space).
const SPACE_BUT_BLANK_BITS: [u64; 4] = bits(&byte_set(b"\t\n\r\x0b\x0c\xa0"));
const COMMENT_BITS: [u64; 4] = bits(&COMMENT);
const PATH_WIN_BITS: [u64; 4] = bits(&PATH_WIN);
const CMD_LINE_BITS: [u64; 4] = bits(&CMD_LINE);

/// Every transformation, for [`Features::changing`].
pub const ALL: &[Transform] = {
    use Transform::*;
    &[
        Lowercase,
        Uppercase,
        UrlDecode,
        UrlDecodeUni,
        UrlEncode,
        HtmlEntityDecode,
        JsDecode,
        CssDecode,
        CmdLine,
        CompressWhitespace,
        RemoveWhitespace,
        RemoveNulls,
        ReplaceNulls,
        RemoveComments,
        RemoveCommentsChar,
        ReplaceComments,
        NormalizePath,
        NormalizePathWin,
        Utf8ToUnicode,
        EscapeSeqDecode,
        Base64Decode,
        Base64DecodeExt,
        Base64Encode,
        HexEncode,
        HexDecode,
        Length,
        Sha1,
        Trim,
        TrimLeft,
        TrimRight,
    ]
};

impl Transform {
    /// This transformation's bit in a mask of transformations.
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// The bits of a list of transformations.
    pub fn mask(list: &[Transform]) -> u32 {
        list.iter().fold(0, |m, t| m | t.bit())
    }
}

#[cfg(test)]
mod tests {
    use super::{Features, sha1, sha1_of};
    use proptest::prelude::*;

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        let interesting = prop::sample::select(vec![
            b'a', b'Z', b' ', b' ', b'/', b'*', b'(', b'.', b'\t', b'\n', 0x0b, 0x0c, b'\r', 0xa0,
            0, 0x80, 0xff, b'%', b'\\',
        ]);
        prop::collection::vec(prop_oneof![interesting, any::<u8>()], 0..300)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// The table and the pairs eight at a time say what a byte at a time says.
        #[test]
        fn wordwise_features_are_bytewise_features(input in bytes()) {
            prop_assert_eq!(Features::of(&input), Features::bytewise(&input));
        }

        /// The kept digest is the digest of the input asked for, whether it repeats the
        /// last one, differs from it, or is too long to keep.
        #[test]
        fn kept_sha1_digests_are_the_digests(
            inputs in prop::collection::vec(
                prop_oneof![bytes(), Just(b"OpenAI/Python 1.54.0".to_vec()), Just(vec![b'a'; 600])],
                1..6,
            )
        ) {
            for input in &inputs {
                prop_assert_eq!(sha1(input), sha1_of(input));
                prop_assert_eq!(sha1(input), sha1_of(input));
            }
        }
    }
}
