//! Load-time errors. Every error names the file and line of the directive that caused it,
//! so an operator can fix a rule file without reading engine code.

use std::fmt;

/// Where a directive starts: the file it was read from and its first line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A rule file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{at}: {kind}")]
pub struct LoadError {
    pub at: Location,
    pub kind: ErrorKind,
}

/// Why a directive could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ErrorKind {
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("Include pattern {0} matches no file")]
    IncludeNoMatch(String),
    #[error("Include nesting deeper than {0} (recursive Include?)")]
    IncludeDepth(usize),
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    #[error("unknown directive {0}")]
    UnknownDirective(String),
    #[error("{directive} expects {expected}")]
    Arguments {
        directive: String,
        expected: &'static str,
    },
    #[error("invalid variable {text:?}: {reason}")]
    Variable { text: String, reason: String },
    #[error("invalid operator {text:?}: {reason}")]
    Operator { text: String, reason: String },
    #[error("regular expression {pattern:?} does not compile: {reason}")]
    Regex { pattern: String, reason: String },
    #[error("unknown action {0}")]
    UnknownAction(String),
    #[error("invalid action {action}:{value:?}: {reason}")]
    Action {
        action: String,
        value: String,
        reason: String,
    },
    #[error("unknown transformation {0}")]
    UnknownTransformation(String),
    #[error("rule has no id")]
    MissingId,
    #[error("rule id {0} is already used")]
    DuplicateId(u64),
    #[error("{0} is only allowed in the first rule of a chain")]
    ChainStarterOnly(&'static str),
    #[error("the last rule has `chain` but no rule follows it")]
    DanglingChain,
    #[error("skipAfter:{0} names no SecMarker or rule id after it in the same phase")]
    UnknownMarker(String),
    #[error("no rule with id {0}")]
    NoSuchRule(String),
    #[error("unsupported: {feature} ({reason})")]
    Unsupported { feature: String, reason: String },
}

/// A rule or directive that was read correctly but that this engine cannot honour.
/// Such a rule is left out of the compiled set; loading in strict mode (the default)
/// turns the first one into a [`LoadError`] instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub at: Location,
    pub rule_id: Option<u64>,
    pub feature: String,
    pub reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule_id {
            Some(id) => write!(
                f,
                "{} rule {}: {} ({})",
                self.at, id, self.feature, self.reason
            ),
            None => write!(f, "{}: {} ({})", self.at, self.feature, self.reason),
        }
    }
}
