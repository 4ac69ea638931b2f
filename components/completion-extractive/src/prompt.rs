//! Reads the sources back out of chat's grounded system prompt. The format is the
//! contract in `components/chat/PROMPT.md`:
//!
//! ```text
//! Sources:
//! [doc1] <title> (<source>)
//! <content>
//!
//! [doc2] <title> (<source>)
//! <content>
//! ```
//!
//! or `Sources:` followed by `(none)`. `chat` removes blank lines from passages, but this
//! parser does not rely on that: a source's content runs until the next marker in sequence.

/// One numbered source of the grounded prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The citation marker without brackets, e.g. `doc1`.
    pub marker: String,
    pub title: String,
    /// Where the passage came from: a URL or a corpus-relative path; empty if not given.
    pub location: String,
    pub content: String,
}

/// The sources listed after the `Sources:` line, in order. Markers must count up from
/// `[doc1]`: a line that merely looks like a marker inside a passage (say `[doc7]` in the
/// text of doc2) stays part of that passage instead of starting a new source.
pub fn parse_sources(system_prompt: &str) -> Vec<Source> {
    let mut lines = system_prompt.lines();
    if !lines.any(|line| line.trim() == "Sources:") {
        return Vec::new();
    }
    let mut sources: Vec<Source> = Vec::new();
    let mut content: Vec<&str> = Vec::new();
    for line in lines {
        let next_marker = format!("doc{}", sources.len() + 1);
        if let Some(header) = header_of(line, &next_marker) {
            if let Some(previous) = sources.last_mut() {
                previous.content = join_trimmed(&content);
            }
            content.clear();
            let (title, location) = split_title(header);
            sources.push(Source {
                marker: next_marker,
                title: title.to_string(),
                location: location.to_string(),
                content: String::new(),
            });
        } else if !sources.is_empty() {
            content.push(line);
        }
    }
    if let Some(last) = sources.last_mut() {
        last.content = join_trimmed(&content);
    }
    sources
}

/// The rest of `line` if it starts with `[marker]`.
fn header_of<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let rest = line
        .strip_prefix('[')?
        .strip_prefix(marker)?
        .strip_prefix(']')?;
    if rest.is_empty() || rest.starts_with(' ') {
        Some(rest.trim())
    } else {
        None
    }
}

/// `Title (data/file.md)` -> (`Title`, `data/file.md`).
fn split_title(header: &str) -> (&str, &str) {
    if let Some(without_paren) = header.strip_suffix(')')
        && let Some(open) = without_paren.rfind(" (")
    {
        return (without_paren[..open].trim(), &without_paren[open + 2..]);
    }
    (header, "")
}

fn join_trimmed(lines: &[&str]) -> String {
    lines.join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str = "You are chatgate, an assistant that answers only from the sources below. Cite every fact with its source marker, like [doc1]. If the sources do not contain the answer, say that you could not find it in the documents.\n\nSources:\n[doc1] Application Gateway > Modes (data/application-gateway-waf.md)\nDetection mode only logs.\n\nPrevention mode blocks.\n\n[doc2] Rate limits (https://example.com/limits)\nHonour Retry-After.\n";

    #[test]
    fn reads_numbered_sources_with_title_location_and_content() {
        let sources = parse_sources(PROMPT);
        assert_eq!(
            sources,
            vec![
                Source {
                    marker: "doc1".into(),
                    title: "Application Gateway > Modes".into(),
                    location: "data/application-gateway-waf.md".into(),
                    content: "Detection mode only logs.\n\nPrevention mode blocks.".into(),
                },
                Source {
                    marker: "doc2".into(),
                    title: "Rate limits".into(),
                    location: "https://example.com/limits".into(),
                    content: "Honour Retry-After.".into(),
                },
            ]
        );
    }

    #[test]
    fn the_marker_example_in_the_instructions_is_not_a_source() {
        let instructions_only = "Cite every fact with its source marker, like [doc1].\n";
        assert!(parse_sources(instructions_only).is_empty());
    }

    #[test]
    fn reads_the_example_of_the_prompt_contract() {
        let prompt = "You are chatgate, an assistant that answers only from the sources below. Cite every fact with its source marker, like [doc1]. If the sources do not contain the answer, say that you could not find it in the documents.\n\nSources:\n[doc1] Spin (docs/spin.md)\nSpin runs WebAssembly.\nIt is fast.\n\n[doc2] Azure (https://learn.microsoft.com/azure)\nAzure hosts it.";
        let sources = parse_sources(prompt);
        assert_eq!(sources.len(), 2);
        assert_eq!(
            (sources[0].title.as_str(), sources[0].location.as_str()),
            ("Spin", "docs/spin.md")
        );
        assert_eq!(sources[0].content, "Spin runs WebAssembly.\nIt is fast.");
        assert_eq!(sources[1].location, "https://learn.microsoft.com/azure");
        assert_eq!(sources[1].content, "Azure hosts it.");
    }

    #[test]
    fn none_means_no_sources() {
        assert!(parse_sources("Instructions.\n\nSources:\n(none)\n").is_empty());
    }

    #[test]
    fn out_of_sequence_markers_stay_in_the_passage() {
        let prompt = "Sources:\n[doc1] A (a.md)\nfirst\n[doc3] looks like a marker\n[doc2] B (b.md)\nsecond\n";
        let sources = parse_sources(prompt);
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].content, "first\n[doc3] looks like a marker");
        assert_eq!(sources[1].content, "second");
    }

    #[test]
    fn titles_without_a_location_are_kept_whole() {
        let sources = parse_sources("Sources:\n[doc1] Plain title\ntext\n");
        assert_eq!(sources[0].title, "Plain title");
        assert_eq!(sources[0].location, "");
        let sources = parse_sources("Sources:\n[doc1] Title (with note) (data/x.md)\ntext\n");
        assert_eq!(sources[0].title, "Title (with note)");
        assert_eq!(sources[0].location, "data/x.md");
    }
}
