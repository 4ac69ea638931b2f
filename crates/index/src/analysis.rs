//! Text analysis: how documents and queries become index terms.
//!
//! Words are found at Unicode (UAX #29) word boundaries, case-folded, filtered by a
//! stop-word list and stemmed. The configuration is stored in each index, so a query is
//! always analysed exactly as the documents it is matched against were.

use rust_stemmers::{Algorithm, Stemmer as Snowball};
use unicode_segmentation::UnicodeSegmentation;

/// Lucene's English stop words (`EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`), also the
/// list of the `bm25s` reference implementation: short enough that no content word
/// such as "not" or "will" in a question is lost... except those two, as in Lucene.
pub const ENGLISH_STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// Which stemmer reduces words to their stems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stemming {
    /// No stemming: words match only in their exact (case-folded) form.
    None,
    /// The Snowball English ("Porter2") stemmer.
    English,
}

/// How text becomes terms. Stored in every index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzerConfig {
    /// The stemmer applied to every word.
    pub stemming: Stemming,
    /// Case-folded words dropped before stemming.
    pub stop_words: Vec<String>,
    /// Words with fewer characters are dropped (1 keeps every word).
    pub min_word_chars: u8,
}

impl Default for AnalyzerConfig {
    /// English: Snowball stemming, Lucene's stop words, every word length.
    fn default() -> Self {
        AnalyzerConfig {
            stemming: Stemming::English,
            stop_words: ENGLISH_STOP_WORDS.iter().map(|w| w.to_string()).collect(),
            min_word_chars: 1,
        }
    }
}

/// Turns text into terms according to an [`AnalyzerConfig`].
pub struct Analyzer {
    config: AnalyzerConfig,
    stop_words: Vec<String>,
    stemmer: Option<Snowball>,
}

impl Analyzer {
    /// The analyzer `config` describes.
    pub fn new(config: AnalyzerConfig) -> Self {
        let mut stop_words: Vec<String> = config.stop_words.iter().map(|w| fold(w)).collect();
        stop_words.sort_unstable();
        stop_words.dedup();
        let stemmer = match config.stemming {
            Stemming::None => None,
            Stemming::English => Some(Snowball::create(Algorithm::English)),
        };
        Analyzer {
            config,
            stop_words,
            stemmer,
        }
    }

    /// What this analyzer was built from (as stored in an index).
    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// The terms of `text` in order, repeats included.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut terms = Vec::new();
        self.for_each_term(text, |term| terms.push(term));
        terms
    }

    /// Calls `emit` with each term of `text` in order.
    pub fn for_each_term(&self, text: &str, mut emit: impl FnMut(String)) {
        for word in text.unicode_words() {
            if word.chars().count() < usize::from(self.config.min_word_chars) {
                continue;
            }
            let folded = fold(word);
            if self.stop_words.binary_search(&folded).is_ok() {
                continue;
            }
            match &self.stemmer {
                Some(stemmer) => emit(stemmer.stem(&folded).into_owned()),
                None => emit(folded),
            }
        }
    }
}

/// Case folding. Lowercasing is Unicode's simple case folding for all but a handful of
/// characters; `ß` and the final sigma are folded as full case folding does, so that
/// "STRASSE", "Straße" and "strasse" (and "ΣΟΦΟΣ", "σοφος", "σοφοσ") meet.
fn fold(word: &str) -> String {
    let lower = word.to_lowercase();
    if lower.contains(['ß', 'ς', '’']) {
        lower.replace('ß', "ss").replace('ς', "σ").replace('’', "'")
    } else {
        lower
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn english(text: &str) -> Vec<String> {
        Analyzer::new(AnalyzerConfig::default()).terms(text)
    }

    #[test]
    fn words_are_split_at_unicode_boundaries_and_case_folded() {
        let plain = Analyzer::new(AnalyzerConfig {
            stemming: Stemming::None,
            stop_words: vec![],
            min_word_chars: 1,
        });
        assert_eq!(
            plain.terms("Retry-After: 30s, e.g. RS256 (JWT) — naïve Café"),
            [
                "retry", "after", "30s", "e.g", "rs256", "jwt", "naïve", "café"
            ]
        );
        assert_eq!(plain.terms("Straße STRASSE"), ["strasse", "strasse"]);
        assert_eq!(plain.terms("ΣΟΦΟΣ σοφος"), ["σοφοσ", "σοφοσ"]);
        assert_eq!(plain.terms("it’s it's"), ["it's", "it's"]);
        assert_eq!(plain.terms("東京 日本"), ["東", "京", "日", "本"]);
    }

    #[test]
    fn english_drops_stop_words_and_stems() {
        assert_eq!(
            english("The tokens of a tokenizer are tokenized"),
            ["token", "token", "token"]
        );
        assert_eq!(english("running runs ran"), ["run", "run", "ran"]);
        assert_eq!(
            english("The firewall blocks attacks"),
            ["firewal", "block", "attack"]
        );
        assert!(english("the of and to with").is_empty());
    }

    #[test]
    fn stop_words_match_whatever_the_case() {
        assert_eq!(english("THE Firewall"), ["firewal"]);
    }

    #[test]
    fn short_words_can_be_dropped() {
        let two = Analyzer::new(AnalyzerConfig {
            min_word_chars: 2,
            ..AnalyzerConfig::default()
        });
        assert_eq!(two.terms("k1 b x y zz"), ["k1", "zz"]);
    }

    #[test]
    fn a_custom_stop_list_replaces_the_english_one() {
        let custom = Analyzer::new(AnalyzerConfig {
            stop_words: vec!["Azure".into()],
            ..AnalyzerConfig::default()
        });
        assert_eq!(custom.terms("the Azure gateway"), ["the", "gateway"]);
    }
}
