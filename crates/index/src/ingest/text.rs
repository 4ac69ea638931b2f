//! Reads plain text: an optional title line, then paragraphs separated by blank lines.

use super::outline::{Outline, OutlineBuilder};

/// The longest first line taken for a title: longer ones are the start of the text.
const MAX_TITLE_WORDS: usize = 12;

pub(super) fn parse(text: &str) -> Outline {
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.iter().position(|line| !line.trim().is_empty());
    let title_line = first.filter(|&index| {
        let words = lines[index].split_whitespace().count();
        let blank_after = lines
            .get(index + 1)
            .is_some_and(|line| line.trim().is_empty());
        let text_after = lines
            .iter()
            .skip(index + 1)
            .any(|line| !line.trim().is_empty());
        words <= MAX_TITLE_WORDS && blank_after && text_after
    });

    let mut builder = OutlineBuilder::default();
    let body_start = title_line.map_or(0, |index| index + 1);
    for line in lines.iter().skip(body_start) {
        if line.trim().is_empty() {
            builder.end_paragraph();
        } else {
            builder.line(line.trim_end());
        }
    }
    Outline {
        title: title_line.map(|index| lines[index].trim().to_string()),
        metadata: Default::default(),
        sections: builder.finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ChunkingOptions, Document, parse_document};

    fn document(path: &str, text: &str) -> Document {
        parse_document(path, text.as_bytes(), &ChunkingOptions::default()).unwrap()
    }

    #[test]
    fn a_short_first_line_followed_by_a_blank_line_is_the_title() {
        let doc = document(
            "notes.txt",
            "\n  Rate limits  \n\nTokens per minute.\nRequests too.\n\n\n\nRetry after.\n",
        );
        assert_eq!(doc.title, "Rate limits");
        assert_eq!(doc.chunks.len(), 1);
        assert_eq!(doc.chunks[0].title, "Rate limits");
        assert_eq!(
            doc.chunks[0].text,
            "Tokens per minute.\nRequests too.\n\nRetry after."
        );
    }

    #[test]
    fn otherwise_the_file_stem_is_the_title_and_the_first_line_is_text() {
        let long_line =
            "This first line runs on for far more than twelve words so it is plainly a sentence.";
        let doc = document("dir/long.txt", &format!("{long_line}\n\nSecond.\n"));
        assert_eq!(doc.title, "long");
        assert_eq!(doc.chunks[0].text, format!("{long_line}\n\nSecond."));

        let doc = document("wrapped.text", "Short line\ncontinues here.\n\nNext.\n");
        assert_eq!(doc.title, "wrapped");
        assert_eq!(doc.chunks[0].text, "Short line\ncontinues here.\n\nNext.");
    }

    #[test]
    fn a_lone_line_is_text_not_a_title() {
        let doc = document("one.txt", "Just this.\n\n");
        assert_eq!(doc.title, "one");
        assert_eq!(doc.chunks[0].text, "Just this.");
    }
}
