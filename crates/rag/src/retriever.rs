//! `chatgate:retriever/retriever` (`wit/deps/chatgate-retriever-0.3.0`) in plain Rust.

/// Most passages one `search` may ask for. `chat` refuses more from clients and
/// operators (more would crowd the model's context for little gain); retrievers refuse
/// more with `invalid-query`.
pub const MAX_TOP_K: u32 = 50;
/// Most filters one `search` may carry; `chat` refuses more from clients.
pub const MAX_FILTERS: usize = 8;

/// One ranked passage. `source` is a URL or a corpus-relative path.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    /// Names the passage within the retriever's index; `chat` numbers the passages it
    /// cites by their rank (`[doc1]`, ...), not by this.
    pub id: String,
    /// The document's title or heading path, shown next to the passage in the prompt.
    pub title: String,
    /// The text the model is grounded on.
    pub content: String,
    /// Where the passage comes from: what a `source` filter matches by prefix.
    pub source: String,
    /// Higher is better; comparable only within one answer.
    pub score: f32,
    /// Further fields of the passage's document as (name, value) pairs, in the
    /// retriever's order; empty when it has none to give.
    pub metadata: Vec<(String, String)>,
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
            metadata: Vec::new(),
        }
    }
}

/// Metadata equality filter: every filter must match for a passage to be returned.
/// Every retriever knows `source` (prefix match) and `title` (exact match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The metadata field to compare.
    pub field: String,
    /// The value it must have (or, for `source`, start with).
    pub value: String,
}

/// Why one of the filters cannot be applied (`filter-refusal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterRefusal {
    /// The `field` of the refused filter, as the caller sent it, when the retriever
    /// can tell which filter it is (a remote service may not say).
    pub field: Option<String>,
    /// Why, for the client (`chat` answers it as a 400 on `chatgate.filters`).
    pub message: String,
}

/// Why a search failed (`retrieval-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetrievalError {
    /// The query cannot be answered as given: the caller's fault.
    InvalidQuery(String),
    /// A filter cannot be applied, or there are too many: the caller's fault.
    InvalidFilter(FilterRefusal),
    /// The index could not be loaded or reached, or is misconfigured.
    IndexUnavailable(String),
    /// A remote search service failed.
    Upstream(String),
    /// A remote search service is throttling requests; retry after the given number
    /// of seconds, when it said.
    RateLimited {
        /// The delay the service asked for, if it named one.
        retry_after_seconds: Option<u32>,
    },
    /// The search did not finish within the retriever's deadline; the text says which.
    Timeout(String),
}

impl RetrievalError {
    /// A refusal of the filter on `field`.
    pub fn invalid_filter(field: impl Into<String>, message: impl Into<String>) -> Self {
        RetrievalError::InvalidFilter(FilterRefusal {
            field: Some(field.into()),
            message: message.into(),
        })
    }
}

impl std::fmt::Display for RetrievalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetrievalError::InvalidQuery(message)
            | RetrievalError::IndexUnavailable(message)
            | RetrievalError::Upstream(message)
            | RetrievalError::Timeout(message) => f.write_str(message),
            RetrievalError::InvalidFilter(refusal) => f.write_str(&refusal.message),
            RetrievalError::RateLimited {
                retry_after_seconds: Some(seconds),
            } => write!(
                f,
                "the search service is throttling requests; retry after {seconds} s"
            ),
            RetrievalError::RateLimited {
                retry_after_seconds: None,
            } => f.write_str("the search service is throttling requests"),
        }
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
    if let Some(extra) = filters.get(MAX_FILTERS) {
        return Err(RetrievalError::invalid_filter(
            extra.field.clone(),
            format!(
                "at most {MAX_FILTERS} filters are allowed, not {}",
                filters.len()
            ),
        ));
    }
    if filters.iter().any(|filter| filter.field.trim().is_empty()) {
        return Err(RetrievalError::InvalidFilter(FilterRefusal {
            field: None,
            message: "a filter names no field".into(),
        }));
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
        assert!(matches!(
            check_search(1, &vec![filter("title"); MAX_FILTERS + 1]),
            Err(RetrievalError::InvalidFilter(refusal)) if refusal.field.as_deref() == Some("title")
        ));
        assert!(matches!(
            check_search(1, &[filter(" ")]),
            Err(RetrievalError::InvalidFilter(_))
        ));
    }

    #[test]
    fn throttling_says_when_to_retry_if_it_was_told() {
        let told = RetrievalError::RateLimited {
            retry_after_seconds: Some(7),
        };
        assert!(told.to_string().ends_with("retry after 7 s"), "{told}");
        let untold = RetrievalError::RateLimited {
            retry_after_seconds: None,
        };
        assert!(!untold.to_string().contains("retry after"), "{untold}");
    }
}
