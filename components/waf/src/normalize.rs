//! Canonical form the rules match against, so case, spacing and SQL comments cannot hide a payload.

/// Lowercases, turns `/* ... */` comments into a space (keeping the body of MySQL's executable
/// `/*! ... */` comments, which the database runs), and collapses whitespace runs to one space.
/// An unterminated `/*` is kept, since it is itself a signal after a quote.
pub fn normalize(input: &str) -> String {
    let lowered = input.to_lowercase();
    let without_comments = strip_block_comments(&lowered);
    collapse_whitespace(&without_comments)
}

fn strip_block_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        let Some(length) = rest[start + 2..].find("*/") else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push(' ');
        let body = &rest[start + 2..start + 2 + length];
        if let Some(executable) = body.strip_prefix('!') {
            out.push_str(executable.trim_start_matches(|c: char| c.is_ascii_digit()));
            out.push(' ');
        }
        rest = &rest[start + 2 + length + 2..];
    }
    out.push_str(rest);
    out
}

fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn lowercases_and_collapses_whitespace() {
        assert_eq!(normalize("UNION\t\n  SeLeCt"), "union select");
        assert_eq!(normalize("a\u{a0}\u{2003}b"), "a b");
    }

    #[test]
    fn comments_become_spaces() {
        assert_eq!(normalize("UNION/**/SELECT"), "union select");
        assert_eq!(normalize("un/*x*/ion"), "un ion");
    }

    #[test]
    fn executable_comments_keep_their_body() {
        assert_eq!(normalize("/*!50000UNION*/ SELECT"), " union select");
    }

    #[test]
    fn unterminated_comment_is_kept() {
        assert_eq!(normalize("admin'/*"), "admin'/*");
    }

    #[test]
    fn keeps_null_bytes_for_the_null_byte_rule() {
        assert_eq!(normalize("a\0b"), "a\0b");
    }
}
