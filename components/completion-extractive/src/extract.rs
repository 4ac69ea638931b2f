//! Picks the sentences of the sources that best answer the question.

use std::collections::BTreeSet;

use crate::prompt::Source;
use crate::sentences::split_sentences;
use crate::text;

/// At most this many sentences make an answer.
pub const MAX_SENTENCES: usize = 3;
/// Added to a sentence's score, divided by its 1-based position in its source: passages
/// tend to state their main point first, and this breaks ties in favour of it.
pub const POSITION_BONUS: f64 = 0.05;
/// A sentence is kept only if its score is at least this fraction of the best sentence's,
/// so one strong match is not padded with barely related ones.
pub const RELATIVE_CUTOFF: f64 = 0.5;

struct Candidate<'a> {
    source: usize,
    position: usize,
    sentence: String,
    marker: &'a str,
    score: f64,
}

/// The distinct stemmed, stop-word-free terms of `text`.
fn term_set(text: &str) -> BTreeSet<String> {
    text::terms(text).into_iter().collect()
}

/// An extractive answer: up to [`MAX_SENTENCES`] sentences quoted from `sources`, in
/// source order, each followed by its source's `[docN]` marker. `None` if no sentence
/// shares enough terms with `question`.
///
/// A sentence qualifies only if it contains more than a third of the question's distinct
/// terms; its score is the fraction it contains plus the position bonus.
pub fn extract_answer(sources: &[Source], question: &str) -> Option<String> {
    let question_terms = term_set(question);
    if question_terms.is_empty() {
        return None;
    }
    let question_size = question_terms.len();

    let mut seen = BTreeSet::new();
    let mut candidates: Vec<Candidate<'_>> = Vec::new();
    for (source_index, source) in sources.iter().enumerate() {
        for (position, sentence) in split_sentences(&source.content).into_iter().enumerate() {
            let matched = term_set(&sentence).intersection(&question_terms).count();
            if matched * 3 <= question_size || !seen.insert(sentence.to_lowercase()) {
                continue;
            }
            let score =
                matched as f64 / question_size as f64 + POSITION_BONUS / (position as f64 + 1.0);
            candidates.push(Candidate {
                source: source_index,
                position,
                sentence,
                marker: &source.marker,
                score,
            });
        }
    }

    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.source.cmp(&b.source))
            .then(a.position.cmp(&b.position))
    });
    let best = candidates.first()?.score;
    candidates.retain(|candidate| candidate.score >= best * RELATIVE_CUTOFF);
    candidates.truncate(MAX_SENTENCES);
    candidates.sort_by_key(|candidate| (candidate.source, candidate.position));

    let cited: Vec<String> = candidates
        .iter()
        .map(|candidate| format!("{} [{}]", candidate.sentence, candidate.marker))
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
    fn a_sentence_must_match_more_than_a_third_of_the_question() {
        let sources = [source(1, "Bread needs an oven.")];
        // One of three terms (bake, bread, application): not enough.
        assert_eq!(
            extract_answer(&sources, "How do I bake bread in an application?"),
            None
        );
        // One of two terms: enough.
        assert!(extract_answer(&sources, "bread recipes").is_some());
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
