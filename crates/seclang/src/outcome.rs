//! What evaluation reports: the [`Outcome`] of a request, its matches and intervention.

use std::collections::BTreeMap;
use std::sync::OnceLock;

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
    pub matches: Vec<RuleMatch>,
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
        self.matches.iter().map(|m| m.id).collect()
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
