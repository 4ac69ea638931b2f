//! Rule actions: `id:1,phase:2,deny,t:lowercase,setvar:'tx.x=+%{tx.y}',ctl:...`.

use crate::error::ErrorKind;
use crate::macros::MacroText;
use crate::request::BodyProcessor;
use crate::transform::{self, Transform};
use crate::variables::{Exclusion, parse_targets};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowScope {
    /// `allow`: no further rule in the request phases (logging still runs).
    Transaction,
    /// `allow:phase`: no further rule in the current phase.
    Phase,
    /// `allow:request`: no further rule in phases 1 and 2.
    Request,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disruptive {
    Pass,
    /// Whatever `SecDefaultAction` of the rule's phase says (resolved when compiling).
    Block,
    Deny,
    Drop,
    Allow(AllowScope),
    Redirect(MacroText),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    On,
    Off,
    DetectionOnly,
}

impl EngineMode {
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

pub fn in_ranges(ranges: &[(u64, u64)], id: u64) -> bool {
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&id))
}

#[derive(Debug, Clone)]
pub enum Ctl {
    RuleEngine(EngineMode),
    RuleRemoveById(IdRanges),
    RuleRemoveByTag(String),
    RuleRemoveTargetById(IdRanges, Vec<Exclusion>),
    RuleRemoveTargetByTag(String, Vec<Exclusion>),
    RequestBodyProcessor(BodyProcessor),
    RequestBodyAccess(bool),
    /// Audit-log settings (`auditEngine`, `auditLogParts`) and `forceRequestBodyVariable`
    /// (this engine always fills `REQUEST_BODY`): accepted, nothing to do here.
    NoEffect,
}

#[derive(Debug, Clone)]
pub enum SetOp {
    Set(MacroText),
    Add(MacroText),
    Sub(MacroText),
    Delete,
}

#[derive(Debug, Clone)]
pub struct SetVar {
    /// Lowercased collection name: `tx`, `ip`, ...
    pub collection: String,
    pub key: MacroText,
    pub op: SetOp,
}

/// Non-disruptive actions with an effect, run in the order written.
#[derive(Debug, Clone)]
pub enum Effect {
    SetVar(SetVar),
    Ctl(Ctl),
}

/// Everything one action list says. `None` / empty means "not given", so that
/// `SecDefaultAction` can fill it in.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    pub id: Option<u64>,
    pub phase: Option<u8>,
    pub disruptive: Option<Disruptive>,
    pub status: Option<u16>,
    /// `None` entries are `t:none`.
    pub transforms: Vec<Option<Transform>>,
    pub chain: bool,
    pub skip: Option<u32>,
    pub skip_after: Option<String>,
    pub effects: Vec<Effect>,
    pub capture: bool,
    pub multi_match: bool,
    pub msg: Option<MacroText>,
    pub logdata: Option<MacroText>,
    pub tags: Vec<String>,
    pub severity: Option<u8>,
    pub ver: Option<String>,
    pub rev: Option<String>,
    pub maturity: Option<u8>,
    pub accuracy: Option<u8>,
    pub log: Option<bool>,
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
