//! A local Azure AI Search service (the test double for `retrieval-azure-search`): it
//! answers the real `POST /indexes/{index}/docs/search?api-version=…` request shape
//! with Azure-shaped JSON, checks the `api-key` header, ranks its documents by the
//! query's words, applies `top`, `select` and the OData `filter` subset a retriever
//! needs (`eq`, `ne`, `ge`, `gt`, `le`, `lt` on string literals, `and`, `or`,
//! parentheses), and answers the errors Azure does (`400` for a filter it cannot
//! parse, `403` for a wrong key, `404` for an unknown index). It runs on
//! [`Upstream`], which records every request.

use crate::upstream::{Answer, Recorded, Upstream};
use serde_json::{Map, Value, json};

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

/// One index of the service.
#[derive(Debug, Clone)]
pub struct SearchIndex {
    pub name: &'static str,
    pub api_key: &'static str,
    pub documents: Vec<Document>,
}

/// Serves `index` as Azure AI Search does.
pub async fn start(index: SearchIndex) -> Upstream {
    Upstream::start(move |request| answer(request, &index)).await
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
    if request.headers.get("api-key").and_then(|v| v.to_str().ok()) != Some(index.api_key) {
        // Azure answers a wrong key with 403 and no body.
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
    let select: Option<Vec<&str>> = body["select"]
        .as_str()
        .map(|s| s.split(',').map(str::trim).collect());
    let semantic = body["queryType"] == "semantic";
    let terms = words(search);
    let mut hits: Vec<(f64, &Document)> = index
        .documents
        .iter()
        .filter(|d| filter.as_ref().is_none_or(|f| f.holds(d)))
        .map(|d| {
            let title = words(d.title);
            let content = words(d.content);
            let score: usize = terms
                .iter()
                .map(|t| {
                    2 * title.iter().filter(|w| *w == t).count()
                        + content.iter().filter(|w| *w == t).count()
                })
                .sum();
            (score as f64, d)
        })
        .filter(|(score, _)| search == "*" || *score > 0.0)
        .collect();
    hits.sort_by(|a, b| b.0.total_cmp(&a.0));
    let value: Vec<Value> = hits
        .into_iter()
        .take(top)
        .map(|(score, document)| {
            let mut result = Map::new();
            result.insert("@search.score".into(), json!(score));
            if semantic {
                result.insert("@search.rerankerScore".into(), json!(score / 10.0 + 1.0));
            }
            for name in ["id", "title", "content", "filepath"] {
                if select.as_ref().is_none_or(|s| s.contains(&name)) {
                    result.insert(name.into(), json!(document.field(name)));
                }
            }
            Value::Object(result)
        })
        .collect();
    Answer::json(
        200,
        &json!({
            "@odata.context": format!("https://double.search.windows.net/indexes('{name}')/$metadata#docs(*)"),
            "value": value,
        }),
    )
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
            if !["id", "title", "content", "filepath"].contains(&field.as_str()) {
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
