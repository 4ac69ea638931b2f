//! Turns directives into a [`RuleSet`]: resolves `Include`, chains, `SecDefaultAction`,
//! removal and target-update directives, and `skipAfter` markers, once.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::actions::{
    Disruptive, Effect, EngineMode, IdRanges, SetOp, in_ranges, parse_actions, parse_id_ranges,
};
use crate::error::{ErrorKind, LoadError, Location, Unsupported};
use crate::lexer::{Directive, directives};
use crate::lookup::{GeoDb, ResolverSlot};
use crate::operators;
use crate::prefilter::Prefilter;
pub use crate::rule::{Item, Link, Rule};
use crate::transform::Transform;
use crate::variables::{Targets, parse_targets};

/// Where rule files and data files come from: the file system, or memory in tests and
/// when rules are embedded.
pub trait Files {
    /// The text of the rule or data file at `path` (a path as the rules spell it, joined
    /// to the including file's directory). A file that does not exist is an error.
    fn read(&self, path: &str) -> std::io::Result<String>;
    /// A binary data file (`SecGeoLookupDb`'s database). By default the text of
    /// [`Files::read`], so an implementation holding only text need not have it.
    fn read_bytes(&self, path: &str) -> std::io::Result<Vec<u8>> {
        self.read(path).map(String::into_bytes)
    }
    /// Paths matching `pattern`, whose last component may contain `*`, sorted.
    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileSystem;

impl Files for FileSystem {
    fn read(&self, path: &str) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn read_bytes(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>> {
        let (dir, name) = split_path(pattern);
        if !name.contains('*') {
            return Ok(if std::path::Path::new(pattern).exists() {
                vec![pattern.to_owned()]
            } else {
                Vec::new()
            });
        }
        let mut out = Vec::new();
        for entry in std::fs::read_dir(if dir.is_empty() { "." } else { dir })? {
            let entry = entry?;
            if let Some(file) = entry.file_name().to_str()
                && wildcard(name, file)
            {
                out.push(join(dir, file));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Files held in memory, by path.
#[derive(Debug, Default, Clone)]
pub struct MemoryFiles(pub BTreeMap<String, String>);

impl Files for MemoryFiles {
    fn read(&self, path: &str) -> std::io::Result<String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
    }

    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>> {
        let (dir, name) = split_path(pattern);
        Ok(self
            .0
            .keys()
            .filter(|p| {
                let (d, n) = split_path(p);
                d == dir && wildcard(name, n)
            })
            .cloned()
            .collect())
    }
}

fn split_path(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(p) => (&path[..p], &path[p + 1..]),
        None => ("", path),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() || name.starts_with('/') {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn wildcard(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.len() >= part.len() && rest.ends_with(part);
        }
        match rest.find(part) {
            Some(p) => rest = &rest[p + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// A compiled rule set. Phase `p` runs `phases[p - 1]` in order; `skip_after` holds each
/// rule's `skipAfter` destination (an index into its phase's list).
#[derive(Debug)]
pub struct RuleSet {
    /// Unique among the rule sets of the process: an [`crate::EvalMemo`] filled with
    /// one rule set's answers is emptied before it serves another.
    pub(crate) id: u64,
    /// How many links have a [`Link::memo`] bit.
    pub(crate) memo_links: u32,
    pub(crate) rules: Vec<Rule>,
    pub(crate) phases: [Vec<Item>; 5],
    pub(crate) skip_after: Vec<Option<usize>>,
    pub(crate) engine: EngineMode,
    pub(crate) request_body_access: bool,
    pub(crate) arguments_limit: usize,
    pub(crate) unsupported: Vec<Unsupported>,
    pub(crate) prefilter: Prefilter,
    /// What match records say about each rule, shared with the outcomes.
    pub(crate) infos: std::sync::Arc<[crate::outcome::RuleInfo]>,
    /// Collection member names known at load time, numbered.
    pub(crate) names: crate::collection::Names,
    /// Every tag of the rules, numbered.
    pub(crate) tag_ids: HashMap<String, u32>,
    /// Whether links with a prefilter id may be skipped (off only to test that skipping
    /// changes no verdict).
    pub(crate) use_prefilter: bool,
    /// `SecGeoLookupDb`'s database, for `@geoLookup`.
    pub(crate) geo_db: Option<std::sync::Arc<GeoDb>>,
    /// `SecHttpBlKey`, for `@rbl` with http:BL.
    pub(crate) httpbl_key: Option<String>,
    /// For `@rbl`: none unless the embedder sets one ([`RuleSet::set_resolver`]).
    pub(crate) resolver: ResolverSlot,
    /// The state after the request-independent start of phase 1, computed on the first
    /// transaction (`None` inside: there is none worth keeping).
    pub(crate) prefix: std::sync::OnceLock<Option<crate::prefix::Prefix>>,
    /// Whether transactions start from [`RuleSet::prefix`] (off only to test that it
    /// changes no outcome).
    pub(crate) use_prefix: bool,
    /// Whether rules the snapshot decides ([`crate::prefix::Decision`]) skip their links
    /// (off only to test that it changes no outcome).
    pub(crate) use_decisions: bool,
    /// Per rule: whether its match does nothing but add its record (no `ctl`, no `msg`
    /// or `logdata` to expand, `pass` or `block`): CRS's paranoia-level and exclusion
    /// gates, about fifty of the seventy-odd records of an ordinary request.
    pub(crate) record_only: Vec<bool>,
}

/// Load settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Leave out rules this engine cannot honour (listed by [`RuleSet::unsupported`])
    /// instead of failing on the first one.
    pub skip_unsupported: bool,
}

const MAX_INCLUDE_DEPTH: usize = 16;

#[derive(Clone, Default)]
struct DefaultAction {
    disruptive: Option<Disruptive>,
    status: Option<u16>,
    transforms: Vec<Option<Transform>>,
    log: Option<bool>,
}

struct Builder<'f> {
    files: &'f dyn Files,
    options: LoadOptions,
    rules: Vec<Rule>,
    items: Vec<Item>,
    ids: HashSet<u64>,
    defaults: [DefaultAction; 5],
    /// A chain waiting for its next link, and whether that link is unsupported.
    open: Option<(Rule, Option<Unsupported>)>,
    engine: EngineMode,
    request_body_access: bool,
    arguments_limit: usize,
    unsupported: Vec<Unsupported>,
    geo_db: Option<std::sync::Arc<GeoDb>>,
    httpbl_key: Option<String>,
}

/// ModSecurity v3's recommended `SecArgumentsLimit`: a body with more arguments than this
/// is a body error, so that padding a request with arguments can neither push an attack
/// past the inspection nor make every rule visit an unbounded list.
pub const DEFAULT_ARGUMENTS_LIMIT: usize = 1000;

impl RuleSet {
    /// Loads a rule file (and what it includes) from the file system.
    pub fn load(path: &str, options: LoadOptions) -> Result<RuleSet, LoadError> {
        Self::load_from(&FileSystem, path, options)
    }

    /// Loads rules given as text; `Include` and data files are read from `files`,
    /// relative paths against the directory of `name`.
    pub fn from_text(
        files: &dyn Files,
        name: &str,
        text: &str,
        options: LoadOptions,
    ) -> Result<RuleSet, LoadError> {
        let mut b = Builder::new(files, options);
        b.text(name, text, 0)?;
        b.finish()
    }

    /// Loads a rule file (and what it includes) read through `files`: [`RuleSet::load`]
    /// for any [`Files`] implementation, e.g. [`MemoryFiles`].
    pub fn load_from(
        files: &dyn Files,
        path: &str,
        options: LoadOptions,
    ) -> Result<RuleSet, LoadError> {
        let text = files.read(path).map_err(|e| LoadError {
            at: Location {
                file: path.to_owned(),
                line: 0,
            },
            kind: ErrorKind::Io {
                path: path.to_owned(),
                reason: e.to_string(),
            },
        })?;
        Self::from_text(files, path, &text, options)
    }

    /// Rules left out because this engine cannot honour them (only with
    /// [`LoadOptions::skip_unsupported`]).
    pub fn unsupported(&self) -> &[Unsupported] {
        &self.unsupported
    }

    /// Number of rules (chains count once) that will run.
    pub fn len(&self) -> usize {
        self.rules.iter().filter(|r| !r.removed).count()
    }

    /// Whether no rule will run (none loaded, or all removed or left out).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of the rules that will run, in load order (chains once, by the id of
    /// their first rule).
    pub fn rule_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.rules.iter().filter(|r| !r.removed).map(|r| r.id)
    }

    /// Gives `@rbl` a resolver. Without one every `@rbl` lookup fails, and a failed
    /// lookup does not match (as a DNS failure in ModSecurity).
    pub fn set_resolver(&mut self, resolver: std::sync::Arc<dyn crate::lookup::Resolver>) {
        self.resolver = ResolverSlot(Some(resolver));
    }

    /// Whether `SecGeoLookupDb` loaded a database.
    pub fn has_geo_db(&self) -> bool {
        self.geo_db.is_some()
    }

    pub(crate) fn services(&self) -> crate::operators::Services<'_> {
        crate::operators::Services {
            geo: self.geo_db.as_deref(),
            resolver: self.resolver.0.as_deref(),
            httpbl_key: self.httpbl_key.as_deref(),
        }
    }

    /// Turns the literal prefilter off (on by default): every rule then visits every
    /// value it targets. Verdicts are the same either way; this exists so that tests and
    /// benchmarks can show it.
    #[doc(hidden)]
    pub fn set_prefilter(&mut self, on: bool) {
        self.use_prefilter = on;
    }

    /// Turns off (on by default) starting each transaction from the state the
    /// request-independent start of phase 1 leaves (CRS's set-up rules), computed once:
    /// every rule then runs in every transaction. Outcomes are the same either way; this
    /// exists so that tests and benchmarks can show it.
    #[doc(hidden)]
    pub fn set_start_snapshot(&mut self, on: bool) {
        self.use_prefix = on;
    }

    /// Turns off (on by default) deciding once per rule set the rules after the start
    /// snapshot that read only `TX` members no later rule can write (CRS's paranoia-level
    /// and exclusion gates): they then run their links in every transaction. Outcomes are
    /// the same either way; this exists so that tests and benchmarks can show it.
    #[doc(hidden)]
    pub fn set_decided_gates(&mut self, on: bool) {
        self.use_decisions = on;
    }
}

impl<'f> Builder<'f> {
    fn new(files: &'f dyn Files, options: LoadOptions) -> Self {
        Builder {
            files,
            options,
            rules: Vec::new(),
            items: Vec::new(),
            ids: HashSet::new(),
            defaults: Default::default(),
            open: None,
            engine: EngineMode::On,
            request_body_access: true,
            arguments_limit: DEFAULT_ARGUMENTS_LIMIT,
            unsupported: Vec::new(),
            geo_db: None,
            httpbl_key: None,
        }
    }

    fn text(&mut self, name: &str, text: &str, depth: usize) -> Result<(), LoadError> {
        for d in directives(name, text)? {
            self.directive(d, depth)?;
        }
        Ok(())
    }

    fn directive(&mut self, d: Directive, depth: usize) -> Result<(), LoadError> {
        let at = d.at.clone();
        let fail = |kind| LoadError {
            at: at.clone(),
            kind,
        };
        let lower = d.name.to_ascii_lowercase();
        // Anything but SecRule / SecAction ends an open chain: that is a broken chain.
        if self.open.is_some() && lower != "secrule" && lower != "secaction" {
            return Err(fail(ErrorKind::DanglingChain));
        }
        let args = |n: std::ops::RangeInclusive<usize>, expected: &'static str| {
            if n.contains(&d.args.len()) {
                Ok(())
            } else {
                Err(fail(ErrorKind::Arguments {
                    directive: d.name.clone(),
                    expected,
                }))
            }
        };
        match lower.as_str() {
            "include" | "includeoptional" => {
                args(1..=1, "a path")?;
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(fail(ErrorKind::IncludeDepth(MAX_INCLUDE_DEPTH)));
                }
                let pattern = join(split_path(&at.file).0, &d.args[0]);
                let paths = self.files.glob(&pattern).map_err(|e| {
                    fail(ErrorKind::Io {
                        path: pattern.clone(),
                        reason: e.to_string(),
                    })
                })?;
                if paths.is_empty() && lower == "include" {
                    return Err(fail(ErrorKind::IncludeNoMatch(pattern)));
                }
                for path in paths {
                    let text = self.files.read(&path).map_err(|e| {
                        fail(ErrorKind::Io {
                            path: path.clone(),
                            reason: e.to_string(),
                        })
                    })?;
                    self.text(&path, &text, depth + 1)?;
                }
            }
            "secrule" => {
                args(2..=3, "VARIABLES \"OPERATOR\" [\"ACTIONS\"]")?;
                self.rule(
                    at,
                    Some((&d.args[0], &d.args[1])),
                    d.args.get(2).map(String::as_str).unwrap_or(""),
                )?;
            }
            "secaction" => {
                args(1..=1, "\"ACTIONS\"")?;
                self.rule(at, None, &d.args[0])?;
            }
            "secmarker" => {
                args(1..=1, "a marker name")?;
                self.items.push(Item::Marker(d.args[0].clone()));
            }
            "secdefaultaction" => {
                args(1..=1, "\"ACTIONS\"")?;
                let a = parse_actions(&d.args[0]).map_err(fail)?;
                let phase = a.phase.unwrap_or(2);
                if a.disruptive.is_none() {
                    return Err(fail(ErrorKind::Arguments {
                        directive: d.name.clone(),
                        expected: "a phase and a disruptive action",
                    }));
                }
                self.defaults[usize::from(phase) - 1] = DefaultAction {
                    disruptive: a.disruptive,
                    status: a.status,
                    transforms: a.transforms,
                    log: a.log,
                };
            }
            "secruleremovebyid" => {
                args(1..=usize::MAX, "rule ids or ranges")?;
                let ranges = parse_id_ranges(&d.args.join(" ")).map_err(|reason| {
                    fail(ErrorKind::Arguments {
                        directive: reason.clone(),
                        expected: "rule ids or ranges",
                    })
                })?;
                for rule in &mut self.rules {
                    if in_ranges(&ranges, rule.id) {
                        rule.removed = true;
                    }
                }
            }
            "secruleremovebytag" => {
                args(1..=1, "a tag")?;
                for rule in &mut self.rules {
                    if rule.tags.iter().any(|t| t == &d.args[0]) {
                        rule.removed = true;
                    }
                }
            }
            "secruleupdatetargetbyid" | "secruleupdatetargetbytag" => {
                args(
                    2..=3,
                    "a rule id (or tag), targets and optionally the target they replace",
                )?;
                let by_id = lower.ends_with("byid");
                let ranges: IdRanges = if by_id {
                    parse_id_ranges(&d.args[0])
                        .map_err(|_| fail(ErrorKind::NoSuchRule(d.args[0].clone())))?
                } else {
                    Vec::new()
                };
                let add = parse_targets(&d.args[1]).map_err(fail)?;
                let replaced = match d.args.get(2) {
                    Some(r) => Some(parse_targets(r).map_err(fail)?),
                    None => None,
                };
                let mut found = false;
                for rule in &mut self.rules {
                    let selected = if by_id {
                        in_ranges(&ranges, rule.id)
                    } else {
                        rule.tags.iter().any(|t| t == &d.args[0])
                    };
                    if !selected {
                        continue;
                    }
                    found = true;
                    let targets = &mut rule.links[0].targets;
                    if let Some(old) = &replaced {
                        targets.include.retain(|t| {
                            !old.include.iter().any(|o| {
                                o.var == t.var
                                    && o.count == t.count
                                    && format!("{:?}", o.selector) == format!("{:?}", t.selector)
                            })
                        });
                    }
                    targets.include.extend(add.include.iter().cloned());
                    targets.exclude.extend(add.exclude.iter().cloned());
                }
                if by_id && !found {
                    return Err(fail(ErrorKind::NoSuchRule(d.args[0].clone())));
                }
            }
            "secruleengine" => {
                args(1..=1, "On, Off or DetectionOnly")?;
                self.engine = EngineMode::parse(&d.args[0]).ok_or_else(|| {
                    fail(ErrorKind::Arguments {
                        directive: d.name.clone(),
                        expected: "On, Off or DetectionOnly",
                    })
                })?;
            }
            "secrequestbodyaccess" => {
                args(1..=1, "On or Off")?;
                self.request_body_access = match d.args[0].to_ascii_lowercase().as_str() {
                    "on" => true,
                    "off" => false,
                    _ => {
                        return Err(fail(ErrorKind::Arguments {
                            directive: d.name.clone(),
                            expected: "On or Off",
                        }));
                    }
                };
            }
            "secargumentslimit" => {
                args(1..=1, "a number of arguments")?;
                self.arguments_limit =
                    d.args[0].parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        fail(ErrorKind::Arguments {
                            directive: d.name.clone(),
                            expected: "a positive number of arguments",
                        })
                    })?;
            }
            // Identification of the rule set in logs, and the lifetime of persistent
            // collections (not kept by this engine): accepted.
            "seccomponentsignature" | "seccollectiontimeout" => {
                args(1..=1, "one value")?;
            }
            // The database `@geoLookup` reads. ModSecurity refuses the configuration when
            // the file cannot be opened as a database ("Failed to load the GeoDB from"),
            // and so does this engine. The path is relative to the rule file, as data
            // files are. The last directive wins, as in ModSecurity (one global database).
            "secgeolookupdb" => {
                args(1..=1, "the path of a MaxMind DB (.mmdb)")?;
                let path = join(split_path(&at.file).0, &d.args[0]);
                let bytes = self.files.read_bytes(&path).map_err(|e| {
                    fail(ErrorKind::Io {
                        path: path.clone(),
                        reason: e.to_string(),
                    })
                })?;
                let db = GeoDb::from_bytes(bytes).map_err(|reason| {
                    fail(ErrorKind::Io {
                        path: path.clone(),
                        reason: format!("not a MaxMind DB: {reason}"),
                    })
                })?;
                self.geo_db = Some(std::sync::Arc::new(db));
            }
            // http:BL's access key, put before the name `@rbl ...httpbl.org` looks up.
            "sechttpblkey" => {
                args(1..=1, "an http:BL access key")?;
                self.httpbl_key = Some(d.args[0].clone());
            }
            _ => return Err(fail(ErrorKind::UnknownDirective(d.name.clone()))),
        }
        Ok(())
    }

    fn rule(
        &mut self,
        at: Location,
        rule: Option<(&str, &str)>,
        actions: &str,
    ) -> Result<(), LoadError> {
        let fail = |kind| LoadError {
            at: at.clone(),
            kind,
        };
        let actions = parse_actions(actions).map_err(fail)?;
        let mut unsupported = None;
        let (targets, operator) = match rule {
            None => (Targets::default(), None),
            Some((vars, op)) => {
                let targets = match parse_targets(vars) {
                    Ok(t) => t,
                    Err(ErrorKind::Unsupported { feature, reason }) => {
                        unsupported = Some(Unsupported {
                            at: at.clone(),
                            rule_id: None,
                            feature,
                            reason,
                        });
                        Targets::default()
                    }
                    Err(kind) => return Err(fail(kind)),
                };
                let dir = split_path(&at.file).0.to_owned();
                let files = self.files;
                let read = |name: &str| {
                    let path = join(&dir, name);
                    files.read(&path).map_err(|e| ErrorKind::Io {
                        path,
                        reason: e.to_string(),
                    })
                };
                match operators::compile(op, &read) {
                    Ok(o) => (targets, Some(o)),
                    Err(ErrorKind::Unsupported { feature, reason }) => {
                        unsupported = Some(Unsupported {
                            at: at.clone(),
                            rule_id: None,
                            feature,
                            reason,
                        });
                        (targets, None)
                    }
                    // A pattern RE2 semantics cannot express (look-around, backreferences)
                    // is an error; when unsupported rules are skipped it is listed instead.
                    // A malformed pattern (an unclosed group) stays an error either way.
                    Err(ErrorKind::Regex { pattern, reason })
                        if self.options.skip_unsupported && reason.contains("not supported") =>
                    {
                        unsupported = Some(Unsupported {
                            at: at.clone(),
                            rule_id: None,
                            feature: format!("@rx {pattern}"),
                            reason: reason
                                .lines()
                                .last()
                                .unwrap_or_default()
                                .trim_start_matches("error: ")
                                .to_owned(),
                        });
                        (targets, None)
                    }
                    Err(kind) => return Err(fail(kind)),
                }
            }
        };
        let chained = self.open.is_some();
        if chained {
            for (set, what) in [
                (actions.id.is_some(), "id"),
                (actions.phase.is_some(), "phase"),
                (actions.skip_after.is_some(), "skipAfter"),
                (actions.skip.is_some(), "skip"),
                (
                    matches!(actions.disruptive, Some(ref d) if *d != Disruptive::Pass && *d != Disruptive::Block),
                    "a disruptive action",
                ),
            ] {
                if set {
                    return Err(fail(ErrorKind::ChainStarterOnly(what)));
                }
            }
        }
        let phase = if chained {
            self.open.as_ref().map_or(2, |(r, _)| r.phase)
        } else {
            actions.phase.unwrap_or(2)
        };
        let default = self.defaults[usize::from(phase) - 1].clone();
        // The default transformations come first; `t:none` anywhere clears what precedes it.
        let mut transforms = Vec::new();
        for t in default.transforms.iter().chain(&actions.transforms) {
            match t {
                Some(t) => transforms.push(*t),
                None => transforms.clear(),
            }
        }
        let more = actions.chain;
        let link = Link {
            targets,
            transforms,
            chain: 0,
            prefilter: None,
            memo: None,
            single_name: None,
            single_slot: None,
            selected_names: Vec::new(),
            target_slots: Vec::new(),
            target_names: Vec::new(),
            capture: actions.capture,
            multi_match: actions.multi_match,
            operator,
            actions,
        };
        let (mut rule, mut pending_unsupported) = match self.open.take() {
            Some((mut r, u)) => {
                r.links.push(link);
                (r, u)
            }
            None => {
                let a = &link.actions;
                let id = a.id.ok_or_else(|| fail(ErrorKind::MissingId))?;
                if !self.ids.insert(id) {
                    return Err(fail(ErrorKind::DuplicateId(id)));
                }
                let disruptive = match a.disruptive.clone() {
                    // As in ModSecurity v3, only `block` takes the default disruptive
                    // action; a rule without one passes.
                    None => Disruptive::Pass,
                    Some(Disruptive::Block) => {
                        default.disruptive.clone().unwrap_or(Disruptive::Pass)
                    }
                    Some(d) => d,
                };
                let rule = Rule {
                    id,
                    phase,
                    at: at.clone(),
                    disruptive,
                    status: a.status.or(default.status),
                    skip: a.skip,
                    skip_after: a.skip_after.clone(),
                    tags: a.tags.clone(),
                    tag_ids: Vec::new(),
                    log: a.log.or(default.log).unwrap_or(true),
                    removed: false,
                    links: vec![link],
                };
                (rule, None)
            }
        };
        if pending_unsupported.is_none() {
            pending_unsupported = unsupported;
        }
        if more {
            self.open = Some((rule, pending_unsupported));
            return Ok(());
        }
        if let Some(mut u) = pending_unsupported {
            u.rule_id = Some(rule.id);
            if !self.options.skip_unsupported {
                return Err(LoadError {
                    at: u.at,
                    kind: ErrorKind::Unsupported {
                        feature: u.feature,
                        reason: u.reason,
                    },
                });
            }
            self.unsupported.push(u);
            rule.removed = true;
        }
        self.items.push(Item::Rule(self.rules.len()));
        self.rules.push(rule);
        Ok(())
    }

    fn finish(mut self) -> Result<RuleSet, LoadError> {
        share_selector_patterns(&mut self.rules);
        let mut chains: HashMap<Vec<Transform>, u32> = HashMap::new();
        for link in self.rules.iter_mut().flat_map(|r| r.links.iter_mut()) {
            if !link.transforms.is_empty() {
                let next = chains.len() as u32 + 1;
                link.chain = *chains.entry(link.transforms.clone()).or_insert(next);
            }
        }
        if let Some((rule, _)) = self.open {
            return Err(LoadError {
                at: rule.at,
                kind: ErrorKind::DanglingChain,
            });
        }
        let mut phases: [Vec<Item>; 5] = Default::default();
        let mut skip_after = vec![None; self.rules.len()];
        for item in &self.items {
            match item {
                Item::Marker(_) => phases.iter_mut().for_each(|p| p.push(item.clone())),
                Item::Rule(i) if !self.rules[*i].removed => {
                    phases[usize::from(self.rules[*i].phase) - 1].push(item.clone())
                }
                Item::Rule(_) => {}
            }
        }
        for list in &phases {
            for (position, item) in list.iter().enumerate() {
                let Item::Rule(i) = item else { continue };
                let rule = &self.rules[*i];
                let Some(marker) = &rule.skip_after else {
                    continue;
                };
                let target = list[position + 1..].iter().position(|it| match it {
                    Item::Marker(m) => m == marker,
                    Item::Rule(r) => self.rules[*r].id.to_string() == *marker,
                });
                match target {
                    Some(t) => skip_after[*i] = Some(position + 1 + t + 1),
                    None => {
                        return Err(LoadError {
                            at: rule.at.clone(),
                            kind: ErrorKind::UnknownMarker(marker.clone()),
                        });
                    }
                }
            }
        }
        let mut tag_ids = HashMap::new();
        for rule in &mut self.rules {
            rule.tag_ids = rule
                .tags
                .iter()
                .map(|t| {
                    let next = tag_ids.len() as u32;
                    *tag_ids.entry(t.clone()).or_insert(next)
                })
                .collect();
        }
        let prefilter = Prefilter::build(&mut self.rules, &mut chains, tag_ids.len());
        // A prefiltered link's memo bit is its prefilter id (the candidates leave out the
        // values a record's first words say its links do not match); other links' bits
        // follow.
        let mut memo_links = prefilter.link_vars.len() as u32;
        // Member names known at load time, numbered: the capture names first (their
        // numbers are their digits), then every constant name a rule reads or sets.
        let mut names = crate::collection::Names::default();
        for n in 0..crate::operators::MAX_CAPTURES {
            names.intern(&n.to_string());
        }
        for link in self.rules.iter_mut().flat_map(|r| r.links.iter_mut()) {
            let mut number = |key: &str| names.intern(key);
            if let Some(m) = link.operator.as_mut().and_then(|o| o.macro_argument_mut()) {
                m.number_names(&mut number);
            }
            let a = &mut link.actions;
            for m in [&mut a.msg, &mut a.logdata].into_iter().flatten() {
                m.number_names(&mut number);
            }
            if let Some(Disruptive::Redirect(url)) = &mut a.disruptive {
                url.number_names(&mut number);
            }
            for effect in &mut a.effects {
                if let Effect::SetVar(s) = effect {
                    s.key.number_names(&mut number);
                    match &mut s.op {
                        SetOp::Set(v) | SetOp::Add(v) | SetOp::Sub(v) => {
                            v.number_names(&mut number)
                        }
                        SetOp::Delete => {}
                    }
                    if let Some(key) = s.key.constant() {
                        s.slot = Some(number(&String::from_utf8_lossy(key)));
                    }
                }
            }
            if link.operator.as_ref().is_some_and(|o| o.value_only()) {
                link.memo = Some(link.prefilter.unwrap_or_else(|| {
                    memo_links += 1;
                    memo_links - 1
                }));
            }
            if let [
                crate::variables::Target {
                    var,
                    selector: Some(crate::variables::Selector::Key(key)),
                    count: false,
                },
            ] = link.targets.include.as_slice()
                && var.is_collection()
            {
                link.single_name = Some(format!("{}:{key}", var.name()).into());
                link.single_slot = Some(names.intern(key));
            }
        }
        // The collections a transaction keeps (not the request's: `ARGS:q` names no member).
        let kept = |v: crate::variables::Var| {
            use crate::variables::Var::*;
            matches!(v, Tx | Ip | Global | Session | User | Resource | Geo | Env)
        };
        for link in self.rules.iter_mut().flat_map(|r| r.links.iter_mut()) {
            link.target_slots = link
                .targets
                .include
                .iter()
                .map(|t| match &t.selector {
                    Some(crate::variables::Selector::Key(k)) if kept(t.var) => {
                        Some(names.intern(k))
                    }
                    _ => None,
                })
                .collect();
            link.target_names = link
                .targets
                .include
                .iter()
                .map(|t| match &t.selector {
                    _ if t.count => Some(format!("&{}", t.var.name()).into()),
                    Some(crate::variables::Selector::Key(k)) if t.var.is_collection() => {
                        Some(format!("{}:{k}", t.var.name()).into())
                    }
                    _ => None,
                })
                .collect();
        }
        // After every name is numbered: the answers cover them all.
        for link in self.rules.iter_mut().flat_map(|r| r.links.iter_mut()) {
            link.selected_names = link
                .targets
                .include
                .iter()
                .map(|t| match &t.selector {
                    Some(s @ crate::variables::Selector::Regex(_)) if kept(t.var) => {
                        Some(names.selected_by(|name| s.matches(name)))
                    }
                    _ => None,
                })
                .collect();
        }
        let infos = self
            .rules
            .iter()
            .map(|r| crate::outcome::RuleInfo {
                id: r.id,
                phase: r.phase,
                tags: r.tags.clone(),
                severity: r.actions().severity,
                log: r.log,
            })
            .collect();
        let record_only = self
            .rules
            .iter()
            .map(|r| {
                r.actions().msg.is_none()
                    && r.actions().logdata.is_none()
                    && matches!(r.disruptive, Disruptive::Pass | Disruptive::Block)
                    && r.links.iter().all(|l| {
                        !l.actions
                            .effects
                            .iter()
                            .any(|e| matches!(e, Effect::Ctl(_)))
                    })
            })
            .collect();
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(RuleSet {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            memo_links,
            names,
            infos,
            tag_ids,
            prefilter,
            use_prefilter: true,
            geo_db: self.geo_db,
            httpbl_key: self.httpbl_key,
            resolver: ResolverSlot::default(),
            prefix: std::sync::OnceLock::new(),
            use_prefix: true,
            use_decisions: true,
            record_only,
            rules: self.rules,
            phases,
            skip_after,
            engine: self.engine,
            request_body_access: self.request_body_access,
            arguments_limit: self.arguments_limit,
            unsupported: self.unsupported,
        })
    }
}

/// Makes every regular-expression selector with the same pattern text a clone of one
/// compiled regex, so that they share its pattern (`Regex::as_str` at one address): a
/// transaction remembers a selector's answer for a key by that address
/// (`eval::SelectorMemo`), and the prompt-field policy writes one pattern in fifteen
/// `ctl` exclusions and several rules' targets, each parsed apart.
fn share_selector_patterns(rules: &mut [Rule]) {
    use crate::actions::{Ctl, Effect};
    use crate::variables::Selector;
    let mut seen: HashMap<String, regex::bytes::Regex> = HashMap::new();
    let mut share = |selector: &mut Option<Selector>| {
        if let Some(Selector::Regex(r)) = selector {
            let first = seen
                .entry(r.as_str().to_owned())
                .or_insert_with(|| r.clone());
            *r = first.clone();
        }
    };
    for link in rules.iter_mut().flat_map(|r| r.links.iter_mut()) {
        for t in &mut link.targets.include {
            share(&mut t.selector);
        }
        for e in &mut link.targets.exclude {
            share(&mut e.selector);
        }
        for effect in &mut link.actions.effects {
            if let Effect::Ctl(
                Ctl::RuleRemoveTargetById(_, exclusions)
                | Ctl::RuleRemoveTargetByTag(_, exclusions),
            ) = effect
            {
                for e in exclusions {
                    share(&mut e.selector);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("*.conf", "REQUEST-901.conf"));
        assert!(wildcard("REQUEST-*-X.conf", "REQUEST-9-X.conf"));
        assert!(!wildcard("*.conf", "a.data"));
        assert!(wildcard("exact", "exact"));
        assert!(!wildcard("exact", "exactly"));
    }
}
