//! `chatgate:retriever/retriever` (`wit/deps/chatgate-retriever-0.2.0`) in plain Rust.

/// Most passages one `search` may ask for. `chat` refuses more from clients and
/// operators (more would crowd the model's context for little gain); retrievers refuse
/// more with `invalid-query`.
pub const MAX_TOP_K: u32 = 50;
/// Most filters one `search` may carry; `chat` refuses more from clients.
pub const MAX_FILTERS: usize = 8;

/// One ranked passage. `source` is a URL or a corpus-relative path.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub id: String,
    pub title: String,
    pub content: String,
    pub source: String,
    /// Higher is better; comparable only within one answer.
    pub score: f32,
}

impl Passage {
    /// A passage without a score, with its arguments in the order a grounded prompt
    /// shows them (`chat` builds passages for its tests this way).
    pub fn new(id: &str, title: &str, source: &str, content: &str) -> Passage {
        Passage {
            id: id.into(),
            title: title.into(),
            content: content.into(),
            source: source.into(),
            score: 0.0,
        }
    }
}

/// Metadata equality filter: every filter must match for a passage to be returned.
/// Every retriever knows `source` (prefix match) and `title` (exact match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub field: String,
    pub value: String,
}

/// Why a search failed (`retrieval-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetrievalError {
    /// The query or a filter cannot be answered as given: the caller's fault.
    InvalidQuery(String),
    /// The index could not be loaded or reached, or is misconfigured.
    IndexUnavailable(String),
    /// A remote search service failed.
    Upstream(String),
}

impl RetrievalError {
    pub fn message(&self) -> &str {
        match self {
            RetrievalError::InvalidQuery(message)
            | RetrievalError::IndexUnavailable(message)
            | RetrievalError::Upstream(message) => message,
        }
    }
}

impl std::fmt::Display for RetrievalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for RetrievalError {}

/// What every retriever checks before searching: `top_k` within [`MAX_TOP_K`] and
/// at most [`MAX_FILTERS`] filters, each naming a field. Which fields a retriever
/// knows is its own to check.
pub fn check_search(top_k: u32, filters: &[Filter]) -> Result<(), RetrievalError> {
    if top_k > MAX_TOP_K {
        return Err(RetrievalError::InvalidQuery(format!(
            "at most {MAX_TOP_K} passages can be asked for, not {top_k}"
        )));
    }
    if filters.len() > MAX_FILTERS {
        return Err(RetrievalError::InvalidQuery(format!(
            "at most {MAX_FILTERS} filters are allowed, not {}",
            filters.len()
        )));
    }
    if filters.iter().any(|filter| filter.field.trim().is_empty()) {
        return Err(RetrievalError::InvalidQuery(
            "a filter names no field".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(field: &str) -> Filter {
        Filter {
            field: field.into(),
            value: "x".into(),
        }
    }

    #[test]
    fn top_k_is_bounded_by_the_contract() {
        assert_eq!(check_search(0, &[]), Ok(()));
        assert_eq!(check_search(MAX_TOP_K, &[]), Ok(()));
        assert!(matches!(
            check_search(MAX_TOP_K + 1, &[]),
            Err(RetrievalError::InvalidQuery(m)) if m.contains("51")
        ));
    }

    #[test]
    fn filters_are_bounded_and_name_a_field() {
        assert_eq!(check_search(1, &vec![filter("title"); MAX_FILTERS]), Ok(()));
        assert!(check_search(1, &vec![filter("title"); MAX_FILTERS + 1]).is_err());
        assert!(check_search(1, &[filter(" ")]).is_err());
    }
}
