//! Reads HTML with the `html5gum` tokenizer: text of the body in paragraphs under its
//! `<h1>`–`<h6>` headings, the `<title>`, and `<meta name content>` pairs.
//!
//! A tokenizer, not a tree builder: paragraphs end at the start and end of every block
//! element, which is what a browser's rendering breaks on too, and needs no tree.

use std::collections::BTreeMap;

use html5gum::{DefaultEmitter, HtmlString, StartTag, Token, Tokenizer};

use super::outline::{Outline, OutlineBuilder};

/// Elements whose content is not text a reader sees.
const SKIPPED: &[&[u8]] = &[
    b"script",
    b"style",
    b"noscript",
    b"template",
    b"svg",
    b"math",
    b"iframe",
    b"object",
    b"canvas",
];

/// Elements that begin and end a paragraph.
const BLOCKS: &[&[u8]] = &[
    b"address",
    b"article",
    b"aside",
    b"blockquote",
    b"body",
    b"br",
    b"caption",
    b"center",
    b"dd",
    b"details",
    b"dialog",
    b"div",
    b"dl",
    b"dt",
    b"fieldset",
    b"figcaption",
    b"figure",
    b"footer",
    b"form",
    b"header",
    b"hgroup",
    b"hr",
    b"html",
    b"legend",
    b"li",
    b"main",
    b"menu",
    b"nav",
    b"ol",
    b"p",
    b"section",
    b"summary",
    b"table",
    b"tbody",
    b"tfoot",
    b"thead",
    b"tr",
    b"ul",
];

/// Elements that belong in `<head>`; any other start tag there means the body has begun
/// (the `</head>` and `<body>` tags are optional).
const HEAD_CONTENT: &[&[u8]] = &[
    b"base",
    b"link",
    b"meta",
    b"noscript",
    b"script",
    b"style",
    b"template",
    b"title",
];

pub(super) fn parse(text: &str) -> Outline {
    let mut emitter = DefaultEmitter::default();
    // Switches to raw-text states after `<script>`, `<style>`, `<title>` and the like, as a
    // tree builder would, so their content is not read as markup.
    emitter.naively_switch_states(true);
    let mut reader = Reader::default();
    for token in Tokenizer::new_with_emitter(text, emitter) {
        let Ok(token) = token;
        match token {
            Token::StartTag(tag) => reader.start_tag(&tag),
            Token::EndTag(tag) => reader.end_tag(&tag.name),
            Token::String(text) => reader.text(&text),
            Token::Comment(_) | Token::Doctype(_) | Token::Error(_) => {}
        }
    }
    reader.finish()
}

#[derive(Default)]
struct Reader {
    builder: OutlineBuilder,
    metadata: BTreeMap<String, String>,
    title: Option<String>,
    first_h1: Option<String>,
    /// The skipped element being read through, and how many of its kind are open.
    skipping: Option<(Vec<u8>, usize)>,
    in_head: bool,
    /// Text of the `<title>` being read.
    title_text: Option<String>,
    /// Level and text of the heading being read.
    heading: Option<(usize, String)>,
    /// How many `<pre>` are open, and their text.
    pre_depth: usize,
    pre_text: String,
    /// Text of the paragraph being read, whitespace not yet collapsed.
    inline: String,
}

impl Reader {
    fn start_tag(&mut self, tag: &StartTag) {
        let name = tag.name.as_slice();
        if let Some((skipped, open)) = self.skipping.as_mut() {
            if name == skipped.as_slice() && !is_empty_foreign(tag) {
                *open += 1;
            }
            return;
        }
        if name == b"meta" {
            self.meta(tag);
            return;
        }
        if name == b"title" {
            self.title_text = Some(String::new());
            return;
        }
        if SKIPPED.contains(&name) {
            if !is_empty_foreign(tag) {
                self.skipping = Some((name.to_vec(), 1));
            }
            return;
        }
        if name == b"head" {
            self.in_head = true;
            return;
        }
        if self.in_head && !HEAD_CONTENT.contains(&name) {
            self.in_head = false;
        }
        if self.pre_depth > 0 {
            match name {
                b"pre" => self.pre_depth += 1,
                b"br" => self.pre_text.push('\n'),
                _ => {}
            }
            return;
        }
        if let Some(level) = heading_level(name) {
            self.end_heading();
            self.end_paragraph();
            self.heading = Some((level, String::new()));
        } else if name == b"pre" {
            self.end_paragraph();
            self.pre_depth = 1;
            self.pre_text.clear();
        } else if matches!(name, b"td" | b"th") {
            // Cells of a row read as one line.
            self.inline.push(' ');
        } else if BLOCKS.contains(&name) {
            self.end_paragraph();
        }
    }

    fn end_tag(&mut self, name: &HtmlString) {
        let name = name.as_slice();
        if let Some((skipped, open)) = self.skipping.as_mut() {
            if name == skipped.as_slice() {
                *open -= 1;
                if *open == 0 {
                    self.skipping = None;
                }
            }
            return;
        }
        if name == b"title" {
            if let Some(text) = self.title_text.take() {
                let text = collapse_whitespace(&text);
                if self.title.is_none() && !text.is_empty() {
                    self.title = Some(text);
                }
            }
            return;
        }
        if name == b"head" {
            self.in_head = false;
            return;
        }
        if self.pre_depth > 0 {
            if name == b"pre" {
                self.pre_depth -= 1;
                if self.pre_depth == 0 {
                    self.end_pre();
                }
            }
            return;
        }
        if heading_level(name).is_some() {
            self.end_heading();
        } else if BLOCKS.contains(&name) {
            self.end_paragraph();
        }
    }

    fn text(&mut self, text: &[u8]) {
        let text = String::from_utf8_lossy(text);
        if self.skipping.is_some() {
            return;
        }
        if let Some(title) = self.title_text.as_mut() {
            title.push_str(&text);
        } else if self.in_head {
            // Stray text in <head>: not part of the page.
        } else if let Some((_, heading)) = self.heading.as_mut() {
            heading.push_str(&text);
        } else if self.pre_depth > 0 {
            self.pre_text.push_str(&text);
        } else {
            self.inline.push_str(&text);
        }
    }

    fn meta(&mut self, tag: &StartTag) {
        let attribute = |name: &[u8]| {
            tag.attributes
                .get(name)
                .map(|value| collapse_whitespace(&String::from_utf8_lossy(value)))
                .filter(|value| !value.is_empty())
        };
        let (Some(key), Some(content)) = (
            attribute(b"name").or_else(|| attribute(b"property")),
            attribute(b"content"),
        ) else {
            return;
        };
        self.metadata.entry(key.to_lowercase()).or_insert(content);
    }

    fn end_heading(&mut self) {
        let Some((level, text)) = self.heading.take() else {
            return;
        };
        let text = collapse_whitespace(&text);
        if text.is_empty() {
            return;
        }
        if level == 1 && self.first_h1.is_none() {
            self.first_h1 = Some(text.clone());
        }
        self.builder.heading(level, text);
    }

    fn end_paragraph(&mut self) {
        let paragraph = collapse_whitespace(&self.inline);
        self.inline.clear();
        self.builder.paragraph(&paragraph);
    }

    fn end_pre(&mut self) {
        let text = std::mem::take(&mut self.pre_text);
        // A newline right after `<pre>` is not content (HTML's parsing rules drop it).
        let text = text.strip_prefix('\n').unwrap_or(&text);
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        let first = lines.iter().position(|line| !line.is_empty());
        let last = lines.iter().rposition(|line| !line.is_empty());
        if let (Some(first), Some(last)) = (first, last) {
            self.builder.code(&lines[first..=last].join("\n"));
        }
    }

    fn finish(mut self) -> Outline {
        if self.pre_depth > 0 {
            self.end_pre();
        }
        self.end_heading();
        self.end_paragraph();
        Outline {
            title: self.title.or(self.first_h1),
            metadata: self.metadata,
            sections: self.builder.finish(),
        }
    }
}

fn heading_level(name: &[u8]) -> Option<usize> {
    match name {
        [b'h', digit @ b'1'..=b'6'] => Some(usize::from(digit - b'0')),
        _ => None,
    }
}

/// `<svg/>` and `<math/>` are complete elements; `<script/>` is not (HTML ignores the
/// slash on its own elements).
fn is_empty_foreign(tag: &StartTag) -> bool {
    tag.self_closing && matches!(tag.name.as_slice(), b"svg" | b"math")
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::super::{ChunkingOptions, Document, parse_document};

    fn document(path: &str, html: &str) -> Document {
        parse_document(path, html.as_bytes(), &ChunkingOptions::default()).unwrap()
    }

    fn chunks(html: &str) -> Vec<(String, String)> {
        document("page.html", html)
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
    fn headings_start_sections_and_blocks_end_paragraphs() {
        let html = "<!DOCTYPE html><html><head><title>Gateway</title></head><body>\
                    <h1>Gateway</h1><p>Intro\n   text.</p>\
                    <h2>Rules</h2><div>First <b>rule</b>.</div><p>Second rule.<br>After a break.</p>\
                    <h3>Detail</h3><section><p>Deep.</p></section>\
                    <h2>Modes</h2>Detection.</body></html>";
        assert_eq!(
            chunks(html),
            pairs(&[
                ("Gateway", "Intro text."),
                (
                    "Gateway > Rules",
                    "First rule.\n\nSecond rule.\n\nAfter a break."
                ),
                ("Gateway > Rules > Detail", "Deep."),
                ("Gateway > Modes", "Detection."),
            ])
        );
    }

    #[test]
    fn the_title_is_the_title_element_then_the_first_h1_then_the_file_stem() {
        let titled = document(
            "a.html",
            "<title> Azure  &amp; Spin </title><h1>Heading</h1><p>Text.</p>",
        );
        assert_eq!(titled.title, "Azure & Spin");
        assert_eq!(titled.chunks[0].title, "Azure & Spin > Heading");
        assert_eq!(
            document("a.html", "<p>Lead.</p><h1>Heading</h1><p>Text.</p>").title,
            "Heading"
        );
        assert_eq!(
            document("dir/page.htm", "<h2>Part</h2><p>Text.</p>").title,
            "page"
        );
    }

    #[test]
    fn character_references_are_decoded() {
        assert_eq!(
            chunks(
                "<p>Fish &amp; chips &lt;b&gt; caf&eacute; &#233;t&#xE9; it&#x27;s&nbsp;here</p>"
            ),
            pairs(&[("page", "Fish & chips <b> café été it's here")])
        );
    }

    #[test]
    fn scripts_styles_comments_and_other_non_text_are_skipped() {
        let html = "<head><style>p { color: red }</style><script>var x = '<p>not text</p>';</script>\
                    <meta charset=utf-8></head><body><!-- hidden comment -->\
                    <p>Visible <script>if (a < b) { document.write('<h1>no</h1>') }</script>text.</p>\
                    <noscript><p>Enable JavaScript</p></noscript>\
                    <template><p>template</p></template>\
                    <svg><title>icon</title><text>svg text</text><svg></svg></svg>\
                    <p>Still visible.</p></body>";
        let document = document("page.html", html);
        assert_eq!(document.title, "page");
        let texts: Vec<&str> = document.chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, vec!["Visible text.\n\nStill visible."]);
    }

    #[test]
    fn nested_list_items_are_paragraphs_of_their_own() {
        let html = "<h1>Steps</h1><ul><li>Build<ul><li>debug</li><li>release</li></ul>then test</li>\
                    <li>Ship</ol></ul><p>Done.</p>";
        assert_eq!(
            chunks(html),
            pairs(&[(
                "Steps",
                "Build\n\ndebug\n\nrelease\n\nthen test\n\nShip\n\nDone."
            )])
        );
    }

    #[test]
    fn table_rows_read_as_lines_of_cells() {
        let html = "<table><tr><th>Status</th><th>Meaning</th></tr>\
                    <tr><td>429</td><td>Too many requests</td></tr></table>";
        assert_eq!(
            chunks(html),
            pairs(&[("page", "Status Meaning\n\n429 Too many requests")])
        );
    }

    #[test]
    fn preformatted_text_keeps_its_lines() {
        let html = "<p>Run:</p><pre>\n<code>cargo build\n  --release   \n\n# done</code>\n</pre><p>After.</p>";
        assert_eq!(
            chunks(html),
            pairs(&[(
                "page",
                "Run:\n\ncargo build\n  --release\n\n# done\n\nAfter."
            )])
        );
    }

    #[test]
    fn head_content_other_than_the_title_is_not_text_even_without_a_head_end_tag() {
        let html = "<html><head><title>T</title><link rel=stylesheet href=a.css>\
                    <p>Body starts here.";
        assert_eq!(chunks(html), pairs(&[("T", "Body starts here.")]));
    }

    #[test]
    fn meta_names_and_properties_become_metadata() {
        let html = "<head><meta name=\"Description\" content=\" A  page \">\
                    <meta property=\"og:type\" content=\"article\"><meta charset=\"utf-8\">\
                    <meta name=\"empty\" content=\"\"></head><p>Text.</p>";
        let document = document("page.html", html);
        let metadata: Vec<(&str, &str)> = document
            .metadata
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            metadata,
            vec![("description", "A page"), ("og:type", "article")]
        );
    }

    #[test]
    fn upper_case_tags_are_read_like_lower_case_ones() {
        assert_eq!(
            chunks("<H1>Loud</H1><P>One.</P><SCRIPT>x()</SCRIPT><P>Two.</P>"),
            pairs(&[("Loud", "One.\n\nTwo.")])
        );
    }
}
