//! Rule actions: `id:1,phase:2,deny,t:lowercase,setvar:'tx.x=+%{tx.y}',ctl:...`.

use crate::error::ErrorKind;
use crate::macros::MacroText;
use crate::request::BodyProcessor;
use crate::transform::{self, Transform};
use crate::variables::{Exclusion, parse_targets};

/// How much of the transaction an `allow` action lets through unchecked. It only takes
/// effect when the engine mode is `On`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowScope {
    /// `allow`: no further rule in the request phases (logging still runs).
    Transaction,
    /// `allow:phase`: no further rule in the current phase.
    Phase,
    /// `allow:request`: no further rule in phases 1 and 2.
    Request,
}

/// The disruptive action of a rule: what happens to the transaction when the rule (its
/// whole chain) matches. At most one per rule; the last one written wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disruptive {
    /// `pass`: record the match and go on with the next rule. Also what a rule without
    /// a disruptive action does.
    Pass,
    /// Whatever `SecDefaultAction` of the rule's phase says (resolved when compiling).
    Block,
    /// `deny`: stop the transaction and answer with the rule's `status` (403 when it has
    /// none).
    Deny,
    /// `drop`: stop the transaction and close the connection without a response; the
    /// engine reports it and the embedder does the closing.
    Drop,
    /// `allow`, `allow:phase`, `allow:request`: skip the remaining rules of the scope.
    Allow(AllowScope),
    /// `redirect:URL`: stop the transaction and redirect to the URL (macros expanded when
    /// the rule matches), with the rule's `status` or 302.
    Redirect(MacroText),
}

/// `SecRuleEngine` (and `ctl:ruleEngine`): whether rules run and whether their
/// disruptive actions are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    /// Rules run and the first disruptive action is enforced
    /// ([`crate::Outcome::blocking`] returns it).
    On,
    /// No rule runs, not even in the logging phase.
    Off,
    /// Rules run and matches are recorded, but no disruptive action is enforced: the
    /// intervention a rule would have made is only reported.
    DetectionOnly,
}

impl EngineMode {
    /// Reads `On`, `Off` or `DetectionOnly` in any ASCII case; `None` for anything else.
    pub fn parse(text: &str) -> Option<EngineMode> {
        match text.to_ascii_lowercase().as_str() {
            "on" => Some(EngineMode::On),
            "off" => Some(EngineMode::Off),
            "detectiononly" => Some(EngineMode::DetectionOnly),
            _ => None,
        }
    }
}

/// Inclusive ranges of rule ids.
pub type IdRanges = Vec<(u64, u64)>;

/// Reads the id list of `SecRuleRemoveById`, `SecRuleUpdateTargetById` and the `ctl`
/// removals: ids and `lo-hi` ranges (inclusive) separated by spaces, tabs or commas. An
/// empty list, an id that is not a number or a range with `lo > hi` is an error message.
pub fn parse_id_ranges(text: &str) -> Result<IdRanges, String> {
    let mut out = Vec::new();
    for item in text.split([' ', ',', '\t']).filter(|s| !s.is_empty()) {
        let (lo, hi) = item.split_once('-').unwrap_or((item, item));
        let parse = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("bad rule id range {item:?}"))
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi {
            return Err(format!("bad rule id range {item:?}"));
        }
        out.push((lo, hi));
    }
    if out.is_empty() {
        return Err("no rule id".into());
    }
    Ok(out)
}

/// Whether `id` lies in one of the inclusive `ranges`.
pub fn in_ranges(ranges: &[(u64, u64)], id: u64) -> bool {
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&id))
}

/// A `ctl:name=value` action: changes the engine's configuration for the rest of the
/// transaction only. It runs when the rule's whole chain matches, before the match is
/// recorded.
#[derive(Debug, Clone)]
pub enum Ctl {
    /// `ctl:ruleEngine=On|Off|DetectionOnly`: the engine mode from now on.
    RuleEngine(EngineMode),
    /// `ctl:ruleRemoveById=ids`: the rules with these ids do not run any more.
    RuleRemoveById(IdRanges),
    /// `ctl:ruleRemoveByTag=tag`: the rules with this tag (compared exactly) do not run
    /// any more.
    RuleRemoveByTag(String),
    /// `ctl:ruleRemoveTargetById=ids;TARGET`: the rules with these ids no longer inspect
    /// the given variables (or collection members).
    RuleRemoveTargetById(IdRanges, Vec<Exclusion>),
    /// `ctl:ruleRemoveTargetByTag=tag;TARGET`: the rules with this tag no longer inspect
    /// the given variables (or collection members).
    RuleRemoveTargetByTag(String, Vec<Exclusion>),
    /// `ctl:requestBodyProcessor=URLENCODED|MULTIPART|JSON|XML`: how the request body is
    /// parsed, when set before the body is processed (in phase 1).
    RequestBodyProcessor(BodyProcessor),
    /// `ctl:requestBodyAccess=On|Off` (also `true` / `false`): whether the request body is
    /// processed at all, when set before it is.
    RequestBodyAccess(bool),
    /// Audit-log settings (`auditEngine`, `auditLogParts`) and `forceRequestBodyVariable`
    /// (this engine always fills `REQUEST_BODY`): accepted, nothing to do here.
    NoEffect,
}

/// What a `setvar` does to its variable. Values are macro texts, expanded when the
/// `setvar` runs.
#[derive(Debug, Clone)]
pub enum SetOp {
    /// `setvar:tx.x=value` sets the value; `setvar:tx.x` without `=` sets `1`.
    Set(MacroText),
    /// `setvar:tx.x=+n`: adds `n` to the current value, both read as integers the way
    /// C's `atoi` reads them (a missing variable or non-number is 0), saturating.
    Add(MacroText),
    /// `setvar:tx.x=-n`: subtracts `n` from the current value, read as for
    /// [`SetOp::Add`].
    Sub(MacroText),
    /// `setvar:!tx.x`: removes the variable from its collection.
    Delete,
}

/// One `setvar` action: sets, changes or removes a member of a collection (`TX`, or `IP`,
/// `SESSION`, ..., which this engine keeps for one transaction only).
#[derive(Debug, Clone)]
pub struct SetVar {
    /// Lowercased collection name: `tx`, `ip`, ...
    pub collection: String,
    /// The member's name after the `.`; may hold macros (`setvar:tx.%{rule.id}-x=1`). Compared
    /// without regard to ASCII case, stored lowercased.
    pub key: MacroText,
    /// What to do to it.
    pub op: SetOp,
    /// The number of a constant `key` in the rule set's names, set when the rule set is
    /// compiled: the member is reached by index.
    pub(crate) slot: Option<u32>,
}

/// Non-disruptive actions with an effect, run in the order written.
#[derive(Debug, Clone)]
pub enum Effect {
    /// A `setvar`. It runs for each value of its link that matches, whether or not the
    /// rest of the chain matches, as in ModSecurity v3.
    SetVar(SetVar),
    /// A `ctl`. It runs once, when the whole chain matches.
    Ctl(Ctl),
}

/// Everything one action list says. `None` / empty means "not given", so that
/// `SecDefaultAction` can fill it in.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    /// `id`: the rule's number, unique in the rule set; only the first rule of a chain
    /// has one.
    pub id: Option<u64>,
    /// `phase`: 1 to 5 (`request` is 2, `response` 4, `logging` 5). A rule without one
    /// runs in phase 2.
    pub phase: Option<u8>,
    /// The disruptive action (`pass`, `block`, `deny`, `drop`, `allow`, `redirect`), the
    /// last one written.
    pub disruptive: Option<Disruptive>,
    /// `status`: the HTTP status (100 to 999) of a `deny`, `drop` or `redirect`.
    pub status: Option<u16>,
    /// `t:` transformations in the order written. `None` entries are `t:none`, which
    /// drops every transformation before it (the default ones included).
    pub transforms: Vec<Option<Transform>>,
    /// `chain`: the next `SecRule` is a further condition of this rule.
    pub chain: bool,
    /// `skip:n`: when the rule matches, the next `n` rules of the phase (markers not
    /// counted) are skipped.
    pub skip: Option<u32>,
    /// `skipAfter:name`: when the rule matches, go on after the `SecMarker` of that name
    /// (or the rule of that id) later in the phase.
    pub skip_after: Option<String>,
    /// `setvar` and `ctl` actions, in the order written.
    pub effects: Vec<Effect>,
    /// `capture`: the operator's match goes to `TX:0` .. `TX:9`: `@rx`'s match and
    /// groups, `@pm`'s phrase, `@detectSQLi`'s fingerprint, `@rbl`'s value.
    pub capture: bool,
    /// `multiMatch`: the operator runs on the value before any transformation and after
    /// each transformation that changed it, instead of once on the final value.
    pub multi_match: bool,
    /// `msg`: the message recorded with a match, macros expanded then
    /// ([`crate::RuleMatch::msg`]).
    pub msg: Option<MacroText>,
    /// `logdata`: extra data recorded with a match, macros expanded then
    /// ([`crate::RuleMatch::logdata`]).
    pub logdata: Option<MacroText>,
    /// `tag` values in the order written, as written; `ctl` and `SecRuleRemoveByTag`
    /// compare them exactly.
    pub tags: Vec<String>,
    /// `severity`: 0 (`EMERGENCY`) to 7 (`DEBUG`), given as a number or a name in any
    /// ASCII case.
    pub severity: Option<u8>,
    /// `ver`: the rule set's version, as written; read only by `%{rule.ver}`.
    pub ver: Option<String>,
    /// `rev`: the rule's revision, as written; read only by `%{rule.rev}`.
    pub rev: Option<String>,
    /// `maturity`: read only by `%{rule.maturity}`; `None` also when the value is not a
    /// number from 0 to 255.
    pub maturity: Option<u8>,
    /// `accuracy`: read only by `%{rule.accuracy}`; `None` also when the value is not a
    /// number from 0 to 255.
    pub accuracy: Option<u8>,
    /// `log` (`Some(true)`) or `nolog` (`Some(false)`): whether the match is marked to be
    /// logged ([`crate::RuleMatch::log`]). A rule without either takes its phase's
    /// `SecDefaultAction`, and is logged when that says nothing either.
    pub log: Option<bool>,
    /// `auditlog` / `noauditlog`: parsed and kept, but this engine writes no audit log.
    pub auditlog: Option<bool>,
}

/// Splits on commas outside single quotes; returns `(name, value)` with the quotes of the
/// value removed.
pub fn split_actions(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = text.chars();
    let mut push = |current: &mut String| {
        let item = current.trim();
        if !item.is_empty() {
            let (name, value) = match item.split_once(':') {
                Some((n, v)) => (n.trim(), Some(unquote(v.trim()))),
                None => (item, None),
            };
            out.push((name.to_owned(), value));
        }
        current.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                current.push(c);
                if let Some(n) = chars.next() {
                    current.push(n);
                }
            }
            '\'' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => push(&mut current),
            c => current.push(c),
        }
    }
    push(&mut current);
    out
}

fn unquote(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        value[1..value.len() - 1].replace("\\'", "'")
    } else {
        value.to_owned()
    }
}

fn severity(value: &str) -> Option<u8> {
    const NAMES: [&str; 8] = [
        "EMERGENCY",
        "ALERT",
        "CRITICAL",
        "ERROR",
        "WARNING",
        "NOTICE",
        "INFO",
        "DEBUG",
    ];
    value.parse::<u8>().ok().filter(|n| *n < 8).or_else(|| {
        NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(value))
            .map(|p| p as u8)
    })
}

/// Parses an action list (the third argument of `SecRule`, the argument of `SecAction`
/// and `SecDefaultAction`). Action names are matched case-insensitively; an unknown
/// action or a value an action cannot take is an error. Actions that only shape logs,
/// the web server or persistent storage (`initcol`, `expirevar`, `sanitiseArg`,
/// `setenv`, ...) are accepted and ignored.
pub fn parse_actions(text: &str) -> Result<Actions, ErrorKind> {
    let mut a = Actions::default();
    for (name, value) in split_actions(text) {
        let lower = name.to_ascii_lowercase();
        let bad = |reason: &str| ErrorKind::Action {
            action: name.clone(),
            value: value.clone().unwrap_or_default(),
            reason: reason.to_owned(),
        };
        let need = || value.clone().ok_or_else(|| bad("needs a value"));
        match lower.as_str() {
            "id" => a.id = Some(need()?.parse().map_err(|_| bad("not a rule id"))?),
            "phase" => {
                a.phase = Some(match need()?.to_ascii_lowercase().as_str() {
                    "request" => 2,
                    "response" => 4,
                    "logging" => 5,
                    n => n
                        .parse()
                        .ok()
                        .filter(|p| (1..=5).contains(p))
                        .ok_or_else(|| bad("phase is 1 to 5"))?,
                })
            }
            "pass" => a.disruptive = Some(Disruptive::Pass),
            "block" => a.disruptive = Some(Disruptive::Block),
            "deny" => a.disruptive = Some(Disruptive::Deny),
            "drop" => a.disruptive = Some(Disruptive::Drop),
            "allow" => {
                let scope = match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    None => AllowScope::Transaction,
                    Some("phase") => AllowScope::Phase,
                    Some("request") => AllowScope::Request,
                    Some(_) => return Err(bad("allow takes phase or request")),
                };
                a.disruptive = Some(Disruptive::Allow(scope));
            }
            "redirect" => a.disruptive = Some(Disruptive::Redirect(MacroText::parse(&need()?)?)),
            "status" => {
                a.status = Some(
                    need()?
                        .parse()
                        .ok()
                        .filter(|s| (100..=999).contains(s))
                        .ok_or_else(|| bad("not an HTTP status"))?,
                )
            }
            "t" => a.transforms.push(transform::parse(&need()?)?),
            "chain" => a.chain = true,
            "skip" => {
                a.skip = Some(
                    need()?
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("skip needs a count"))?,
                )
            }
            "skipafter" => a.skip_after = Some(need()?),
            "setvar" => a
                .effects
                .push(Effect::SetVar(parse_setvar(&need()?).map_err(|r| bad(&r))?)),
            "ctl" => a
                .effects
                .push(Effect::Ctl(parse_ctl(&need()?).map_err(|r| bad(&r))?)),
            "capture" => a.capture = true,
            "multimatch" => a.multi_match = true,
            "msg" => a.msg = Some(MacroText::parse(&need()?)?),
            "logdata" => a.logdata = Some(MacroText::parse(&need()?)?),
            "tag" => a.tags.push(need()?),
            "severity" => {
                a.severity = Some(severity(&need()?).ok_or_else(|| bad("unknown severity"))?)
            }
            "ver" => a.ver = Some(need()?),
            "rev" => a.rev = Some(need()?),
            "maturity" => a.maturity = need()?.parse().ok(),
            "accuracy" => a.accuracy = need()?.parse().ok(),
            "log" => a.log = Some(true),
            "nolog" => a.log = Some(false),
            "auditlog" => a.auditlog = Some(true),
            "noauditlog" => a.auditlog = Some(false),
            // Persistent collections are not kept between requests: `initcol` and
            // `expirevar` are accepted and `IP`, `SESSION`, ... live for one transaction.
            "initcol" | "expirevar" | "setsid" | "setuid" | "setrsc" | "deprecatevar" => {}
            // Data-sanitising and environment actions shape logs or the web server, not
            // the verdict; accepted.
            "sanitisearg"
            | "sanitisematched"
            | "sanitisematchedbytes"
            | "sanitiserequestheader"
            | "sanitiseresponseheader"
            | "setenv"
            | "xmlns" => {}
            _ => return Err(ErrorKind::UnknownAction(name)),
        }
    }
    Ok(a)
}

fn parse_setvar(text: &str) -> Result<SetVar, String> {
    let (delete, text) = match text.strip_prefix('!') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let (target, value) = match text.split_once('=') {
        Some((t, v)) => (t, Some(v)),
        None => (text, None),
    };
    let (collection, key) = target
        .split_once('.')
        .ok_or("setvar needs collection.name")?;
    let key = MacroText::parse(key.trim()).map_err(|e| e.to_string())?;
    let parse = |v: &str| MacroText::parse(v).map_err(|e| e.to_string());
    let op = match (delete, value) {
        (true, _) => SetOp::Delete,
        (false, None) => SetOp::Set(parse("1")?),
        (false, Some(v)) => match v.as_bytes().first() {
            Some(b'+') => SetOp::Add(parse(&v[1..])?),
            Some(b'-') => SetOp::Sub(parse(&v[1..])?),
            _ => SetOp::Set(parse(v)?),
        },
    };
    Ok(SetVar {
        collection: collection.trim().to_ascii_lowercase(),
        key,
        op,
        slot: None,
    })
}

fn exclusions(target: &str) -> Result<Vec<Exclusion>, String> {
    let targets = parse_targets(target).map_err(|e| e.to_string())?;
    if !targets.exclude.is_empty() || targets.include.iter().any(|t| t.count) {
        return Err(format!("{target:?} is not a plain target"));
    }
    Ok(targets
        .include
        .into_iter()
        .map(|t| Exclusion {
            var: t.var,
            selector: t.selector,
        })
        .collect())
}

fn parse_ctl(text: &str) -> Result<Ctl, String> {
    let (name, value) = text.split_once('=').ok_or("ctl needs name=value")?;
    let value = value.trim();
    let on_off = |v: &str| match v.to_ascii_lowercase().as_str() {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("{v:?} is not On or Off")),
    };
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "ruleengine" => Ctl::RuleEngine(
            EngineMode::parse(value).ok_or("ruleEngine is On, Off or DetectionOnly")?,
        ),
        "ruleremovebyid" => Ctl::RuleRemoveById(parse_id_ranges(value)?),
        "ruleremovebytag" => Ctl::RuleRemoveByTag(value.to_owned()),
        "ruleremovetargetbyid" => {
            let (ids, target) = value
                .split_once(';')
                .ok_or("ruleRemoveTargetById=ID;TARGET")?;
            Ctl::RuleRemoveTargetById(parse_id_ranges(ids)?, exclusions(target)?)
        }
        "ruleremovetargetbytag" => {
            let (tag, target) = value
                .split_once(';')
                .ok_or("ruleRemoveTargetByTag=TAG;TARGET")?;
            Ctl::RuleRemoveTargetByTag(tag.to_owned(), exclusions(target)?)
        }
        "requestbodyprocessor" => {
            Ctl::RequestBodyProcessor(BodyProcessor::parse(value).ok_or("unknown body processor")?)
        }
        "requestbodyaccess" => Ctl::RequestBodyAccess(on_off(value)?),
        "auditengine" | "auditlogparts" => Ctl::NoEffect,
        "forcerequestbodyvariable" => {
            on_off(value)?;
            Ctl::NoEffect
        }
        other => return Err(format!("unsupported ctl {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_inside_quotes_and_colons_inside_values() {
        let a = split_actions("id:1, msg:'a, b: c', ctl:ruleRemoveTargetById=2;ARGS:x ,t:none");
        assert_eq!(
            a,
            [
                ("id".into(), Some("1".into())),
                ("msg".into(), Some("a, b: c".into())),
                ("ctl".into(), Some("ruleRemoveTargetById=2;ARGS:x".into())),
                ("t".into(), Some("none".into())),
            ]
        );
    }

    #[test]
    fn full_action_list() {
        let a = parse_actions(
            "id:942100,phase:request,block,capture,t:none,t:urlDecodeUni,msg:'SQLi',tag:'a',tag:'b',severity:'CRITICAL',\
             setvar:'tx.anomaly_score_pl1=+%{tx.critical_anomaly_score}',setvar:!tx.x,setvar:tx.flag,\
             ctl:ruleRemoveTargetByTag=OWASP_CRS;ARGS:json.messages.0.content,expirevar:'ip.x=60',nolog",
        )
        .unwrap();
        assert_eq!(
            (a.id, a.phase, a.severity, a.log),
            (Some(942100), Some(2), Some(2), Some(false))
        );
        assert_eq!(a.disruptive, Some(Disruptive::Block));
        assert_eq!(a.transforms, [None, Some(Transform::UrlDecodeUni)]);
        assert_eq!(a.tags, ["a", "b"]);
        assert_eq!(a.effects.len(), 4);
        assert!(
            matches!(&a.effects[0], Effect::SetVar(SetVar { collection, op: SetOp::Add(_), .. }) if collection == "tx")
        );
        assert!(matches!(
            &a.effects[1],
            Effect::SetVar(SetVar {
                op: SetOp::Delete,
                ..
            })
        ));
        assert!(
            matches!(&a.effects[3], Effect::Ctl(Ctl::RuleRemoveTargetByTag(tag, ex)) if tag == "OWASP_CRS" && ex.len() == 1)
        );
    }

    #[test]
    fn bad_actions_are_named() {
        assert_eq!(
            parse_actions("id:1,bogus").unwrap_err(),
            ErrorKind::UnknownAction("bogus".into())
        );
        assert!(matches!(
            parse_actions("phase:7"),
            Err(ErrorKind::Action { .. })
        ));
        assert!(matches!(
            parse_actions("t:rot13"),
            Err(ErrorKind::UnknownTransformation(_))
        ));
        assert!(matches!(
            parse_actions("ctl:ruleRemoveTargetById=1"),
            Err(ErrorKind::Action { .. })
        ));
        assert!(matches!(
            parse_actions("ctl:nope=1"),
            Err(ErrorKind::Action { .. })
        ));
    }

    #[test]
    fn id_ranges() {
        assert_eq!(
            parse_id_ranges("1 5-7,9").unwrap(),
            [(1, 1), (5, 7), (9, 9)]
        );
        assert!(parse_id_ranges("7-5").is_err());
    }
}
