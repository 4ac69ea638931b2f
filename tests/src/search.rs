//! A local Azure AI Search service (the test double for `retrieval-azure-search`): it
//! answers the real `POST /indexes/{index}/docs/search?api-version=…` request shape
//! with Azure-shaped JSON, checks the credential (`api-key`, or `Authorization: Bearer`
//! with a token it was given), ranks its documents by the query's words, applies
//! `top`, `select` and the OData `filter` subset a retriever needs (`eq`, `ne`, `ge`,
//! `gt`, `le`, `lt` on string literals, `and`, `or`, parentheses), and answers the
//! errors Azure does (`400` for a filter it cannot parse, an unknown request
//! parameter or a malformed `vectorQueries`, `403` for a wrong credential, `404` for
//! an unknown index). It runs on [`Upstream`], which records every request.
//!
//! It is a double, not a search engine. Its keyword side scores exact lowercase
//! words (a title word counts twice), as an index without stemming analysers would.
//! Its vector fields have a stand-in "vectorizer": a bag of words with English plurals
//! folded (`swarms` → `swarm`), compared by cosine, so a vector query of kind `text`
//! deterministically finds word forms the keyword side misses. A hybrid request's
//! rankings (keyword, and one per vector field of each vector query) are fused by
//! reciprocal rank fusion with Azure's constant 60, and `@search.score` is the fused
//! score, as Azure reports it. With `queryType: semantic` the "semantic ranker" gives
//! each result `@search.rerankerScore` = 4 × the vectorizer's cosine of the query and
//! title + content, and orders by it. Vector queries of kind `vector` (raw embeddings)
//! are refused: there is no embedding model to compare them with.

use crate::upstream::{Answer, Recorded, Upstream};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// A document of the index; its fields are named as Azure OpenAI "on your data"
/// indexes name them.
#[derive(Debug, Clone)]
pub struct Document {
    pub id: &'static str,
    pub title: &'static str,
    pub content: &'static str,
    pub filepath: &'static str,
}

impl Document {
    fn field(&self, name: &str) -> Option<&'static str> {
        match name {
            "id" => Some(self.id),
            "title" => Some(self.title),
            "content" => Some(self.content),
            "filepath" => Some(self.filepath),
            _ => None,
        }
    }
}

/// A vector field (`Collection(Edm.Single)`) of the index, with a vectorizer that
/// embeds the text field `source` of every document.
#[derive(Debug, Clone, Copy)]
pub struct VectorField {
    pub name: &'static str,
    pub source: &'static str,
}

/// One index of the service.
#[derive(Debug, Clone)]
pub struct SearchIndex {
    pub name: &'static str,
    pub api_key: &'static str,
    /// Entra ID access tokens accepted as `Authorization: Bearer` (role-based access).
    pub bearer_tokens: Vec<String>,
    pub documents: Vec<Document>,
    pub vector_fields: Vec<VectorField>,
}

/// The text fields every document has.
const TEXT_FIELDS: [&str; 4] = ["id", "title", "content", "filepath"];

/// Azure's constant in reciprocal rank fusion: `1 / (60 + rank)`.
const RRF_K: f64 = 60.0;

/// The parameters Azure's `SearchRequest` (api-version 2024-07-01) defines; anything
/// else in the body is refused, as Azure refuses it.
const SEARCH_PARAMETERS: &[&str] = &[
    "count",
    "facets",
    "filter",
    "highlight",
    "highlightPostTag",
    "highlightPreTag",
    "minimumCoverage",
    "orderby",
    "queryType",
    "scoringStatistics",
    "sessionId",
    "scoringParameters",
    "scoringProfile",
    "search",
    "searchFields",
    "searchMode",
    "select",
    "skip",
    "top",
    "semanticConfiguration",
    "semanticErrorHandling",
    "semanticMaxWaitInMilliseconds",
    "semanticQuery",
    "answers",
    "captions",
    "vectorQueries",
    "vectorFilterMode",
];

/// The parameters of one vector query (`RawVectorQuery` / `VectorizableTextQuery`).
const VECTOR_QUERY_PARAMETERS: &[&str] = &[
    "kind",
    "k",
    "fields",
    "exhaustive",
    "oversampling",
    "weight",
    "vector",
    "text",
];

/// Serves `index` as Azure AI Search does.
pub async fn start(index: SearchIndex) -> Upstream {
    Upstream::start(move |request| answer(request, &index)).await
}

/// Whether the request carries a credential the service accepts. An `api-key` header
/// is the credential whenever present, as in Azure.
fn authorized(request: &Recorded, index: &SearchIndex) -> bool {
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
    match header("api-key") {
        Some(key) => key == index.api_key,
        None => header("authorization")
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|token| index.bearer_tokens.iter().any(|t| t == token)),
    }
}

/// A vector query, checked.
struct VectorQuery {
    text: String,
    fields: Vec<VectorField>,
    k: usize,
}

/// The vector queries of `body`, or Azure's reason for refusing them.
fn vector_queries(body: &Value, index: &SearchIndex) -> Result<Vec<VectorQuery>, String> {
    let Some(queries) = body.get("vectorQueries") else {
        return Ok(Vec::new());
    };
    let invalid = |detail: String| format!("The request is invalid. Details: {detail}");
    let queries = queries
        .as_array()
        .ok_or_else(|| invalid("vectorQueries must be an array of vector queries.".into()))?;
    let mut checked = Vec::new();
    for query in queries {
        let query = query
            .as_object()
            .ok_or_else(|| invalid("a vector query must be an object.".into()))?;
        if let Some(unknown) = query
            .keys()
            .find(|key| !VECTOR_QUERY_PARAMETERS.contains(&key.as_str()))
        {
            return Err(invalid(format!(
                "The parameter '{unknown}' in the request payload is not a valid parameter for a vector query."
            )));
        }
        match query.get("kind").and_then(Value::as_str) {
            Some("text") => {}
            Some("vector") => {
                return Err(invalid(
                    "this test double has no embedding model: it answers vector queries of kind 'text' only.".into(),
                ));
            }
            Some(other) => {
                return Err(invalid(format!(
                    "Unknown vector query kind '{other}'; expected 'vector' or 'text'."
                )));
            }
            None => {
                return Err(invalid(
                    "The vector query parameter 'kind' is required.".into(),
                ));
            }
        }
        let text = match query.get("text").and_then(Value::as_str) {
            Some(text) if !text.trim().is_empty() => text.to_string(),
            _ => {
                return Err(invalid(
                    "The 'text' parameter is required for vector queries of kind 'text'.".into(),
                ));
            }
        };
        let names = match query.get("fields").and_then(Value::as_str) {
            Some(names) if !names.trim().is_empty() => names,
            _ => {
                return Err(invalid(
                    "The 'fields' parameter of a vector query is required.".into(),
                ));
            }
        };
        let mut fields = Vec::new();
        for name in names.split(',').map(str::trim) {
            match index.vector_fields.iter().find(|f| f.name == name) {
                Some(field) => fields.push(*field),
                None if TEXT_FIELDS.contains(&name) => {
                    return Err(invalid(format!(
                        "The field '{name}' in the vector field list is not a vector field."
                    )));
                }
                None => {
                    return Err(invalid(format!(
                        "Unknown field '{name}' in vector field list."
                    )));
                }
            }
        }
        let k = match query.get("k") {
            // Azure's default when a vector query names no k.
            None => 50,
            Some(k) => match k.as_u64() {
                Some(k) if k > 0 => k as usize,
                _ => return Err(invalid("'k' must be a positive integer.".into())),
            },
        };
        checked.push(VectorQuery { text, fields, k });
    }
    Ok(checked)
}

/// Azure AI Search's answer to `request` against `index`.
pub fn answer(request: &Recorded, index: &SearchIndex) -> Answer {
    let (path, query) = request
        .path_and_query
        .split_once('?')
        .unwrap_or((&request.path_and_query, ""));
    if !query
        .split('&')
        .any(|pair| pair.starts_with("api-version=") && pair.len() > 12)
    {
        return error(
            400,
            "The request is invalid. The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    if !authorized(request, index) {
        // Azure answers a wrong credential with 403 and no body.
        return Answer::new(403, "application/json", "");
    }
    let Some(name) = path
        .strip_prefix("/indexes/")
        .and_then(|rest| rest.strip_suffix("/docs/search"))
    else {
        return error(
            404,
            "No HTTP resource was found that matches the request URI.",
        );
    };
    if request.method != "POST" {
        return error(405, "The requested resource does not support the method.");
    }
    if name != index.name {
        return error(
            404,
            &format!("The index '{name}' for service 'double' was not found."),
        );
    }
    let body = &request.body;
    if let Some(unknown) = body
        .as_object()
        .and_then(|o| o.keys().find(|k| !SEARCH_PARAMETERS.contains(&k.as_str())))
    {
        return error(
            400,
            &format!(
                "The request is invalid. Details: The parameter '{unknown}' in the request payload is not a valid parameter for the operation 'search'."
            ),
        );
    }
    let search = body["search"].as_str().unwrap_or("*");
    let top = body["top"].as_u64().unwrap_or(50) as usize;
    let filter = match body["filter"].as_str().map(parse_filter).transpose() {
        Ok(filter) => filter,
        Err(reason) => {
            return error(
                400,
                &format!("Invalid expression: {reason}\r\nParameter name: $filter"),
            );
        }
    };
    let vector_queries = match vector_queries(body, index) {
        Ok(queries) => queries,
        Err(message) => return error(400, &message),
    };
    let post_filter = match body.get("vectorFilterMode").map(Value::as_str) {
        None | Some(Some("preFilter")) => false,
        Some(Some("postFilter")) => true,
        Some(other) => {
            return error(
                400,
                &format!(
                    "The request is invalid. Details: Invalid vectorFilterMode {other:?}; expected 'preFilter' or 'postFilter'."
                ),
            );
        }
    };
    let select: Option<Vec<&str>> = body["select"]
        .as_str()
        .map(|s| s.split(',').map(str::trim).collect());
    let semantic = body["queryType"] == "semantic";
    let passes = |d: &Document| filter.as_ref().is_none_or(|f| f.holds(d));

    let terms = words(search);
    let mut keyword: Vec<(f64, usize)> = index
        .documents
        .iter()
        .enumerate()
        .filter(|(_, d)| passes(d))
        .map(|(i, d)| {
            let title = words(d.title);
            let content = words(d.content);
            let score: usize = terms
                .iter()
                .map(|t| {
                    2 * title.iter().filter(|w| *w == t).count()
                        + content.iter().filter(|w| *w == t).count()
                })
                .sum();
            (score as f64, i)
        })
        .filter(|(score, _)| search == "*" || *score > 0.0)
        .collect();
    keyword.sort_by(|a, b| b.0.total_cmp(&a.0));

    let mut scores: Vec<(f64, usize)> = if vector_queries.is_empty() {
        keyword
    } else {
        let mut rankings = vec![keyword];
        for query in &vector_queries {
            let embedded = embed(&query.text);
            for field in &query.fields {
                let mut nearest: Vec<(f64, usize)> = index
                    .documents
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| post_filter || passes(d))
                    .map(|(i, d)| {
                        (
                            cosine(&embedded, &embed(d.field(field.source).unwrap_or(""))),
                            i,
                        )
                    })
                    .filter(|(similarity, _)| *similarity > 0.0)
                    .collect();
                nearest.sort_by(|a, b| b.0.total_cmp(&a.0));
                nearest.truncate(query.k);
                nearest.retain(|(_, i)| passes(&index.documents[*i]));
                rankings.push(nearest);
            }
        }
        let mut fused: Vec<(f64, usize)> = Vec::new();
        for ranking in rankings {
            for (rank, (_, i)) in ranking.into_iter().enumerate() {
                let share = 1.0 / (RRF_K + rank as f64 + 1.0);
                match fused.iter_mut().find(|(_, d)| *d == i) {
                    Some(entry) => entry.0 += share,
                    None => fused.push((share, i)),
                }
            }
        }
        fused.sort_by(|a, b| b.0.total_cmp(&a.0));
        fused
    };
    scores.truncate(top);
    let query_embedding = embed(search);
    let mut results: Vec<(Option<f64>, Value)> = scores
        .into_iter()
        .map(|(score, i)| {
            let document = &index.documents[i];
            let mut result = Map::new();
            result.insert("@search.score".into(), json!(score));
            let reranker = semantic.then(|| {
                let text = format!("{} {}", document.title, document.content);
                4.0 * cosine(&query_embedding, &embed(&text))
            });
            if let Some(reranker) = reranker {
                result.insert("@search.rerankerScore".into(), json!(reranker));
            }
            for name in TEXT_FIELDS {
                if select.as_ref().is_none_or(|s| s.contains(&name)) {
                    result.insert(name.into(), json!(document.field(name)));
                }
            }
            (reranker, Value::Object(result))
        })
        .collect();
    if semantic {
        results.sort_by(|a, b| b.0.unwrap_or(0.0).total_cmp(&a.0.unwrap_or(0.0)));
    }
    let value: Vec<Value> = results.into_iter().map(|(_, result)| result).collect();
    Answer::json(
        200,
        &json!({
            "@odata.context": format!("https://double.search.windows.net/indexes('{name}')/$metadata#docs(*)"),
            "value": value,
        }),
    )
}

/// The double's "vectorizer": word counts with English plurals folded.
fn embed(text: &str) -> HashMap<String, f64> {
    let mut counts = HashMap::new();
    for word in words(text) {
        let folded = match word.strip_suffix('s') {
            Some(stem) if stem.len() >= 3 && !stem.ends_with('s') => stem.to_string(),
            _ => word,
        };
        *counts.entry(folded).or_insert(0.0) += 1.0;
    }
    counts
}

fn cosine(a: &HashMap<String, f64>, b: &HashMap<String, f64>) -> f64 {
    let dot: f64 = a.iter().filter_map(|(w, x)| b.get(w).map(|y| x * y)).sum();
    let norm = |v: &HashMap<String, f64>| v.values().map(|x| x * x).sum::<f64>().sqrt();
    let norms = norm(a) * norm(b);
    if norms == 0.0 { 0.0 } else { dot / norms }
}

/// Azure's error body.
pub fn error(status: u16, message: &str) -> Answer {
    Answer::json(status, &json!({"error": {"code": "", "message": message}}))
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A parsed OData filter of the supported subset.
#[derive(Debug)]
pub enum Filter {
    Compare {
        field: String,
        op: String,
        literal: String,
    },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

impl Filter {
    fn holds(&self, document: &Document) -> bool {
        match self {
            Filter::And(a, b) => a.holds(document) && b.holds(document),
            Filter::Or(a, b) => a.holds(document) || b.holds(document),
            Filter::Compare { field, op, literal } => {
                let Some(value) = document.field(field) else {
                    return false;
                };
                let value = value.to_string();
                match op.as_str() {
                    "eq" => value == *literal,
                    "ne" => value != *literal,
                    "ge" => value >= *literal,
                    "gt" => value > *literal,
                    "le" => value <= *literal,
                    "lt" => value < *literal,
                    _ => false,
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Literal(String),
    Open,
    Close,
}

/// Parses the supported OData subset; the error says why as Azure's would.
pub fn parse_filter(text: &str) -> Result<Filter, String> {
    let tokens = tokenize(text)?;
    let mut position = 0;
    let filter = parse_or(&tokens, &mut position)?;
    if position != tokens.len() {
        return Err(format!("syntax error at position {position} in '{text}'."));
    }
    Ok(filter)
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '\'' => {
                chars.next();
                let mut literal = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(format!(
                                "there is an unterminated string literal in '{text}'."
                            ));
                        }
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            literal.push('\'');
                        }
                        Some('\'') => break,
                        Some(other) => literal.push(other),
                    }
                }
                tokens.push(Token::Literal(literal));
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word));
            }
            other => return Err(format!("unexpected character '{other}' in '{text}'.")),
        }
    }
    Ok(tokens)
}

fn parse_or(tokens: &[Token], position: &mut usize) -> Result<Filter, String> {
    let mut left = parse_and(tokens, position)?;
    while tokens.get(*position) == Some(&Token::Word("or".into())) {
        *position += 1;
        left = Filter::Or(Box::new(left), Box::new(parse_and(tokens, position)?));
    }
    Ok(left)
}

fn parse_and(tokens: &[Token], position: &mut usize) -> Result<Filter, String> {
    let mut left = parse_primary(tokens, position)?;
    while tokens.get(*position) == Some(&Token::Word("and".into())) {
        *position += 1;
        left = Filter::And(Box::new(left), Box::new(parse_primary(tokens, position)?));
    }
    Ok(left)
}

fn parse_primary(tokens: &[Token], position: &mut usize) -> Result<Filter, String> {
    match tokens.get(*position) {
        Some(Token::Open) => {
            *position += 1;
            let inner = parse_or(tokens, position)?;
            if tokens.get(*position) != Some(&Token::Close) {
                return Err("')' expected.".into());
            }
            *position += 1;
            Ok(inner)
        }
        Some(Token::Word(field)) => {
            let op = match tokens.get(*position + 1) {
                Some(Token::Word(op))
                    if ["eq", "ne", "ge", "gt", "le", "lt"].contains(&op.as_str()) =>
                {
                    op.clone()
                }
                _ => {
                    return Err(format!(
                        "a comparison operator is expected after '{field}'."
                    ));
                }
            };
            let Some(Token::Literal(literal)) = tokens.get(*position + 2) else {
                return Err(format!(
                    "a string literal is expected after '{field} {op}'."
                ));
            };
            if !TEXT_FIELDS.contains(&field.as_str()) {
                return Err(format!(
                    "Could not find a property named '{field}' on type 'search.document'."
                ));
            }
            *position += 3;
            Ok(Filter::Compare {
                field: field.clone(),
                op,
                literal: literal.clone(),
            })
        }
        other => Err(format!("unexpected token {other:?}.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(title: &'static str, filepath: &'static str) -> Document {
        Document {
            id: "x",
            title,
            content: "",
            filepath,
        }
    }

    #[test]
    fn the_filter_subset_reads_escaped_quotes_and_ranges() {
        let filter = parse_filter("title eq 'O''Brien'").unwrap();
        assert!(filter.holds(&doc("O'Brien", "")));
        assert!(!filter.holds(&doc("OBrien", "")));
        let range =
            parse_filter("(filepath ge 'a/' and filepath lt 'a0') and (title ne 'x')").unwrap();
        assert!(range.holds(&doc("y", "a/b.md")));
        assert!(!range.holds(&doc("y", "ab.md")));
        assert!(!range.holds(&doc("x", "a/b.md")));
    }

    #[test]
    fn an_unescaped_quote_or_unknown_field_is_a_syntax_error() {
        assert!(parse_filter("title eq 'O'Brien'").is_err());
        assert!(parse_filter("author eq 'x'").is_err());
        assert!(parse_filter("title eq 'x' or").is_err());
    }
}
