//! What evaluation reports: the [`Outcome`] of a request, its matches and intervention.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::actions::EngineMode;
use crate::collection::Collection;

/// What the rules decided about a request.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The engine mode in force at the end (`ctl:ruleEngine` can change it).
    pub mode: EngineMode,
    /// The first disruptive action taken. In `DetectionOnly` mode it is what *would* have
    /// been done: the caller enforces it only when `mode` is `On`.
    pub intervention: Option<Intervention>,
    /// Every rule that matched, in order.
    pub matches: Matches,
    /// The `TX` collection at the end (anomaly scores, paranoia levels, ...), keys lowercased.
    pub tx: Tx,
    /// Why the body processor failed (`REQBODY_ERROR_MSG`), if it did.
    pub body_error: Option<String>,
}

impl Outcome {
    /// The `TX` variable `name` at the end of the transaction, `name` in any ASCII case;
    /// `None` when no rule set it (or one removed it).
    pub fn tx(&self, name: &str) -> Option<&str> {
        self.tx.get(name)
    }

    /// The ids of the rules that matched, in the order they matched (all phases, the
    /// logging phase and `pass` rules included).
    pub fn matched_ids(&self) -> Vec<u64> {
        self.matches.ids()
    }

    /// The intervention to enforce, if any (none in `DetectionOnly` mode).
    pub fn blocking(&self) -> Option<&Intervention> {
        (self.mode == EngineMode::On)
            .then_some(self.intervention.as_ref())
            .flatten()
    }
}

/// What the embedder is asked to do to the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterventionKind {
    /// Refuse the request with [`Intervention::status`].
    Deny,
    /// Close the connection without a response.
    Drop,
    /// Redirect to this URL (the rule's `redirect` with its macros expanded) with
    /// [`Intervention::status`].
    Redirect(String),
}

/// The disruptive action a rule took: the first `deny`, `drop` or `redirect` of a
/// matching rule in phases 1 to 4. Later disruptive rules do not replace it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intervention {
    /// What to do.
    pub kind: InterventionKind,
    /// The HTTP status: the rule's `status` (or its phase's `SecDefaultAction`'s), else
    /// 302 for a redirect and 403 otherwise.
    pub status: u16,
    /// The id of the rule (the first rule of its chain) that took the action.
    pub rule_id: u64,
    /// The phase (1 to 4) the rule ran in.
    pub phase: u8,
}

/// A rule (its whole chain) that matched, as ModSecurity would log it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// The rule's id.
    pub id: u64,
    /// The phase (1 to 5) it ran in.
    pub phase: u8,
    /// Its `msg`, macros expanded when it matched (invalid UTF-8 replaced).
    pub msg: Option<String>,
    /// Its `logdata`, macros expanded when it matched (invalid UTF-8 replaced). CRS puts
    /// the matched data here: it can hold secrets.
    pub logdata: Option<String>,
    /// Its `tag`s, as written.
    pub tags: Vec<String>,
    /// Its `severity`, 0 (emergency) to 7 (debug).
    pub severity: Option<u8>,
    /// Whether the rule asked to be logged (`log` / `nolog`).
    pub log: bool,
    /// Names of the variables that matched (`ARGS:json.model`, `REQUEST_URI`, ...), of the
    /// last link of the chain.
    pub matched_vars: Vec<String>,
    /// Their values after transformation, each cut to [`MATCHED_VALUE_LIMIT`] bytes. They
    /// can hold secrets: redact before logging.
    pub matched_values: Vec<Vec<u8>>,
}

/// The most bytes of a matched value kept in a [`RuleMatch`]: enough to see the attack,
/// not a copy of a large body.
pub const MATCHED_VALUE_LIMIT: usize = 256;

/// The `TX` collection at the end of a transaction, keys lowercased, values as text
/// (invalid UTF-8 replaced). The transaction's members are moved here as they are; the
/// map of names to text is made on the first read (most outcomes are never read past
/// their intervention).
#[derive(Clone, Default)]
pub struct Tx {
    members: Collection,
    map: OnceLock<BTreeMap<String, String>>,
}

impl Tx {
    pub(crate) fn new(members: Collection) -> Tx {
        Tx {
            members,
            map: OnceLock::new(),
        }
    }

    /// The members' tables, for another transaction to fill ([`crate::EvalMemo::reuse`]).
    pub(crate) fn into_members(self) -> Collection {
        self.members
    }

    /// The members by name.
    pub fn map(&self) -> &BTreeMap<String, String> {
        self.map.get_or_init(|| {
            self.members
                .iter()
                .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned()))
                .collect()
        })
    }

    /// The member `name`, in any ASCII case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map()
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The members, by name.
    pub fn iter(&self) -> std::collections::btree_map::Iter<'_, String, String> {
        self.map().iter()
    }

    /// How many members it has.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for Tx {
    fn eq(&self, other: &Tx) -> bool {
        self.map() == other.map()
    }
}

impl Eq for Tx {}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map().fmt(f)
    }
}

impl FromIterator<(String, String)> for Tx {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(members: I) -> Tx {
        let map: BTreeMap<String, String> = members
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        Tx {
            members: Collection::default(),
            map: OnceLock::from(map),
        }
    }
}

/// The name of a matched variable: shared with the rule set when it is known at load
/// time (`TX:executing_paranoia_level`), spelled per match otherwise (`ARGS:q`).
#[derive(Debug, Clone)]
pub(crate) enum Name {
    Shared(Arc<str>),
    Owned(String),
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Name::Shared(s) => s,
            Name::Owned(s) => s,
        }
    }
}

/// What a match record says about its rule, the same in every record of the rule:
/// made once per rule at load time and shared by the records.
#[derive(Debug)]
pub(crate) struct RuleInfo {
    pub(crate) id: u64,
    pub(crate) phase: u8,
    pub(crate) tags: Vec<String>,
    pub(crate) severity: Option<u8>,
    pub(crate) log: bool,
}

/// A match record as a transaction writes it: its rule's number, the expanded `msg` and
/// `logdata`, and its matched variables in [`Matches`]'s buffers.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) rule: u32,
    pub(crate) msg: Option<String>,
    pub(crate) logdata: Option<String>,
    /// `vars[start..end]` of the [`Matches`].
    pub(crate) vars: (u32, u32),
}

/// Every rule that matched, in order: a slice of [`RuleMatch`] (`Deref`), made on the
/// first read. A transaction writes compact records (rule data shared with the rule set,
/// variable names and values in two buffers) and the records of the start snapshot are
/// shared by all transactions: an outcome that is only asked for its intervention
/// costs no copy of tags, names and values per match. [`Matches::any_logged`] and
/// [`Matches::ids`] answer without making the slice.
#[derive(Clone, Default)]
pub struct Matches {
    /// The records of the start snapshot.
    prefix: Option<Arc<[RuleMatch]>>,
    rules: Option<Arc<[RuleInfo]>>,
    records: Vec<Record>,
    /// Matched variables: name, and the end of the value in `values`.
    vars: Vec<(Name, u32)>,
    values: Vec<u8>,
    built: OnceLock<Vec<RuleMatch>>,
}

/// The most records (and matched variables; eight times as many value bytes) whose room
/// [`Matches::into_room`] keeps.
const ROOM_LIMIT: usize = 1024;

impl Matches {
    /// With room for `capacity` records, each of one variable.
    pub(crate) fn new(rules: Arc<[RuleInfo]>, capacity: usize) -> Matches {
        Matches {
            rules: Some(rules),
            records: Vec::with_capacity(capacity),
            vars: Vec::with_capacity(capacity),
            // Most matched values are short (CRS's paranoia-level checks match a digit).
            values: Vec::with_capacity(8 * capacity),
            ..Matches::default()
        }
    }

    /// Its buffers emptied, their room kept for another transaction's records (see
    /// [`crate::EvalMemo::reuse`]); `None` when a large transaction grew them past what
    /// is worth keeping.
    pub(crate) fn into_room(mut self) -> Option<Matches> {
        if self.records.capacity() > ROOM_LIMIT
            || self.vars.capacity() > ROOM_LIMIT
            || self.values.capacity() > 8 * ROOM_LIMIT
        {
            return None;
        }
        self.records.clear();
        self.vars.clear();
        self.values.clear();
        Some(Matches {
            records: self.records,
            vars: self.vars,
            values: self.values,
            ..Matches::default()
        })
    }

    /// Made from [`Matches::into_room`]'s buffers, for the records of `rules`.
    pub(crate) fn reuse(mut self, rules: Arc<[RuleInfo]>) -> Matches {
        debug_assert!(self.records.is_empty() && self.prefix.is_none());
        self.rules = Some(rules);
        self
    }

    /// Starts from the start snapshot's records (before any record of its own).
    pub(crate) fn set_prefix(&mut self, prefix: Arc<[RuleMatch]>) {
        debug_assert!(self.records.is_empty() && self.prefix.is_none());
        self.prefix = Some(prefix);
    }

    fn prefix(&self) -> &[RuleMatch] {
        self.prefix.as_deref().unwrap_or_default()
    }

    fn info(&self, r: &Record) -> &RuleInfo {
        &self.rules.as_ref().expect("records come with their rules")[r.rule as usize]
    }

    /// How many records there are.
    pub(crate) fn count(&self) -> usize {
        self.prefix().len() + self.records.len()
    }

    /// Keeps the first `n` records (never fewer than the snapshot's).
    pub(crate) fn truncate(&mut self, n: usize) {
        let own = n.saturating_sub(self.prefix().len());
        if own < self.records.len() {
            self.built.take();
            let start = self.records[own].vars.0 as usize;
            let value_start = start.checked_sub(1).map_or(0, |i| self.vars[i].1 as usize);
            self.records.truncate(own);
            self.vars.truncate(start);
            self.values.truncate(value_start);
        }
    }

    /// Adds a record of rule `rule` whose matched variables are `vars` (values cut to
    /// [`MATCHED_VALUE_LIMIT`] bytes).
    pub(crate) fn push<'v>(
        &mut self,
        rule: u32,
        msg: Option<String>,
        logdata: Option<String>,
        vars: impl Iterator<Item = (&'v Name, &'v [u8])>,
    ) {
        // Made again if it was read before this record.
        self.built.take();
        let start = self.vars.len() as u32;
        for (name, value) in vars {
            self.values
                .extend_from_slice(&value[..value.len().min(MATCHED_VALUE_LIMIT)]);
            self.vars.push((name.clone(), self.values.len() as u32));
        }
        self.records.push(Record {
            rule,
            msg,
            logdata,
            vars: (start, self.vars.len() as u32),
        });
    }

    fn make(&self, r: &Record) -> RuleMatch {
        let info = self.info(r);
        let (start, end) = (r.vars.0 as usize, r.vars.1 as usize);
        let mut from = start.checked_sub(1).map_or(0, |i| self.vars[i].1 as usize);
        let mut matched_vars = Vec::with_capacity(end - start);
        let mut matched_values = Vec::with_capacity(end - start);
        for (name, to) in &self.vars[start..end] {
            matched_vars.push(name.to_string());
            matched_values.push(self.values[from..*to as usize].to_vec());
            from = *to as usize;
        }
        RuleMatch {
            id: info.id,
            phase: info.phase,
            msg: r.msg.clone(),
            logdata: r.logdata.clone(),
            tags: info.tags.clone(),
            severity: info.severity,
            log: info.log,
            matched_vars,
            matched_values,
        }
    }

    /// Whether a rule that asked to be logged (`log`) matched.
    pub fn any_logged(&self) -> bool {
        if let Some(all) = self.built.get() {
            return all.iter().any(|m| m.log);
        }
        self.prefix().iter().any(|m| m.log) || self.records.iter().any(|r| self.info(r).log)
    }

    /// The ids of the rules that matched, in order.
    pub fn ids(&self) -> Vec<u64> {
        if let Some(all) = self.built.get() {
            return all.iter().map(|m| m.id).collect();
        }
        self.prefix()
            .iter()
            .map(|m| m.id)
            .chain(self.records.iter().map(|r| self.info(r).id))
            .collect()
    }

    /// The records as [`RuleMatch`]es, made on the first call.
    pub fn as_slice(&self) -> &[RuleMatch] {
        self.built.get_or_init(|| {
            let mut all = Vec::with_capacity(self.count());
            all.extend_from_slice(self.prefix());
            all.extend(self.records.iter().map(|r| self.make(r)));
            all
        })
    }
}

impl Matches {
    /// The records as a vector of [`RuleMatch`]es.
    pub fn into_vec(mut self) -> Vec<RuleMatch> {
        self.as_slice();
        self.built.take().unwrap_or_default()
    }
}

impl IntoIterator for Matches {
    type Item = RuleMatch;
    type IntoIter = std::vec::IntoIter<RuleMatch>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl<'a> IntoIterator for &'a Matches {
    type Item = &'a RuleMatch;
    type IntoIter = std::slice::Iter<'a, RuleMatch>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl std::ops::Deref for Matches {
    type Target = [RuleMatch];
    fn deref(&self) -> &[RuleMatch] {
        self.as_slice()
    }
}

impl PartialEq for Matches {
    fn eq(&self, other: &Matches) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Matches {}

impl std::fmt::Debug for Matches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl From<Vec<RuleMatch>> for Matches {
    fn from(matches: Vec<RuleMatch>) -> Matches {
        Matches {
            built: OnceLock::from(matches),
            ..Matches::default()
        }
    }
}

impl FromIterator<RuleMatch> for Matches {
    fn from_iter<I: IntoIterator<Item = RuleMatch>>(matches: I) -> Matches {
        Matches::from(matches.into_iter().collect::<Vec<_>>())
    }
}
