//! Splits Markdown documents into passages on heading and paragraph boundaries.

/// Sections longer than this are split at paragraph boundaries. A paragraph is never
/// split, so one long paragraph makes one long chunk.
pub const MAX_CHUNK_WORDS: usize = 160;

/// A retrievable passage of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// `<file>#<n>`: the document's path without `data/` and `.md`, then the chunk's
    /// position in that document counted from 0.
    pub id: String,
    /// The heading path above the chunk, outermost first, joined with ` > `.
    pub title: String,
    pub content: String,
    /// The document's corpus-relative path, e.g. `data/application-gateway-waf.md`.
    pub source: String,
}

/// Chunks of the Markdown document at corpus-relative path `source`.
pub fn chunk_document(source: &str, markdown: &str) -> Vec<Chunk> {
    let name = source.strip_prefix("data/").unwrap_or(source);
    let name = name.strip_suffix(".md").unwrap_or(name);
    let mut chunker = Chunker {
        name,
        source,
        headings: Vec::new(),
        paragraph: Vec::new(),
        section: Vec::new(),
        chunks: Vec::new(),
    };
    let mut in_code_fence = false;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_code_fence = !in_code_fence;
            chunker.paragraph.push(line);
            continue;
        }
        if in_code_fence {
            // Blank lines and `#` comments inside code are code, not structure.
            chunker.paragraph.push(line);
        } else if let Some((level, heading)) = parse_heading(line) {
            chunker.end_section();
            chunker.headings.retain(|(outer, _)| *outer < level);
            chunker.headings.push((level, heading.to_string()));
        } else if line.trim().is_empty() {
            chunker.end_paragraph();
        } else {
            chunker.paragraph.push(line);
        }
    }
    chunker.end_section();
    chunker.chunks
}

/// `(level, text)` of an ATX heading such as `## Rule sets`.
fn parse_heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    let text = rest.trim().trim_end_matches('#').trim_end();
    (!text.is_empty()).then_some((level, text))
}

struct Chunker<'a> {
    name: &'a str,
    source: &'a str,
    headings: Vec<(usize, String)>,
    paragraph: Vec<&'a str>,
    section: Vec<String>,
    chunks: Vec<Chunk>,
}

impl Chunker<'_> {
    fn end_paragraph(&mut self) {
        if self.paragraph.is_empty() {
            return;
        }
        let paragraph = self.paragraph.join("\n");
        self.paragraph.clear();
        let section_words: usize = self.section.iter().map(|p| word_count(p)).sum();
        if !self.section.is_empty() && section_words + word_count(&paragraph) > MAX_CHUNK_WORDS {
            self.emit();
        }
        self.section.push(paragraph);
    }

    fn end_section(&mut self) {
        self.end_paragraph();
        self.emit();
    }

    fn emit(&mut self) {
        if self.section.is_empty() {
            return;
        }
        let title = if self.headings.is_empty() {
            self.name.to_string()
        } else {
            self.headings
                .iter()
                .map(|(_, heading)| heading.as_str())
                .collect::<Vec<_>>()
                .join(" > ")
        };
        self.chunks.push(Chunk {
            id: format!("{}#{}", self.name, self.chunks.len()),
            title,
            content: self.section.join("\n\n"),
            source: self.source.to_string(),
        });
        self.section.clear();
    }
}

fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_section_becomes_a_chunk_titled_by_its_heading_path() {
        let doc = "# Gateway\n\nIntro text.\n\n## Rules\n\nFirst rule.\n\nSecond rule.\n\n### Detail\n\nDeep.\n\n## Modes\n\nDetection.\n";
        let chunks = chunk_document("data/gateway.md", doc);
        let summary: Vec<(&str, &str, &str)> = chunks
            .iter()
            .map(|c| (c.id.as_str(), c.title.as_str(), c.content.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("gateway#0", "Gateway", "Intro text."),
                (
                    "gateway#1",
                    "Gateway > Rules",
                    "First rule.\n\nSecond rule."
                ),
                ("gateway#2", "Gateway > Rules > Detail", "Deep."),
                ("gateway#3", "Gateway > Modes", "Detection."),
            ]
        );
        assert!(chunks.iter().all(|c| c.source == "data/gateway.md"));
    }

    #[test]
    fn long_sections_split_between_paragraphs_never_inside_one() {
        let paragraph = vec!["word"; 100].join(" ");
        let doc = format!("# Long\n\n{paragraph}\n\n{paragraph}\n\n{paragraph}\n");
        let chunks = chunk_document("data/long.md", &doc);
        assert_eq!(chunks.len(), 3);
        assert!(
            chunks
                .iter()
                .all(|c| c.content == paragraph && c.title == "Long")
        );
    }

    #[test]
    fn short_paragraphs_of_one_section_stay_together() {
        let doc = "# T\n\none two\nthree\n\nfour\n";
        let chunks = chunk_document("data/t.md", doc);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].content, "one two\nthree\n\nfour");
    }

    #[test]
    fn code_fences_keep_their_blank_lines_and_hash_comments() {
        let doc = "# Build\n\n```sh\n# not a heading\n\ncargo build\n```\n\nAfter.\n";
        let chunks = chunk_document("data/build.md", doc);
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            chunks[0].content,
            "```sh\n# not a heading\n\ncargo build\n```\n\nAfter."
        );
    }

    #[test]
    fn text_before_any_heading_is_titled_by_the_file_name() {
        let chunks = chunk_document("data/notes.md", "Loose text.\n");
        assert_eq!(chunks[0].title, "notes");
        assert_eq!(chunks[0].id, "notes#0");
    }

    #[test]
    fn hashtags_and_empty_headings_are_text() {
        assert_eq!(parse_heading("#hashtag"), None);
        assert_eq!(parse_heading("#"), None);
        assert_eq!(parse_heading("####### seven"), None);
        assert_eq!(parse_heading("## Closed ##"), Some((2, "Closed")));
    }
}
