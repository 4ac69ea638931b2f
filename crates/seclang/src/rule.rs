//! The compiled form of one rule: its chain of links (target, transformations, operator,
//! actions) as [`crate::compile`] builds them and [`crate::prefilter`] and evaluation read
//! them.

use crate::actions::{Actions, Disruptive};
use crate::error::Location;
use crate::operators::Operator;
use crate::transform::Transform;
use crate::variables::Targets;

/// One `SecRule` (or `SecAction`) of a chain.
#[derive(Debug)]
pub struct Link {
    pub targets: Targets,
    /// `None` for `SecAction`: matches once, unconditionally.
    pub operator: Option<Operator>,
    pub transforms: Vec<Transform>,
    /// Names `transforms` among all the distinct transformation lists of the rule set
    /// (0: none), so a transaction can reuse a transformed value across rules.
    pub chain: u32,
    /// This link's id in the rule set's [`crate::prefilter::Prefilter`]: its operator only matches values
    /// containing one of its factors, and its targets are all request data.
    pub prefilter: Option<u32>,
    /// This link's bit in an [`crate::EvalMemo`]'s record of a value: set when its
    /// operator's answer depends on the (transformed) value alone
    /// ([`crate::operators::Operator`]'s `value_only`), so that "this value does not
    /// match" can be remembered across requests.
    pub memo: Option<u32>,
    /// For a link reading one member of a transaction collection (`TX:paranoia_level`):
    /// its name as `MATCHED_VAR_NAME` spells it (`TX:paranoia_level`), so a match need not
    /// spell it again.
    pub single_name: Option<std::sync::Arc<str>>,
    /// For such a link: the member's number in the rule set's names.
    pub single_slot: Option<u32>,
    /// Per target of `targets.include`: for a collection read through a regular
    /// expression (`TX:/^header_name_/`), which of the rule set's numbered names it
    /// selects (a bit per name), so members with numbers are not matched per request.
    pub selected_names: Vec<Option<Box<[u64]>>>,
    /// Per target of `targets.include`: for a collection member named by a key
    /// (`TX:anomaly_score`), the key's number in the rule set's names.
    pub target_slots: Vec<Option<u32>>,
    /// Per target of `targets.include`: the name a match of it gets in `MATCHED_VARS`, for
    /// a count (`&TX`) or a collection member named by a key (`TX:crs_exclusions_drupal`),
    /// spelled once here: CRS's exclusion gates match about twenty times per request.
    pub target_names: Vec<Option<std::sync::Arc<str>>>,
    pub capture: bool,
    pub multi_match: bool,
    pub actions: Actions,
}

/// A rule: a chain starter and the links chained to it.
#[derive(Debug)]
pub struct Rule {
    pub id: u64,
    pub phase: u8,
    pub at: Location,
    pub links: Vec<Link>,
    /// `block` already resolved through `SecDefaultAction`.
    pub disruptive: Disruptive,
    pub status: Option<u16>,
    pub skip: Option<u32>,
    pub skip_after: Option<String>,
    pub tags: Vec<String>,
    /// `tags` as indices into [`crate::compile::RuleSet::tag_ids`], so that `ctl` exclusions by tag are
    /// integer comparisons per rule.
    pub tag_ids: Vec<u32>,
    pub log: bool,
    pub removed: bool,
}

impl Rule {
    pub fn actions(&self) -> &Actions {
        &self.links[0].actions
    }
}

#[derive(Debug, Clone)]
pub enum Item {
    Rule(usize),
    Marker(String),
}
