//! The `filter` of a search request: the contract's metadata filters as an OData
//! expression of Azure AI Search.
//!
//! Values only ever appear inside OData string literals, where a `'` is doubled, and
//! field names come from validated configuration, so no filter value can change the
//! expression's structure.
//!
//! `title` is an exact match: `title eq 'x'`. `source` is a prefix match in the
//! contract, and Azure's OData has no `startswith` for filters; `search.ismatch('x*')`
//! would go through the field's analyser (splitting paths into words) and need a
//! searchable field. A prefix is instead the range of strings from the prefix up to
//! its successor: `filepath ge 'docs/' and filepath lt 'docs0'`, which is exact on a
//! `filterable` field under the service's ordinal string ordering. The source field
//! must therefore be `filterable` in the index (it is in the indexes Azure OpenAI "on
//! your data" creates).

use crate::config::Fields;
use crate::{Filter, RetrievalError};

/// `value` as an OData string literal: quoted, with `'` doubled.
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The OData filter for `filters` (all must hold), or `None` when nothing constrains
/// the search.
pub fn filter_expression(
    filters: &[Filter],
    fields: &Fields,
) -> Result<Option<String>, RetrievalError> {
    let mut terms = Vec::new();
    for filter in filters {
        if filter.value.chars().any(char::is_control) {
            return Err(RetrievalError::invalid_filter(
                filter.field.clone(),
                format!(
                    "the `{}` filter value holds control characters",
                    filter.field
                ),
            ));
        }
        match filter.field.as_str() {
            "title" => terms.push(format!("{} eq {}", fields.title, literal(&filter.value))),
            "source" => {
                if let Some(term) = prefix_range(&fields.source, &filter.value) {
                    terms.push(term);
                }
            }
            other => {
                return Err(RetrievalError::invalid_filter(
                    other,
                    format!(
                        "unknown filter field `{other}`; supported fields are `source` and `title`"
                    ),
                ));
            }
        }
    }
    Ok(match terms.len() {
        0 => None,
        1 => terms.pop(),
        _ => Some(
            terms
                .iter()
                .map(|term| format!("({term})"))
                .collect::<Vec<_>>()
                .join(" and "),
        ),
    })
}

/// Every string starting with `prefix`: `field ge 'prefix' and field lt 'successor'`.
/// An empty prefix matches everything (no term).
fn prefix_range(field: &str, prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return None;
    }
    let lower = format!("{field} ge {}", literal(prefix));
    Some(match successor(prefix) {
        Some(upper) => format!("{lower} and {field} lt {}", literal(&upper)),
        // Only a run of U+10FFFF has no successor; `ge` alone is then exact enough.
        None => lower,
    })
}

/// The least string greater than every string starting with `prefix`: the prefix with
/// its last character incremented (dropping trailing characters that cannot be).
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = next_char(last) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn next_char(c: char) -> Option<char> {
    match c {
        // Surrogates are not characters: the next one after U+D7FF is U+E000.
        '\u{D7FF}' => Some('\u{E000}'),
        char::MAX => None,
        c => char::from_u32(u32::from(c) + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::fields;

    fn filter(field: &str, value: &str) -> Filter {
        Filter {
            field: field.into(),
            value: value.into(),
        }
    }

    fn expression(filters: &[Filter]) -> Option<String> {
        filter_expression(filters, &fields()).unwrap()
    }

    #[test]
    fn literals_double_single_quotes_and_keep_everything_else() {
        assert_eq!(literal("plain"), "'plain'");
        assert_eq!(literal("O'Brien"), "'O''Brien'");
        assert_eq!(literal("''"), "''''''");
        assert_eq!(literal(""), "''");
        assert_eq!(
            literal("naïve – \"quoted\" (x) and y"),
            "'naïve – \"quoted\" (x) and y'"
        );
    }

    #[test]
    fn no_filters_means_no_filter() {
        assert_eq!(expression(&[]), None);
    }

    #[test]
    fn a_title_filter_is_an_exact_match_on_the_configured_field() {
        assert_eq!(
            expression(&[filter("title", "Web application firewall")]),
            Some("title eq 'Web application firewall'".into())
        );
        let renamed = Fields {
            title: "doc_title".into(),
            ..fields()
        };
        assert_eq!(
            filter_expression(&[filter("title", "x")], &renamed).unwrap(),
            Some("doc_title eq 'x'".into())
        );
    }

    #[test]
    fn a_quote_in_a_value_cannot_end_the_literal_and_inject_a_clause() {
        let injected = expression(&[filter("title", "x' or true or title eq 'y")]).unwrap();
        assert_eq!(injected, "title eq 'x'' or true or title eq ''y'");
        // Read back as OData: one literal, so the whole value is the compared string.
        let inner = injected
            .strip_prefix("title eq '")
            .unwrap()
            .strip_suffix('\'')
            .unwrap();
        assert_eq!(inner.replace("''", "'"), "x' or true or title eq 'y");
        assert!(!inner.replace("''", "").contains('\''));
    }

    #[test]
    fn a_source_filter_is_a_prefix_range_on_the_source_field() {
        assert_eq!(
            expression(&[filter("source", "data/")]),
            Some("filepath ge 'data/' and filepath lt 'data0'".into())
        );
        assert_eq!(
            expression(&[filter("source", "data/waf.md")]),
            Some("filepath ge 'data/waf.md' and filepath lt 'data/waf.me'".into())
        );
        assert_eq!(
            expression(&[filter("source", "it's/")]),
            Some("filepath ge 'it''s/' and filepath lt 'it''s0'".into())
        );
    }

    #[test]
    fn the_prefix_range_holds_exactly_the_strings_with_that_prefix() {
        let prefix = "data/";
        let upper = successor(prefix).unwrap();
        for inside in ["data/", "data/a.md", "data/zzz/ÿ", "data/\u{10FFFF}"] {
            assert!(inside >= prefix && inside < upper.as_str(), "{inside}");
        }
        for outside in ["data", "data.md", "data0", "datb/", "dat", "Data/"] {
            assert!(
                !(outside >= prefix && outside < upper.as_str()),
                "{outside}"
            );
        }
    }

    #[test]
    fn successors_skip_surrogates_and_carry_past_the_last_character() {
        assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{10FFFF}\u{10FFFF}"), None);
        assert_eq!(
            expression(&[filter("source", "\u{10FFFF}")]),
            Some("filepath ge '\u{10FFFF}'".into())
        );
    }

    #[test]
    fn an_empty_source_prefix_matches_everything() {
        assert_eq!(expression(&[filter("source", "")]), None);
        assert_eq!(
            expression(&[filter("source", ""), filter("title", "T")]),
            Some("title eq 'T'".into())
        );
    }

    #[test]
    fn several_filters_must_all_hold() {
        assert_eq!(
            expression(&[filter("source", "a/"), filter("title", "B")]),
            Some("(filepath ge 'a/' and filepath lt 'a0') and (title eq 'B')".into())
        );
    }

    #[test]
    fn unknown_fields_and_control_characters_are_refused_filters() {
        let Err(RetrievalError::InvalidFilter(refusal)) =
            filter_expression(&[filter("author", "x")], &fields())
        else {
            panic!("unknown field accepted");
        };
        assert_eq!(refusal.field.as_deref(), Some("author"));
        assert!(
            refusal.message.contains("`author`") && refusal.message.contains("`source`"),
            "{}",
            refusal.message
        );
        assert!(matches!(
            filter_expression(&[filter("title", "a\nb")], &fields()),
            Err(RetrievalError::InvalidFilter(refusal)) if refusal.field.as_deref() == Some("title")
        ));
    }
}
