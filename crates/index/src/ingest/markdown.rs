//! Reads Markdown: front matter, ATX headings, fenced code blocks and paragraphs.

use std::collections::BTreeMap;

use super::outline::{Outline, OutlineBuilder};

pub(super) fn parse(text: &str) -> Outline {
    let lines: Vec<&str> = text.lines().collect();
    let (metadata, body) = match front_matter(&lines) {
        Some((metadata, body_start)) => (metadata, lines.get(body_start..).unwrap_or(&[])),
        None => (BTreeMap::new(), &lines[..]),
    };

    let mut builder = OutlineBuilder::default();
    let mut first_h1 = None;
    let mut open_fence: Option<(Fence, Vec<&str>)> = None;
    for &line in body {
        if let Some((fence, code)) = open_fence.as_mut() {
            code.push(line);
            if fence.is_closed_by(line) {
                builder.code(&code.join("\n"));
                open_fence = None;
            }
        } else if let Some(fence) = Fence::opened_by(line) {
            builder.end_paragraph();
            open_fence = Some((fence, vec![line]));
        } else if let Some((level, heading)) = parse_heading(line) {
            if level == 1 && first_h1.is_none() {
                first_h1 = Some(heading.to_string());
            }
            builder.heading(level, heading.to_string());
        } else if line.trim().is_empty() || is_thematic_break(line) {
            builder.end_paragraph();
        } else {
            builder.line(line.trim_end());
        }
    }
    // An unclosed fence runs to the end of the document, as in CommonMark.
    if let Some((_, code)) = open_fence {
        builder.code(&code.join("\n"));
    }

    let title = metadata
        .get("title")
        .filter(|title| !title.is_empty())
        .cloned()
        .or(first_h1);
    Outline {
        title,
        metadata,
        sections: builder.finish(),
    }
}

/// The `key: value` pairs between a `---` first line and the next `---` (or `...`) line,
/// and the index of the first line after them; `None` when the document does not start
/// with front matter.
///
/// Only flat YAML is understood: keys are lowercased, values trimmed and unquoted, flow
/// lists (`[a, b]`) kept as written and block lists (`- a` lines under an empty value)
/// written the same way. Anything else (comments, nested maps) is ignored.
fn front_matter(lines: &[&str]) -> Option<(BTreeMap<String, String>, usize)> {
    if lines.first()?.trim_end() != "---" {
        return None;
    }
    let end = lines
        .iter()
        .skip(1)
        .position(|line| matches!(line.trim_end(), "---" | "..."))?
        + 1;
    let mut metadata = BTreeMap::new();
    let mut list: Option<(String, Vec<String>)> = None;
    for line in lines.get(1..end).unwrap_or(&[]) {
        if let Some((_, items)) = list.as_mut()
            && let Some(item) = line.trim().strip_prefix("- ")
        {
            items.push(unquote(item.trim()).to_string());
            continue;
        }
        if let Some((key, items)) = list.take()
            && !items.is_empty()
        {
            metadata.insert(key, format!("[{}]", items.join(", ")));
        }
        if line.starts_with([' ', '\t', '#', '-']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().to_lowercase();
        if key.is_empty() {
            continue;
        }
        let value = unquote(value.trim());
        if value.is_empty() {
            list = Some((key, Vec::new()));
        } else {
            metadata.insert(key, value.to_string());
        }
    }
    if let Some((key, items)) = list
        && !items.is_empty()
    {
        metadata.insert(key, format!("[{}]", items.join(", ")));
    }
    Some((metadata, end + 1))
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

/// `(level, text)` of an ATX heading such as `## Rule sets` (up to three spaces of
/// indentation; a closing run of `#` is dropped).
fn parse_heading(line: &str) -> Option<(usize, &str)> {
    let line = strip_indent(line)?;
    let level = line.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    let text = rest.trim();
    let text = match text.trim_end_matches('#') {
        // `## Title ##`: the closing run must follow a space; `## C#` keeps its `#`.
        without if without.is_empty() || without.ends_with([' ', '\t']) => without.trim_end(),
        _ => text,
    };
    (!text.is_empty()).then_some((level, text))
}

/// `line` without up to three spaces of indentation; `None` when indented further (an
/// indented code line, not a heading or fence).
fn strip_indent(line: &str) -> Option<&str> {
    let indent = line.bytes().take_while(|&b| b == b' ').count();
    (indent <= 3).then(|| &line[indent..])
}

/// `---`, `***` or `___` (three or more, spaces allowed) on a line of its own.
fn is_thematic_break(line: &str) -> bool {
    let Some(line) = strip_indent(line) else {
        return false;
    };
    let marks: Vec<char> = line.chars().filter(|c| !c.is_whitespace()).collect();
    marks.len() >= 3
        && matches!(marks[0], '-' | '*' | '_')
        && marks.iter().all(|&mark| mark == marks[0])
}

/// An open fenced code block: its fence character and length.
struct Fence {
    mark: char,
    length: usize,
}

impl Fence {
    fn opened_by(line: &str) -> Option<Fence> {
        let line = strip_indent(line)?;
        let mark = line.chars().next().filter(|c| matches!(c, '`' | '~'))?;
        let length = line.chars().take_while(|&c| c == mark).count();
        // A backtick fence's info string cannot contain backticks (that is inline code).
        let info = &line[length..];
        (length >= 3 && !(mark == '`' && info.contains('`'))).then_some(Fence { mark, length })
    }

    fn is_closed_by(&self, line: &str) -> bool {
        let Some(line) = strip_indent(line) else {
            return false;
        };
        let length = line.chars().take_while(|&c| c == self.mark).count();
        length >= self.length && line[length..].trim().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ChunkingOptions, parse_document};

    /// `(title, text)` of the chunks of Markdown document `path`.
    fn chunks(path: &str, markdown: &str) -> Vec<(String, String)> {
        parse_document(path, markdown.as_bytes(), &ChunkingOptions::default())
            .unwrap()
            .chunks
            .into_iter()
            .map(|chunk| (chunk.title, chunk.text))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(title, text)| (title.to_string(), text.to_string()))
            .collect()
    }

    #[test]
    fn each_section_is_titled_by_its_heading_path_below_the_title() {
        let doc = "# Gateway\n\nIntro text.\n\n## Rules\n\nFirst rule.\n\nSecond rule.\n\n\
                   ### Detail\n\nDeep.\n\n## Modes\n\nDetection.\n";
        assert_eq!(
            chunks("gateway.md", doc),
            pairs(&[
                ("Gateway", "Intro text."),
                ("Gateway > Rules", "First rule.\n\nSecond rule."),
                ("Gateway > Rules > Detail", "Deep."),
                ("Gateway > Modes", "Detection."),
            ])
        );
    }

    #[test]
    fn the_title_is_front_matter_then_the_first_h1_then_the_file_stem() {
        let title = |path: &str, markdown: &str| {
            parse_document(path, markdown.as_bytes(), &ChunkingOptions::default())
                .unwrap()
                .title
        };
        assert_eq!(
            title("a.md", "---\ntitle: Chosen\n---\n# Heading\n\nText.\n"),
            "Chosen"
        );
        assert_eq!(title("a.md", "Lead-in.\n\n# Heading\n\nText.\n"), "Heading");
        assert_eq!(
            title("dir/notes.md", "## Only a section\n\nText.\n"),
            "notes"
        );
        assert_eq!(title("notes.markdown", "Loose text.\n"), "notes");
    }

    #[test]
    fn text_before_any_heading_is_titled_by_the_document_title() {
        assert_eq!(
            chunks("notes.md", "Loose text.\n\n## Part\n\nMore.\n"),
            pairs(&[("notes", "Loose text."), ("notes > Part", "More.")])
        );
        assert_eq!(
            chunks("x.md", "Preface.\n\n# Big Title\n\nBody.\n"),
            pairs(&[("Big Title", "Preface."), ("Big Title", "Body.")])
        );
    }

    #[test]
    fn a_second_h1_or_a_front_matter_title_puts_the_h1_below_the_title() {
        assert_eq!(
            chunks("x.md", "# One\n\nA.\n\n# Two\n\nB.\n\n## Sub\n\nC.\n"),
            pairs(&[
                ("One", "A."),
                ("One > Two", "B."),
                ("One > Two > Sub", "C.")
            ])
        );
        assert_eq!(
            chunks("x.md", "---\ntitle: Guide\n---\n# Setup\n\nA.\n"),
            pairs(&[("Guide > Setup", "A.")])
        );
    }

    #[test]
    fn front_matter_becomes_metadata() {
        let doc = "---\nTitle: \"Key Vault\"\nAuthor: 'Ops team'\ntags: [security, secrets]\n\
                   # a comment\nnested:\n  child: ignored\naliases:\n  - kv\n  - \"vault\"\n\
                   updated: 2024-05-01\n---\nBody.\n";
        let document =
            parse_document("kv.md", doc.as_bytes(), &ChunkingOptions::default()).unwrap();
        let metadata: Vec<(&str, &str)> = document
            .metadata
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            metadata,
            vec![
                ("aliases", "[kv, vault]"),
                ("author", "Ops team"),
                ("tags", "[security, secrets]"),
                ("title", "Key Vault"),
                ("updated", "2024-05-01"),
            ]
        );
        assert_eq!(document.title, "Key Vault");
        assert_eq!(document.chunks[0].text, "Body.");
    }

    #[test]
    fn only_a_closed_block_at_the_very_start_is_front_matter() {
        assert_eq!(
            chunks("a.md", "Intro.\n\n---\nkey: value\n---\n"),
            pairs(&[("a", "Intro.\n\nkey: value")])
        );
        let unclosed = parse_document(
            "a.md",
            b"---\nkey: value\n\nText.\n",
            &ChunkingOptions::default(),
        )
        .unwrap();
        assert!(unclosed.metadata.is_empty());
        assert_eq!(unclosed.chunks[0].text, "key: value\n\nText.");
    }

    #[test]
    fn code_fences_stay_whole_and_hash_lines_inside_are_not_headings() {
        let doc = "# Build\n\nRun:\n```sh\n# not a heading\n\ncargo build\n```\nAfter.\n\n\
                   ~~~\n## nor this\n```\n~~~\n";
        assert_eq!(
            chunks("build.md", doc),
            pairs(&[(
                "Build",
                "Run:\n\n```sh\n# not a heading\n\ncargo build\n```\n\nAfter.\n\n~~~\n## nor this\n```\n~~~"
            )])
        );
    }

    #[test]
    fn a_fence_closes_only_with_its_own_mark_at_least_as_long() {
        let doc = "````md\n```\n# inside\n````\n# Outside\n\nText.\n";
        assert_eq!(
            chunks("f.md", doc),
            pairs(&[
                ("Outside", "````md\n```\n# inside\n````"),
                ("Outside", "Text.")
            ])
        );
    }

    #[test]
    fn an_unclosed_fence_runs_to_the_end() {
        assert_eq!(
            chunks("f.md", "Text.\n\n```\n# code\n\nmore code\n"),
            pairs(&[("f", "Text.\n\n```\n# code\n\nmore code")])
        );
    }

    #[test]
    fn hashtags_empty_and_indented_headings_are_text() {
        assert_eq!(super::parse_heading("#hashtag"), None);
        assert_eq!(super::parse_heading("#"), None);
        assert_eq!(super::parse_heading("####### seven"), None);
        assert_eq!(super::parse_heading("    # indented code"), None);
        assert_eq!(
            super::parse_heading("   ### Indented"),
            Some((3, "Indented"))
        );
        assert_eq!(super::parse_heading("## Closed ##"), Some((2, "Closed")));
        assert_eq!(
            super::parse_heading("## Learning C#"),
            Some((2, "Learning C#"))
        );
    }

    #[test]
    fn lines_of_a_paragraph_keep_their_breaks_and_rules_separate_paragraphs() {
        assert_eq!(
            chunks("l.md", "Steps:\n- one\n- two   \n\n***\nAfter the rule.\n"),
            pairs(&[("l", "Steps:\n- one\n- two\n\nAfter the rule.")])
        );
    }
}
