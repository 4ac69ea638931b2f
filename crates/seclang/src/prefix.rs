//! The state the request-independent start of phase 1 leaves ([`Prefix`]), computed once
//! per rule set (`eval`) and copied by each transaction.

use std::sync::Arc;

use crate::collection::{Bytes, Collections};
use crate::outcome::{Name, RuleMatch};

/// The state a transaction is in after the start of phase 1 that reads nothing of the
/// request: the rules before the first one that reads request data (through a target,
/// an operator argument or a macro; but see `checks`), matches with a disruptive action
/// or changes the engine mode.
/// CRS's set-up (`crs-setup.conf`'s `SecAction`s, the 901 initialisation rules) sets
/// about forty `TX` variables and records about twenty matches the same way for every
/// request; a transaction starts from a copy of their result instead of running them.
/// Computed once per rule set, on its first transaction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefix {
    /// Where phase 1 goes on: an index into its list of rules and markers.
    pub(crate) next: usize,
    /// The rules (indices into the rule set) whose `ctl`s ran, in order: a transaction
    /// runs them again (they point into the rule set, which the snapshot cannot borrow).
    pub(crate) ctl_rules: Vec<usize>,
    /// Guards (rules that deny, drop or redirect) that read the request and nothing else,
    /// matched nothing here and precede every `ctl` (the chat policy's check of query
    /// parameter names, 40110, which comes before CRS's set-up): a transaction runs them
    /// first, and starts from the snapshot only if none of them matches a value.
    pub(crate) checks: Vec<usize>,
    /// The collections (`tx`, ...) as those rules left them.
    pub(crate) collections: Collections,
    /// Their match records, in order, shared by the transactions' outcomes.
    pub(crate) matches: Arc<[RuleMatch]>,
    /// `MATCHED_VAR` of an earlier rule, and `MATCHED_VARS` of the last link run.
    pub(crate) earlier_match: Option<(Name, Bytes)>,
    pub(crate) matched_vars: Vec<(Name, Bytes)>,
    /// Per rule of the rule set, whether it matches, decided here for the rules that come
    /// after the snapshot and read only `TX` members no rule outside it can write (see
    /// [`Decision`]); empty when none is.
    pub(crate) decided: Vec<Decision>,
    /// Per phase, per item of its list: the [`DecidedRun`] that starts there, if any.
    pub(crate) runs: [Vec<Option<DecidedRun>>; 5],
}

/// Consecutive decided rules (and markers between them) as a phase runs them, from one
/// item to the first item that is not a decided rule: CRS's paranoia-level gates come in
/// such runs (`9xx011` does not match, `9xx013` matches and skips to the end of its file,
/// where the next file's gates wait), about eighty rules per request. When no `ctl`
/// exclusion in force touches its rules, a transaction adds the run's records and takes
/// its end state at once instead of stepping through the rules one by one. Only runs whose matching rules
/// do nothing but add their record (`RuleSet::record_only`).
#[derive(Debug, Clone)]
pub(crate) struct DecidedRun {
    /// Every rule of the run, in order: with `ctl` exclusions in force, the run is taken
    /// only if they touch none of them.
    pub(crate) rules: Box<[usize]>,
    /// The rules that match, in order: each adds its record, with its decided
    /// `MATCHED_VARS`.
    pub(crate) records: Box<[usize]>,
    /// The item after the run (past the last `skipAfter`).
    pub(crate) next: usize,
    /// The last rule of the run: its decided `MATCHED_VARS` are those left.
    pub(crate) last: usize,
    /// The `MATCHED_VAR` of earlier rules it leaves, when the run sets it; `None`: the
    /// one the transaction had, moved aside as a new rule does ([`Decision`]'s rules
    /// leave it so).
    pub(crate) earlier: Option<(Name, Bytes)>,
}

/// A rule's match decided once per rule set: CRS runs about a hundred paranoia-level and
/// exclusion gates per request (`TX:DETECTION_PARANOIA_LEVEL "@lt 2"`,
/// `&TX:crs_exclusions_drupal|TX:crs_exclusions_drupal "@eq 0"`) that read only members
/// the set-up rules wrote, so they decide the same way in every transaction that starts
/// from the snapshot.
#[derive(Debug, Clone, Default)]
pub(crate) enum Decision {
    /// Run as usual.
    #[default]
    Undecided,
    /// Whether its links match, and what they leave: `MATCHED_VARS` (the last link that
    /// matched a value, in order) and, when a later link of the chain matched too, the
    /// `MATCHED_VAR` its first match moved aside. Its links have no `setvar`.
    Decided {
        matched: bool,
        earlier: Option<(Name, Bytes)>,
        vars: Box<[(Name, Bytes)]>,
    },
}
