//! Splits passage text (Markdown) into sentences that can be quoted on their own.

/// Sentences of `content`, in order. Paragraphs and list items always end a sentence;
/// headings and fenced code are skipped because they do not read as answers.
pub fn split_sentences(content: &str) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    let mut in_code_fence = false;
    for line in content.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_code_fence = !in_code_fence;
            flush(&mut block, &mut sentences);
            continue;
        }
        if in_code_fence {
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            flush(&mut block, &mut sentences);
        } else if let Some(item) = list_item_text(trimmed) {
            flush(&mut block, &mut sentences);
            block.push(item);
        } else {
            block.push(trimmed);
        }
    }
    flush(&mut block, &mut sentences);
    sentences
}

fn flush(block: &mut Vec<&str>, sentences: &mut Vec<String>) {
    if block.is_empty() {
        return;
    }
    let text = block.join(" ");
    block.clear();
    sentences.extend(split_block(&text));
}

/// The text of a `- item`, `* item`, `+ item` or `1. item` line.
fn list_item_text(line: &str) -> Option<&str> {
    if let Some(rest) = line
        .strip_prefix("- ")
        .or_else(|| line.strip_prefix("* "))
        .or_else(|| line.strip_prefix("+ "))
    {
        return Some(rest.trim_start());
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 {
        let rest = &line[digits..];
        if let Some(rest) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return Some(rest.trim_start());
        }
    }
    None
}

/// Splits after `.`, `!` or `?` (plus closing quotes or brackets) when whitespace and then
/// something other than a lowercase letter follows, so "e.g. the" stays in one sentence.
fn split_block(text: &str) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        if matches!(chars[i].1, '.' | '!' | '?') {
            let mut end = i + 1;
            while end < chars.len() && matches!(chars[end].1, '"' | '\'' | ')' | ']' | '”' | '’')
            {
                end += 1;
            }
            let mut next = end;
            while next < chars.len() && chars[next].1.is_whitespace() {
                next += 1;
            }
            let at_boundary = next > end && next < chars.len() && !chars[next].1.is_lowercase();
            if at_boundary {
                push_trimmed(&mut sentences, &text[start..chars[end].0]);
                start = chars[next].0;
                i = next;
                continue;
            }
        }
        i += 1;
    }
    push_trimmed(&mut sentences, &text[start..]);
    sentences
}

fn push_trimmed(sentences: &mut Vec<String>, sentence: &str) {
    let sentence = sentence.trim();
    if !sentence.is_empty() {
        sentences.push(sentence.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_sentence_ends_followed_by_a_new_sentence() {
        assert_eq!(
            split_sentences(
                "The WAF blocks attacks. It returns 403! Why? Because (it said so.) Done"
            ),
            vec![
                "The WAF blocks attacks.",
                "It returns 403!",
                "Why?",
                "Because (it said so.)",
                "Done"
            ]
        );
    }

    #[test]
    fn abbreviations_and_decimals_do_not_end_sentences() {
        assert_eq!(
            split_sentences("Use a filter, e.g. an allow list. Version 3.2 adds rules."),
            vec![
                "Use a filter, e.g. an allow list.",
                "Version 3.2 adds rules."
            ]
        );
    }

    #[test]
    fn wrapped_lines_join_and_paragraphs_separate() {
        assert_eq!(
            split_sentences("First line\ncontinues here\n\nSecond paragraph"),
            vec!["First line continues here", "Second paragraph"]
        );
    }

    #[test]
    fn list_items_are_sentences_without_their_markers() {
        assert_eq!(
            split_sentences(
                "Checks:\n- The alg is allowed.\n* The kid matches\n2. The aud is ours."
            ),
            vec![
                "Checks:",
                "The alg is allowed.",
                "The kid matches",
                "The aud is ours."
            ]
        );
    }

    #[test]
    fn headings_and_code_are_skipped() {
        assert_eq!(
            split_sentences("## Build\nRun it.\n```sh\ncargo build. Then more.\n```\nAfter."),
            vec!["Run it.", "After."]
        );
    }
}
