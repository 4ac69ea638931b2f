//! Picks the sentences of the sources that best answer the question.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use chatgate_tokenizer::TextMap;

use crate::prompt::Source;
use crate::sentences::split_sentences;

/// At most this many sentences make an answer.
pub const MAX_SENTENCES: usize = 3;
/// Added to a sentence's score, divided by its 1-based position in its source: passages
/// tend to state their main point first, and this breaks ties in favour of it.
pub const POSITION_BONUS: f64 = 0.05;
/// A question term found only in a source's title (its heading path) counts this much
/// for each sentence of that source: "Handling throttling" tells what its sentences are
/// about even when they never repeat the words.
pub const TITLE_MATCH_WEIGHT: f64 = 0.5;
/// A sentence qualifies only if its coverage of the question is above this.
pub const MIN_COVERAGE: f64 = 1.0 / 3.0;
/// A sentence is kept only if its score is at least this fraction of the best sentence's,
/// so one strong match is not padded with barely related ones.
pub const RELATIVE_CUTOFF: f64 = 0.5;

struct Sentence<'a> {
    source: usize,
    position: usize,
    text: &'a str,
    terms: &'a BTreeSet<String>,
    marker: &'a str,
}

/// A source's content as [`extract_answer`] reads it: each sentence with its lowercase
/// form (for dropping duplicates) and its terms.
struct Analyzed {
    sentences: Vec<(String, String, BTreeSet<String>)>,
}

/// What [`extract_answer`] remembers: sources by content, and title terms by title
/// (`TextMap`s: a hit reads the whole key, eight bytes at a time).
#[derive(Default)]
struct Memo {
    contents: TextMap<Rc<Analyzed>>,
    titles: TextMap<Rc<BTreeSet<String>>>,
    bytes: usize,
}

/// At most this many contents and titles, and this many bytes of them, are remembered;
/// past either, all are forgotten at once.
const MAX_REMEMBERED: usize = 512;
const MAX_REMEMBERED_BYTES: usize = 1 << 20;

thread_local! {
    /// Sources analysed by this instance's earlier requests. Splitting and stemming a
    /// source's sentences was most of what this component ran per answer, and the
    /// passages of a corpus come back request after request.
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

impl Memo {
    fn make_room(&mut self, text: &str) -> bool {
        if self.contents.len() + self.titles.len() >= MAX_REMEMBERED
            || self.bytes + text.len() > MAX_REMEMBERED_BYTES
        {
            self.contents.clear();
            self.titles.clear();
            self.bytes = 0;
        }
        if text.len() > MAX_REMEMBERED_BYTES {
            return false;
        }
        self.bytes += text.len();
        true
    }

    fn content(&mut self, content: &str) -> Rc<Analyzed> {
        if let Some(analyzed) = self.contents.get(content) {
            return Rc::clone(analyzed);
        }
        let analyzed = Rc::new(Analyzed {
            sentences: split_sentences(content)
                .into_iter()
                .map(|text| {
                    let lowercase = text.to_lowercase();
                    let terms = term_set(&text);
                    (text, lowercase, terms)
                })
                .collect(),
        });
        if self.make_room(content) {
            self.contents.insert_new(content, Rc::clone(&analyzed));
        }
        analyzed
    }

    fn title(&mut self, title: &str) -> Rc<BTreeSet<String>> {
        if let Some(terms) = self.titles.get(title) {
            return Rc::clone(terms);
        }
        let terms = Rc::new(term_set(title));
        if self.make_room(title) {
            self.titles.insert_new(title, Rc::clone(&terms));
        }
        terms
    }
}

/// Words that say nothing about which sentence answers a question. Retrieval keeps a
/// short list because BM25's idf damps common words; sentence coverage has no idf, so
/// question words ("why", "how", "do") must not count as terms a sentence has to hold.
const QUESTION_STOP_WORDS: &[&str] = &[
    "a", "about", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been",
    "being", "but", "by", "can", "could", "did", "do", "does", "doing", "for", "from", "had",
    "has", "have", "he", "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "me",
    "my", "of", "on", "or", "our", "s", "she", "should", "so", "such", "t", "than", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "those", "to", "too", "us", "was",
    "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with",
    "would", "you", "your",
];

/// The retriever's analysis (Unicode words, case folding, Snowball English stemming)
/// with the question stop words, so that a question finds in a passage's sentences the
/// terms that made the retriever return that passage.
static ANALYZER: std::sync::LazyLock<chatgate_index::Analyzer> = std::sync::LazyLock::new(|| {
    chatgate_index::Analyzer::new(chatgate_index::AnalyzerConfig {
        stop_words: QUESTION_STOP_WORDS.iter().map(|w| w.to_string()).collect(),
        ..Default::default()
    })
});

/// The distinct stemmed, stop-word-free terms of `text`.
fn term_set(text: &str) -> BTreeSet<String> {
    ANALYZER.terms(text).into_iter().collect()
}

/// An extractive answer: up to [`MAX_SENTENCES`] sentences quoted from `sources`, in
/// source order, each followed by its source's `[docN]` marker. `None` if no sentence
/// covers enough of `question`.
///
/// Coverage is the idf-weighted share of the question's distinct terms that a sentence
/// contains (terms in its source's title count [`TITLE_MATCH_WEIGHT`]), with idf taken
/// over all sentences of the sources, so that a term every source repeats ("Azure")
/// weighs less than the one that makes the question specific ("429"). A sentence's
/// score is its coverage plus the position bonus.
pub fn extract_answer(sources: &[Source], question: &str) -> Option<String> {
    let question_terms = term_set(question);
    if question_terms.is_empty() {
        return None;
    }

    let (analyzed, titles): (Vec<Rc<Analyzed>>, Vec<Rc<BTreeSet<String>>>) =
        MEMO.with_borrow_mut(|memo| {
            sources
                .iter()
                .map(|source| (memo.content(&source.content), memo.title(&source.title)))
                .unzip()
        });

    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut sentences: Vec<Sentence<'_>> = Vec::new();
    for (source_index, (source, analyzed)) in sources.iter().zip(&analyzed).enumerate() {
        for (position, (text, lowercase, terms)) in analyzed.sentences.iter().enumerate() {
            if seen.insert(lowercase) {
                sentences.push(Sentence {
                    source: source_index,
                    position,
                    text,
                    terms,
                    marker: &source.marker,
                });
            }
        }
    }

    let sentence_count = sentences.len() as f64;
    let weights: Vec<(&String, f64)> = question_terms
        .iter()
        .map(|term| {
            let containing = sentences.iter().filter(|s| s.terms.contains(term)).count() as f64;
            let idf = (1.0 + (sentence_count - containing + 0.5) / (containing + 0.5)).ln();
            (term, idf)
        })
        .collect();
    let total_weight: f64 = weights.iter().map(|(_, weight)| weight).sum();

    let mut scored: Vec<(f64, &Sentence<'_>)> = sentences
        .iter()
        .filter_map(|sentence| {
            let matched: f64 = weights
                .iter()
                .map(|(term, weight)| {
                    if sentence.terms.contains(*term) {
                        *weight
                    } else if titles[sentence.source].contains(*term) {
                        weight * TITLE_MATCH_WEIGHT
                    } else {
                        0.0
                    }
                })
                .sum();
            let coverage = matched / total_weight;
            (coverage > MIN_COVERAGE).then(|| {
                (
                    coverage + POSITION_BONUS / (sentence.position as f64 + 1.0),
                    sentence,
                )
            })
        })
        .collect();

    scored.sort_by(|(a_score, a), (b_score, b)| {
        b_score
            .total_cmp(a_score)
            .then(a.source.cmp(&b.source))
            .then(a.position.cmp(&b.position))
    });
    let best = scored.first()?.0;
    scored.retain(|(score, _)| *score >= best * RELATIVE_CUTOFF);
    scored.truncate(MAX_SENTENCES);
    scored.sort_by_key(|(_, sentence)| (sentence.source, sentence.position));

    let cited: Vec<String> = scored
        .iter()
        .map(|(_, sentence)| format!("{} [{}]", sentence.text, sentence.marker))
        .collect();
    Some(cited.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(n: usize, content: &str) -> Source {
        Source {
            marker: format!("doc{n}"),
            title: format!("Title {n}"),
            location: format!("data/{n}.md"),
            content: content.into(),
        }
    }

    #[test]
    fn quotes_the_matching_sentence_with_its_marker() {
        let sources = [
            source(1, "Dogs bark at strangers. Cats purr."),
            source(
                2,
                "The firewall blocks SQL injection. It logs every decision.",
            ),
        ];
        assert_eq!(
            extract_answer(&sources, "What does the firewall block?").as_deref(),
            Some("The firewall blocks SQL injection. [doc2]")
        );
    }

    #[test]
    fn nothing_relevant_means_no_answer() {
        let sources = [source(1, "Dogs bark at strangers.")];
        assert_eq!(extract_answer(&sources, "How is quota measured?"), None);
        assert_eq!(extract_answer(&[], "How is quota measured?"), None);
        assert_eq!(extract_answer(&sources, "what is it?"), None);
    }

    #[test]
    fn a_sentence_must_cover_more_than_a_third_of_the_question() {
        let sources = [source(1, "Bread needs an oven. Ovens need power.")];
        // "bake" and "application" appear nowhere, so they carry most of the weight.
        assert_eq!(
            extract_answer(&sources, "How do I bake bread in an application?"),
            None
        );
        assert_eq!(
            extract_answer(&sources, "Does bread need an oven?").as_deref(),
            Some("Bread needs an oven. [doc1]")
        );
    }

    #[test]
    fn terms_rare_in_the_sources_outweigh_common_ones() {
        let sources = [
            source(
                1,
                "Azure OpenAI runs models. Azure OpenAI has deployments. Azure hosts it.",
            ),
            source(2, "A throttled call gets status 429 from the service."),
        ];
        // Each sentence holds one of the two terms, but "azure" is in three of four.
        assert_eq!(
            extract_answer(&sources, "Azure 429?").as_deref(),
            Some("A throttled call gets status 429 from the service. [doc2]")
        );
    }

    #[test]
    fn a_matching_title_makes_its_sentences_relevant() {
        let mut handling = source(
            1,
            "Honour the delay the server asks for. Back off with jitter.",
        );
        handling.title = "Rate limits > Handling throttling".into();
        let unrelated = source(2, "Rate cards list prices.");
        assert_eq!(
            extract_answer(&[handling, unrelated], "handling throttling").as_deref(),
            Some("Honour the delay the server asks for. [doc1] Back off with jitter. [doc1]")
        );
    }

    #[test]
    fn answers_keep_at_most_three_sentences_in_source_order() {
        let sources = [
            source(1, "Quota limits tokens. Unrelated text here."),
            source(
                2,
                "Tokens per minute define quota. Quota is per region. Quota tokens again.",
            ),
        ];
        let answer = extract_answer(&sources, "quota tokens").unwrap();
        assert_eq!(
            answer,
            "Quota limits tokens. [doc1] Tokens per minute define quota. [doc2] Quota tokens again. [doc2]"
        );
    }

    #[test]
    fn weak_matches_are_not_padded_onto_a_strong_one() {
        let sources = [source(
            1,
            "Managed identities remove stored secrets from configuration files. Configuration files hold secrets.",
        )];
        // Seven question terms: the second sentence has three (> a third), but under half
        // of the first sentence's score.
        let answer = extract_answer(
            &sources,
            "managed identities remove stored secrets from configuration files",
        )
        .unwrap();
        assert_eq!(
            answer,
            "Managed identities remove stored secrets from configuration files. [doc1]"
        );
    }

    #[test]
    fn earlier_sentences_win_ties() {
        let sources = [source(
            1,
            "Retry after waiting. Retry after waiting again. Retry after a pause. Retry after all.",
        )];
        let answer = extract_answer(&sources, "retry").unwrap();
        assert!(answer.starts_with("Retry after waiting. [doc1] Retry after waiting again. [doc1] Retry after a pause. [doc1]"));
        assert!(!answer.contains("Retry after all."));
    }

    #[test]
    fn remembered_sources_answer_as_new_ones() {
        let sources = [
            source(1, "Dogs bark at strangers. Cats purr."),
            source(
                2,
                "The firewall blocks SQL injection. It logs every decision.",
            ),
        ];
        let first = extract_answer(&sources, "What does the firewall block?");
        assert_eq!(
            extract_answer(&sources, "What does the firewall block?"),
            first
        );
        assert_eq!(
            extract_answer(&sources, "Do dogs bark?").as_deref(),
            Some("Dogs bark at strangers. [doc1]")
        );
    }

    #[test]
    fn duplicate_sentences_are_quoted_once() {
        let sources = [
            source(1, "Use private endpoints."),
            source(2, "Use private endpoints."),
        ];
        assert_eq!(
            extract_answer(&sources, "private endpoints").as_deref(),
            Some("Use private endpoints. [doc1]")
        );
    }
}
