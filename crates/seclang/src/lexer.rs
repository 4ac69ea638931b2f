//! Splits a SecLang file into directives: comments, `\` line continuations and quoting,
//! as Apache and ModSecurity read configuration files.

use crate::error::{ErrorKind, LoadError, Location};

/// One directive as written: its name and its arguments, quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub at: Location,
    pub name: String,
    pub args: Vec<String>,
}

/// Reads every directive of `text`, which came from `file`.
pub fn directives(file: &str, text: &str) -> Result<Vec<Directive>, LoadError> {
    let mut out = Vec::new();
    // The directive being assembled from continued lines, and the line it started on.
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if pending.is_none() {
            let trimmed = line.trim();
            // A comment is one physical line even when it ends with `\`: CRS comments out
            // multi-line rules by prefixing every line with `#`.
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
        }
        let (start, mut buffer) = pending.take().unwrap_or((number, String::new()));
        let content = line.trim_end();
        if let Some(continued) = content.strip_suffix('\\') {
            buffer.push_str(continued);
            pending = Some((start, buffer));
            continue;
        }
        buffer.push_str(content);
        out.push(split(file, start, &buffer)?);
    }
    if let Some((start, buffer)) = pending
        && !buffer.trim().is_empty()
    {
        out.push(split(file, start, &buffer)?);
    }
    Ok(out)
}

fn split(file: &str, line: usize, text: &str) -> Result<Directive, LoadError> {
    let at = Location {
        file: file.to_owned(),
        line,
    };
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    // Only `\"` is an escape; every other backslash belongs to the value
                    // (regular expressions are full of them).
                    '\\' if chars.peek() == Some(&'"') => {
                        word.push('"');
                        chars.next();
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => word.push(c),
                }
            }
            if !closed {
                return Err(LoadError {
                    at,
                    kind: ErrorKind::UnterminatedQuote,
                });
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        words.push(word);
    }
    let mut words = words.into_iter();
    let name = words.next().unwrap_or_default();
    Ok(Directive {
        at,
        name,
        args: words.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Directive {
        let mut all = directives("t.conf", text).unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn continuation_lines_join_into_one_directive_at_its_first_line() {
        let d = directives(
            "t.conf",
            "# comment\n\nSecRule ARGS \"@rx a\" \\\n    \"id:1,\\\n    pass\"\n",
        )
        .unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].at.line, 3);
        assert_eq!(d[0].name, "SecRule");
        assert_eq!(d[0].args, ["ARGS", "@rx a", "id:1,    pass"]);
    }

    #[test]
    fn commented_out_continued_rule_is_skipped_line_by_line() {
        let d = directives(
            "t.conf",
            "#SecRule ARGS \"@rx a\" \\\n#    \"id:1\"\nSecMarker X\n",
        )
        .unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].name.as_str(), d[0].at.line), ("SecMarker", 3));
    }

    #[test]
    fn only_escaped_quotes_are_unescaped() {
        let d = one(r#"SecRule ARGS "@rx [\"'\d]\\w" "id:1""#);
        assert_eq!(d.args[1], r#"@rx ["'\d]\\w"#);
    }

    #[test]
    fn unterminated_quote_names_file_and_line() {
        let err = directives("rules/x.conf", "\nSecRule ARGS \"@rx a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "rules/x.conf:2: unterminated quoted string"
        );
    }

    #[test]
    fn crlf_and_bare_words() {
        let d = one("SecRuleRemoveById 1 2-5\r\n");
        assert_eq!(d.args, ["1", "2-5"]);
    }
}
