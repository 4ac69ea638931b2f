//! Pre-tokenizers: hand-written scanners that split text exactly where tiktoken's split regexes
//! do, so no regex has to be compiled when a fresh Wasm instance starts.
//!
//! Each `*_piece_end` function returns where the regex match starting at `start` ends. The
//! regexes are tried alternative by alternative, and within an alternative the greedy
//! quantifiers back off the way a backtracking engine would; the comments quote the alternative
//! each step implements. Every character is matched by some alternative, so the pieces cover the
//! text without gaps.

include!(concat!(env!("OUT_DIR"), "/class_tables.rs"));

/// The Unicode classes the two patterns distinguish; a character is in exactly one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Class {
    /// Anything not below: punctuation, symbols, controls that are not white space, ...
    Other,
    /// `\p{Lu}` or `\p{Lt}`.
    Upper,
    /// `\p{Ll}`.
    Lower,
    /// `\p{Lm}` or `\p{Lo}` (modifier letters, and letters of uncased scripts such as CJK).
    LetterOther,
    /// `\p{M}` (combining marks).
    Mark,
    /// `\p{N}`.
    Number,
    /// `\s` (Unicode White_Space).
    Space,
}

pub(crate) fn class_of(c: char) -> Class {
    let code_point = u32::from(c);
    let raw = match ASCII_CLASSES.get(code_point as usize) {
        Some(&class) => class,
        None => {
            let run = CLASS_RUNS
                .partition_point(|&run| run >> 3 <= code_point)
                .saturating_sub(1);
            (CLASS_RUNS[run] & 0b111) as u8
        }
    };
    match raw {
        1 => Class::Upper,
        2 => Class::Lower,
        3 => Class::LetterOther,
        4 => Class::Mark,
        5 => Class::Number,
        6 => Class::Space,
        _ => Class::Other,
    }
}

/// `\p{L}`.
fn is_letter(class: Class) -> bool {
    matches!(class, Class::Upper | Class::Lower | Class::LetterOther)
}

/// `[^\s\p{L}\p{N}]`: what the punctuation alternative is made of.
fn is_punctuation(class: Class) -> bool {
    matches!(class, Class::Other | Class::Mark)
}

/// `[^\r\n\p{L}\p{N}]`: the one character allowed in front of a word.
fn can_prefix_word(c: char, class: Class) -> bool {
    c != '\r' && c != '\n' && !is_letter(class) && class != Class::Number
}

/// o200k's `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`: characters that may start a capitalised word.
fn is_o200k_upper(class: Class) -> bool {
    matches!(class, Class::Upper | Class::LetterOther | Class::Mark)
}

/// o200k's `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`: characters that may continue a word.
fn is_o200k_lower(class: Class) -> bool {
    matches!(class, Class::Lower | Class::LetterOther | Class::Mark)
}

fn char_at(text: &str, at: usize) -> Option<char> {
    text.get(at..)?.chars().next()
}

/// Where the run of characters starting at `at` that satisfy `keep` ends.
fn skip_while(text: &str, at: usize, keep: impl Fn(char, Class) -> bool) -> usize {
    let mut end = at;
    for c in text.get(at..).unwrap_or("").chars() {
        if !keep(c, class_of(c)) {
            break;
        }
        end += c.len_utf8();
    }
    end
}

/// End of `(?i:'s|'t|'re|'ve|'m|'ll|'d)` (the two patterns' contraction sets are the same) if
/// one starts at `at`.
fn contraction_end(text: &str, at: usize) -> Option<usize> {
    let mut chars = text.get(at..)?.chars();
    if chars.next()? != '\'' {
        return None;
    }
    let first = chars.next()?;
    let after_first = at + 1 + first.len_utf8();
    let second_wanted = match fold_case(first) {
        's' | 't' | 'm' | 'd' => return Some(after_first),
        'l' => 'l',
        'v' | 'r' => 'e',
        _ => return None,
    };
    let second = chars.next()?;
    (fold_case(second) == second_wanted).then(|| after_first + second.len_utf8())
}

/// Case folding as the regex engine applies `(?i)` to the contraction letters: ASCII case, plus
/// U+017F LATIN SMALL LETTER LONG S, which folds to `s`.
fn fold_case(c: char) -> char {
    match c {
        '\u{17F}' => 's',
        _ => c.to_ascii_lowercase(),
    }
}

/// End of `\p{N}{1,3}` starting at `start` (which holds a number).
fn numbers_end(text: &str, start: usize) -> usize {
    text.get(start..)
        .unwrap_or("")
        .char_indices()
        .take(3)
        .take_while(|&(_, c)| class_of(c) == Class::Number)
        .last()
        .map_or(start, |(offset, c)| start + offset + c.len_utf8())
}

/// End of ` ?[^\s\p{L}\p{N}]+` followed by as many `tail` characters as there are.
fn punctuation_end(text: &str, start: usize, first: char, tail: fn(char) -> bool) -> Option<usize> {
    let body_start = if first == ' ' { start + 1 } else { start };
    if !is_punctuation(class_of(char_at(text, body_start)?)) {
        return None;
    }
    let body_end = skip_while(text, body_start, |_, class| is_punctuation(class));
    Some(skip_while(text, body_end, |c, _| tail(c)))
}

/// The maximal run of white space starting at `start`.
struct SpaceRun {
    end: usize,
    /// End of the run's last `\r` or `\n`.
    last_newline_end: Option<usize>,
    /// Start of the run's last character.
    last_char_start: usize,
}

fn space_run(text: &str, start: usize) -> SpaceRun {
    let mut run = SpaceRun {
        end: start,
        last_newline_end: None,
        last_char_start: start,
    };
    for c in text.get(start..).unwrap_or("").chars() {
        if class_of(c) != Class::Space {
            break;
        }
        run.last_char_start = run.end;
        run.end += c.len_utf8();
        if c == '\r' || c == '\n' {
            run.last_newline_end = Some(run.end);
        }
    }
    run
}

/// cl100k_base, as tiktoken-rs and tiktoken write it:
/// `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`
pub(crate) fn cl100k_piece_end(text: &str, start: usize) -> usize {
    let Some(c) = char_at(text, start) else {
        return text.len();
    };
    let class = class_of(c);
    let next = start + c.len_utf8();
    // '(?i:[sdmt]|ll|ve|re)
    if let Some(end) = contraction_end(text, start) {
        return end;
    }
    // [^\r\n\p{L}\p{N}]?+\p{L}++
    let letters_from = if is_letter(class) {
        Some(start)
    } else if can_prefix_word(c, class)
        && char_at(text, next).is_some_and(|d| is_letter(class_of(d)))
    {
        Some(next)
    } else {
        None
    };
    if let Some(at) = letters_from {
        return skip_while(text, at, |_, class| is_letter(class));
    }
    // \p{N}{1,3}+
    if class == Class::Number {
        return numbers_end(text, start);
    }
    // ' ?[^\s\p{L}\p{N}]++[\r\n]*+'
    if let Some(end) = punctuation_end(text, start, c, |d| matches!(d, '\r' | '\n')) {
        return end;
    }
    // Only white space is left.
    let run = space_run(text, start);
    // \s++$
    if run.end == text.len() {
        return run.end;
    }
    // \s*[\r\n]
    if let Some(end) = run.last_newline_end {
        return end;
    }
    // \s+(?!\S): the run is followed by a non-space, so leave its last character out.
    if run.last_char_start > start {
        return run.last_char_start;
    }
    // \s
    next
}

/// o200k_base, as tiktoken-rs and tiktoken write it:
/// `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`
/// `|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?`
/// `|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
pub(crate) fn o200k_piece_end(text: &str, start: usize) -> usize {
    let Some(c) = char_at(text, start) else {
        return text.len();
    };
    let class = class_of(c);
    if let Some(end) = o200k_word_end(text, start, c, class) {
        return end;
    }
    // \p{N}{1,3}
    if class == Class::Number {
        return numbers_end(text, start);
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n/]*'
    if let Some(end) = punctuation_end(text, start, c, |d| matches!(d, '\r' | '\n' | '/')) {
        return end;
    }
    // Only white space is left.
    let run = space_run(text, start);
    // \s*[\r\n]+: \s* backs off to the run's last newline.
    if let Some(end) = run.last_newline_end {
        return end;
    }
    // \s+(?!\S): the whole run at the end of the text, else all of it but the last character.
    if run.end == text.len() {
        return run.end;
    }
    if run.last_char_start > start {
        return run.last_char_start;
    }
    // \s+
    run.end
}

/// The two word alternatives of o200k, in the order the regex tries them: first with the
/// optional prefix character taken, then without it.
fn o200k_word_end(text: &str, start: usize, c: char, class: Class) -> Option<usize> {
    let after_prefix = can_prefix_word(c, class).then_some(start + c.len_utf8());
    let word_end = after_prefix
        .and_then(|at| upper_star_lower_plus_end(text, at))
        .or_else(|| upper_star_lower_plus_end(text, start))
        .or_else(|| after_prefix.and_then(|at| upper_plus_lower_star_end(text, at)))
        .or_else(|| upper_plus_lower_star_end(text, start))?;
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)?
    Some(contraction_end(text, word_end).unwrap_or(word_end))
}

/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+` at `at`: the first match a
/// backtracking engine finds.
fn upper_star_lower_plus_end(text: &str, at: usize) -> Option<usize> {
    // The greedy star takes the whole run of "upper" characters first...
    let mut upper_end = at;
    let mut last_lower_in_run_end = None;
    for c in text.get(at..).unwrap_or("").chars() {
        let class = class_of(c);
        if !is_o200k_upper(class) {
            break;
        }
        upper_end += c.len_utf8();
        if is_o200k_lower(class) {
            last_lower_in_run_end = Some(upper_end);
        }
    }
    // ...and the plus then takes every "lower" character after it.
    if char_at(text, upper_end).is_some_and(|c| is_o200k_lower(class_of(c))) {
        return Some(skip_while(text, upper_end, |_, class| {
            is_o200k_lower(class)
        }));
    }
    // Otherwise the star gives characters back until the plus can start: at the run's last
    // character that is also "lower". The plus stops right after it, because what follows is
    // either an "upper"-only character or the character that ended the run.
    last_lower_in_run_end
}

/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*` at `at`.
fn upper_plus_lower_star_end(text: &str, at: usize) -> Option<usize> {
    let upper_end = skip_while(text, at, |_, class| is_o200k_upper(class));
    (upper_end > at).then(|| skip_while(text, upper_end, |_, class| is_o200k_lower(class)))
}

/// The pieces of `text` as split by `piece_end`.
pub(crate) fn pieces(text: &str, piece_end: fn(&str, usize) -> usize) -> Pieces<'_> {
    Pieces {
        text,
        position: 0,
        piece_end,
    }
}

pub(crate) struct Pieces<'a> {
    text: &'a str,
    position: usize,
    piece_end: fn(&str, usize) -> usize,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let start = self.position;
        let first = char_at(self.text, start)?;
        // Every alternative consumes at least one character; the max only guards the loop.
        let end = (self.piece_end)(self.text, start).max(start + first.len_utf8());
        self.position = end;
        self.text.get(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support as support;

    /// cl100k_base's pattern as tiktoken-rs 0.12 (and tiktoken 0.12) compile it; tiktoken-rs does
    /// not export it.
    const CL100K_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

    fn regex_pieces<'a>(regex: &fancy_regex::Regex, text: &'a str) -> Vec<&'a str> {
        regex
            .find_iter(text)
            .map(|found| found.expect("regex runs").as_str())
            .collect()
    }

    /// One of our scanners next to the regex it reproduces.
    struct Splitter {
        name: &'static str,
        regex: fancy_regex::Regex,
        piece_end: fn(&str, usize) -> usize,
    }

    struct Splitters([Splitter; 2]);

    impl Splitters {
        fn new() -> Splitters {
            Splitters([
                Splitter {
                    name: "cl100k_base",
                    regex: fancy_regex::Regex::new(CL100K_PATTERN).unwrap(),
                    piece_end: cl100k_piece_end,
                },
                Splitter {
                    name: "o200k_base",
                    regex: fancy_regex::Regex::new(tiktoken_rs::O200K_BASE_PAT_STR).unwrap(),
                    piece_end: o200k_piece_end,
                },
            ])
        }

        fn assert_splits_like_regex(&self, text: &str) {
            for splitter in &self.0 {
                let ours: Vec<&str> = pieces(text, splitter.piece_end).collect();
                assert_eq!(
                    ours,
                    regex_pieces(&splitter.regex, text),
                    "{} pieces of {text:?}",
                    splitter.name
                );
            }
        }
    }

    fn all_chars() -> impl Iterator<Item = char> {
        (0..=0x10_FFFF).filter_map(char::from_u32)
    }

    #[test]
    fn every_code_point_is_in_the_class_the_regex_engine_gives_it() {
        let everything: String = all_chars().collect();
        let mut expected = vec![Class::Other; 0x11_0000];
        for (pattern, class) in [
            (r"[\p{Lu}\p{Lt}]+", Class::Upper),
            (r"\p{Ll}+", Class::Lower),
            (r"[\p{Lm}\p{Lo}]+", Class::LetterOther),
            (r"\p{M}+", Class::Mark),
            (r"\p{N}+", Class::Number),
            (r"\s+", Class::Space),
        ] {
            for run in regex::Regex::new(pattern).unwrap().find_iter(&everything) {
                for c in run.as_str().chars() {
                    expected[c as usize] = class;
                }
            }
        }
        for c in all_chars() {
            assert_eq!(
                class_of(c),
                expected[c as usize],
                "class of U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn contraction_letters_fold_case_as_the_regex_engine_does() {
        let everything: String = all_chars().collect();
        let regex = regex::Regex::new("(?i)[sdmtlver]").unwrap();
        let folding: Vec<char> = regex
            .find_iter(&everything)
            .flat_map(|m| m.as_str().chars())
            .collect();
        let ours: Vec<char> = all_chars()
            .filter(|&c| "sdmtlver".contains(fold_case(c)))
            .collect();
        assert_eq!(ours, folding);
        // U+017F is the one letter beyond ASCII; fancy-regex, which runs the whole pattern, agrees.
        Splitters::new().assert_splits_like_regex("'ſt 'ſ 'ſſ 'Ks 'ſ'ſ");
    }

    /// The cl100k pieces of `text`, checked against the regex so the examples below are right.
    fn cl100k(text: &str) -> Vec<&str> {
        Splitters::new().assert_splits_like_regex(text);
        pieces(text, cl100k_piece_end).collect()
    }

    /// The o200k pieces of `text`, checked against the regex.
    fn o200k(text: &str) -> Vec<&str> {
        Splitters::new().assert_splits_like_regex(text);
        pieces(text, o200k_piece_end).collect()
    }

    #[test]
    fn cl100k_splits_words_with_their_leading_character_and_contractions_apart() {
        assert_eq!(cl100k("Hello, world!"), ["Hello", ",", " world", "!"]);
        assert_eq!(cl100k("they'll I'M"), ["they", "'ll", " I", "'M"]);
        assert_eq!(cl100k("'sound"), ["'s", "ound"]);
        assert_eq!(cl100k("camelCaseWord"), ["camelCaseWord"]);
        assert_eq!(cl100k("\tx\u{301}y"), ["\tx", "\u{301}y"]);
    }

    #[test]
    fn o200k_splits_cased_words_and_keeps_contractions_attached() {
        assert_eq!(
            o200k("camelCaseHTTPServer"),
            ["camel", "Case", "HTTPServer"]
        );
        assert_eq!(o200k("they'll I'M"), ["they'll", " I'M"]);
        assert_eq!(
            o200k("XMLHttpRequest iPhone"),
            ["XMLHttp", "Request", " i", "Phone"]
        );
        assert_eq!(o200k("cafe\u{301}s"), ["cafe\u{301}s"]);
    }

    #[test]
    fn numbers_split_in_groups_of_three() {
        assert_eq!(cl100k("1234567"), ["123", "456", "7"]);
        assert_eq!(o200k("1234567 ٣٤"), ["123", "456", "7", " ", "٣٤"]);
    }

    #[test]
    fn punctuation_takes_the_newlines_after_it_and_in_o200k_slashes() {
        assert_eq!(cl100k("end.\n\nNext"), ["end", ".\n\n", "Next"]);
        assert_eq!(cl100k("a //\n/b"), ["a", " //\n", "/b"]);
        assert_eq!(o200k("a //\n/b"), ["a", " //\n/", "b"]);
    }

    #[test]
    fn white_space_leaves_one_space_for_the_next_word() {
        assert_eq!(cl100k("a   b"), ["a", "  ", " b"]);
        assert_eq!(o200k("a \n  b"), ["a", " \n", " ", " b"]);
        assert_eq!(cl100k("a \n  b"), ["a", " \n", " ", " b"]);
        // cl100k keeps trailing white space in one piece; o200k ends it at the last newline.
        assert_eq!(cl100k("abc\n  "), ["abc", "\n  "]);
        assert_eq!(o200k("abc\n  "), ["abc", "\n", "  "]);
    }

    #[test]
    fn hand_picked_texts_split_as_the_tiktoken_regexes_do() {
        let splitters = Splitters::new();
        for text in support::CORPUS {
            splitters.assert_splits_like_regex(text);
        }
        for first in support::CORPUS {
            for second in support::CORPUS {
                splitters.assert_splits_like_regex(&format!("{first}{second}"));
            }
        }
        for text in support::long_texts() {
            splitters.assert_splits_like_regex(&text);
        }
        for (_, text) in support::data_files() {
            splitters.assert_splits_like_regex(&text);
        }
    }

    #[test]
    fn random_texts_split_as_the_tiktoken_regexes_do() {
        let splitters = Splitters::new();
        let mut rng = support::Rng::new(0x5eed_1001);
        for _ in 0..5000 {
            splitters.assert_splits_like_regex(&rng.text(24));
        }
        for _ in 0..2000 {
            let text: String = (0..1 + rng.below(12)).map(|_| rng.code_point()).collect();
            splitters.assert_splits_like_regex(&text);
        }
    }
}
