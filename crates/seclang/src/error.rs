//! Load-time errors. Every error names the file and line of the directive that caused it,
//! so an operator can fix a rule file without reading engine code.

use std::fmt;

/// Where a directive starts: the file it was read from and its first line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The path the file was read under: the name given to the loader, or an `Include`
    /// or data-file path joined to the directory of the file that named it.
    pub file: String,
    /// The line the directive starts on, counting from 1; a directive continued with `\\`
    /// reports its first line. 0 when the file given to [`crate::RuleSet::load`] itself
    /// could not be read.
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
    /// The directive that failed (for a chain left open at the end, its first rule).
    pub at: Location,
    /// What was wrong with it.
    pub kind: ErrorKind,
}

/// Why a directive could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ErrorKind {
    /// A rule file, an `Include`d file, a data file (`@pmFromFile`, `@ipMatchFromFile`, ...)
    /// or the `SecGeoLookupDb` database could not be read, or an `Include` directory could
    /// not be listed. A `SecGeoLookupDb` file that is not a MaxMind DB is reported here too.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The path as the engine tried it, relative paths already joined to the
        /// directory of the including file.
        path: String,
        /// The I/O error's message (or why the database did not open).
        reason: String,
    },
    /// `Include` (not `IncludeOptional`, which then loads nothing) named a path or
    /// wildcard pattern no file matches; holds the joined pattern.
    #[error("Include pattern {0} matches no file")]
    IncludeNoMatch(String),
    /// `Include` files nest deeper than the limit it holds (16), most likely because
    /// files include each other.
    #[error("Include nesting deeper than {0} (recursive Include?)")]
    IncludeDepth(usize),
    /// A `"` opened an argument that the directive (its continued lines included) never
    /// closes.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// A directive name this engine does not know, as written (names are matched
    /// case-insensitively).
    #[error("unknown directive {0}")]
    UnknownDirective(String),
    /// A directive had the wrong number of arguments, or an argument it cannot take
    /// (`SecRuleEngine Maybe`, `SecDefaultAction` without a disruptive action, ...).
    #[error("{directive} expects {expected}")]
    Arguments {
        /// The directive's name as written. For `SecRuleRemoveById` with an id range that
        /// does not parse, this holds the parser's message instead.
        directive: String,
        /// What the directive takes, in words, for the message.
        expected: &'static str,
    },
    /// A target list that does not parse, or a variable (in a target list or a `%{...}`
    /// macro) this engine does not know or that takes no key but was given one.
    #[error("invalid variable {text:?}: {reason}")]
    Variable {
        /// The target or the macro (`%{...}`) that was rejected.
        text: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An operator this engine does not know, or a parameter it cannot use: a bad byte
    /// or IP range, `@pm` without phrases, `@rbl` without a zone.
    #[error("invalid operator {text:?}: {reason}")]
    Operator {
        /// The operator text as written in the rule, `!` included, e.g.
        /// `@ipMatch 10.0.0.300`.
        text: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An `@rx` pattern (without macros) that neither the linear engine nor the
    /// backtracking fallback compiles. With [`crate::LoadOptions::skip_unsupported`], a
    /// pattern refused only because it uses an unsupported feature becomes an
    /// [`Unsupported`] entry instead.
    #[error("regular expression {pattern:?} does not compile: {reason}")]
    Regex {
        /// The pattern as written in the rule (before any PCRE-to-RE2 rewriting).
        pattern: String,
        /// The regex compiler's message.
        reason: String,
    },
    /// An action name this engine does not know, as written.
    #[error("unknown action {0}")]
    UnknownAction(String),
    /// A known action with a value it cannot take: a missing value, `phase:6`,
    /// `status:42`, a `setvar` or `ctl` that does not parse, ...
    #[error("invalid action {action}:{value:?}: {reason}")]
    Action {
        /// The action's name as written.
        action: String,
        /// Its value with quotes removed; empty when it had none.
        value: String,
        /// Why the value was rejected.
        reason: String,
    },
    /// A `t:` name this engine does not know, as written.
    #[error("unknown transformation {0}")]
    UnknownTransformation(String),
    /// A `SecRule` or `SecAction` that starts a rule (not a chained link) without `id`.
    #[error("rule has no id")]
    MissingId,
    /// Two rules use the same `id`; holds that id. A rule removed with
    /// `SecRuleRemoveById` still holds its id.
    #[error("rule id {0} is already used")]
    DuplicateId(u64),
    /// A chained link (a rule after one with `chain`) used an action only the first rule
    /// of a chain may have; holds which (`id`, `phase`, `skip`, `skipAfter` or "a
    /// disruptive action" other than `pass` / `block`).
    #[error("{0} is only allowed in the first rule of a chain")]
    ChainStarterOnly(&'static str),
    /// A rule with `chain` is followed by no `SecRule` / `SecAction`: another directive,
    /// or the end of the rules.
    #[error("the last rule has `chain` but no rule follows it")]
    DanglingChain,
    /// `skipAfter` names a marker that no `SecMarker` (or rule id) after the rule in the
    /// same phase has; holds the name.
    #[error("skipAfter:{0} names no SecMarker or rule id after it in the same phase")]
    UnknownMarker(String),
    /// `SecRuleUpdateTargetById` names ids (or ranges) no rule loaded so far has, or a
    /// range that does not parse; holds the argument as written.
    #[error("no rule with id {0}")]
    NoSuchRule(String),
    /// A rule this engine reads but cannot honour, in strict mode (the default); with
    /// [`crate::LoadOptions::skip_unsupported`] it is an [`Unsupported`] entry instead.
    #[error("unsupported: {feature} ({reason})")]
    Unsupported {
        /// What the rule uses, e.g. the operator or the pattern.
        feature: String,
        /// Why this engine cannot honour it.
        reason: String,
    },
}

/// A rule or directive that was read correctly but that this engine cannot honour.
/// Such a rule is left out of the compiled set; loading in strict mode (the default)
/// turns the first one into a [`LoadError`] instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The directive of the link that uses the feature (in a chain, possibly not the
    /// first rule).
    pub at: Location,
    /// The id of the rule (chain) left out. `None` only while the chain is still being
    /// read; every entry [`crate::RuleSet::unsupported`] lists has one.
    pub rule_id: Option<u64>,
    /// What the rule uses, e.g. the operator or `@rx` and its pattern.
    pub feature: String,
    /// Why this engine cannot honour it.
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
