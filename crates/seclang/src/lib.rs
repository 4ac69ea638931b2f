//! A ModSecurity SecLang engine: loads rule files such as the OWASP Core Rule Set
//! unmodified, compiles them once into a [`RuleSet`], and evaluates requests against it.
//!
//! ```
//! use chatgate_seclang::{LoadOptions, MemoryFiles, Request, RuleSet};
//!
//! let rules = RuleSet::from_text(
//!     &MemoryFiles::default(),
//!     "rules.conf",
//!     r#"SecRule ARGS "@rx (?i)<script" "id:1,phase:2,deny,status:403,t:urlDecodeUni,msg:'XSS'""#,
//!     LoadOptions::default(),
//! )
//! .unwrap();
//! let request = Request {
//!     method: "GET".into(),
//!     uri: "/?q=%3CScript%3E".into(),
//!     protocol: "HTTP/1.1".into(),
//!     ..Request::default()
//! };
//! let outcome = rules.evaluate(&request);
//! assert_eq!(outcome.blocking().map(|i| (i.rule_id, i.status)), Some((1, 403)));
//! ```
//!
//! [`RuleSet::transaction`] runs the phases one at a time (headers, body, response).
//!
//! `@rx` patterns RE2 cannot express (look-around, backreferences) run on a bounded
//! backtracking matcher ([`operators::Pattern`]). `@geoLookup` reads the MaxMind DB
//! `SecGeoLookupDb` names; `@rbl` asks the resolver given with [`RuleSet::set_resolver`];
//! without either they do not match, as in ModSecurity v3 ([`lookup`]).
//!
//! What is not there yet: XPath beyond `XML:/*` and `XML://@*`; look-around or
//! backreferences in a pattern that also names bytes above 0x7f (reported as unsupported
//! at load time); persistent collections (`IP`, `SESSION`, ... live for one transaction).
//! See the README for the semantics chosen where ModSecurity versions differ.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod actions;
mod collection;
mod compile;
mod error;
mod eval;
mod factors;
mod lexer;
pub mod lookup;
pub mod macros;
mod memo;
mod numbers;
pub mod operators;
mod outcome;
pub(crate) mod prefilter;
mod prefix;
pub mod request;
mod rule;
pub mod transform;
pub mod variables;

pub use actions::EngineMode;
pub use compile::{FileSystem, Files, LoadOptions, MemoryFiles, RuleSet};
pub use error::{ErrorKind, LoadError, Location, Unsupported};
pub use eval::{
    Intervention, InterventionKind, MATCHED_VALUE_LIMIT, Outcome, Response, RuleMatch, Transaction,
};
pub use memo::{EvalMemo, MEMO_BYTES, MEMO_VALUE_LIMIT, MEMO_VALUES};
pub use outcome::Tx;
pub use request::Request;
