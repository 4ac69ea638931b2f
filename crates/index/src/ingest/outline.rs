//! The format-independent shape of a document: a title, metadata and sections of
//! paragraphs, which the format readers build and the chunker cuts.

use std::collections::BTreeMap;

/// A document as its reader understood it.
#[derive(Debug, Default)]
pub(super) struct Outline {
    /// The title the document names itself; `None` falls back to the file stem.
    pub title: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub sections: Vec<Section>,
}

/// The paragraphs under one heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Section {
    /// The headings above the section, outermost first (empty before the first heading).
    pub headings: Vec<String>,
    pub blocks: Vec<Block>,
}

/// One paragraph or code block, trimmed, with at least one word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Block {
    pub text: String,
    pub kind: BlockKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BlockKind {
    /// Running text: split at sentence ends when it is too long for one chunk.
    Prose,
    /// Code or preformatted text: its lines are kept, and it is split only between lines.
    Code,
}

/// Collects headings and paragraphs in reading order into [`Section`]s.
#[derive(Debug, Default)]
pub(super) struct OutlineBuilder {
    headings: Vec<(usize, String)>,
    sections: Vec<Section>,
    blocks: Vec<Block>,
    paragraph: String,
}

impl OutlineBuilder {
    /// A heading of `level` (1 outermost) ends the current section and replaces the
    /// headings of its own level and deeper.
    pub fn heading(&mut self, level: usize, text: String) {
        self.end_section();
        self.headings.retain(|(outer, _)| *outer < level);
        self.headings.push((level, text));
    }

    /// Adds a line to the paragraph being read.
    pub fn line(&mut self, line: &str) {
        if !self.paragraph.is_empty() {
            self.paragraph.push('\n');
        }
        self.paragraph.push_str(line);
    }

    pub fn end_paragraph(&mut self) {
        let paragraph = std::mem::take(&mut self.paragraph);
        self.push(BlockKind::Prose, paragraph.trim());
    }

    /// Ends the paragraph being read and adds `text` as a paragraph of its own.
    pub fn paragraph(&mut self, text: &str) {
        self.end_paragraph();
        self.push(BlockKind::Prose, text.trim());
    }

    /// Ends the paragraph being read and adds a code block, whose lines are kept.
    pub fn code(&mut self, text: &str) {
        self.end_paragraph();
        self.push(BlockKind::Code, text.trim_end());
    }

    pub fn finish(mut self) -> Vec<Section> {
        self.end_section();
        self.sections
    }

    fn push(&mut self, kind: BlockKind, text: &str) {
        if text.split_whitespace().next().is_some() {
            self.blocks.push(Block {
                text: text.to_string(),
                kind,
            });
        }
    }

    fn end_section(&mut self) {
        self.end_paragraph();
        if !self.blocks.is_empty() {
            self.sections.push(Section {
                headings: self.headings.iter().map(|(_, text)| text.clone()).collect(),
                blocks: std::mem::take(&mut self.blocks),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prose(text: &str) -> Block {
        Block {
            text: text.into(),
            kind: BlockKind::Prose,
        }
    }

    #[test]
    fn headings_nest_by_level_and_empty_sections_vanish() {
        let mut builder = OutlineBuilder::default();
        builder.line("Intro.");
        builder.heading(1, "A".into());
        builder.heading(2, "B".into());
        builder.line("Under B.");
        builder.heading(3, "C".into());
        builder.heading(2, "D".into());
        builder.line("Under D.");
        let sections = builder.finish();
        let headings: Vec<Vec<String>> = sections.iter().map(|s| s.headings.clone()).collect();
        assert_eq!(
            headings,
            vec![
                vec![],
                vec!["A".to_string(), "B".to_string()],
                vec!["A".to_string(), "D".to_string()]
            ]
        );
        assert_eq!(sections[2].blocks, vec![prose("Under D.")]);
    }

    #[test]
    fn paragraphs_are_trimmed_and_blank_ones_dropped() {
        let mut builder = OutlineBuilder::default();
        builder.line("  first line");
        builder.line("second line  ");
        builder.end_paragraph();
        builder.end_paragraph();
        builder.paragraph("   ");
        builder.code("    indented code\n\n");
        let sections = builder.finish();
        assert_eq!(
            sections[0].blocks,
            vec![
                prose("first line\nsecond line"),
                Block {
                    text: "    indented code".into(),
                    kind: BlockKind::Code
                }
            ]
        );
    }
}
