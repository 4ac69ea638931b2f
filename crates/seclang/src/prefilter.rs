//! Literal prefilters: which rules can match a value at all, decided for all rules at once.
//!
//! Most values of a benign request match no rule, yet every rule of CRS visits every
//! value it targets. For each operator that can only match a value containing some
//! literal (an `@pm` phrase, a string every match of an `@rx` pattern contains), the
//! compiler records those literals ("factors"); one Aho-Corasick automaton over all of
//! them then scans each transformed value once per request, and a rule none of whose
//! factors occur in any of its values is skipped without visiting them.
//!
//! Soundness is what matters: a factor set must be found (ASCII case-insensitively) in
//! every string the operator matches. Every set is lowercased and searched without regard
//! to ASCII case, which can only find more.

use std::collections::{BTreeSet, HashMap};

use aho_corasick::MatchKind;
use aho_corasick::nfa::contiguous::NFA;
use regex_syntax::ParserBuilder;
use regex_syntax::hir::{Class, Hir, HirKind};

use crate::compile::Rule;
use crate::transform::Transform;
use crate::variables::Var;

type Set = BTreeSet<Vec<u8>>;

/// The transformations before a point of a list lowercase the value (or uppercase it).
pub const CASE_LOWER: u8 = 1;
pub const CASE_UPPER: u8 = 2;

/// A set of variables, one bit per [`Var`].
pub type VarMask = u128;

pub fn var_bit(var: Var) -> VarMask {
    1 << (var as u32)
}

/// Variables whose values come from the request alone, borrowed from it for the whole
/// phase: the prefilter can list them before rules run. (`TX`, `MATCHED_VAR`, counts and
/// computed sizes change as rules run, or are numbers no literal helps with.)
pub fn is_static(var: Var) -> bool {
    ALL_STATIC.contains(&var)
}

/// The rule set's prefilter: the factors of every prefiltered link in one automaton.
#[derive(Debug, Default)]
pub struct Prefilter {
    /// All factors, searched ASCII case-insensitively, every occurrence reported: an
    /// automaton walked byte by byte ([`Prefilter::scan`]). A contiguous NFA rather than
    /// a DFA: CRS's factors make a DFA of 20 MB (in the snapshot of every instance), the
    /// NFA a small fraction of that, for a slightly slower walk.
    pub ac: Option<NFA>,
    /// For each factor (the automaton's pattern id), the prefiltered links it belongs to.
    pub pattern_links: Vec<Vec<u32>>,
    /// For each prefiltered link (`Link::prefilter`), the variables it targets.
    pub link_vars: Vec<VarMask>,
    /// The distinct transformation lists of prefiltered links.
    pub chains: Vec<PrefilterChain>,
    /// The static variables some prefiltered link targets, each with its prefiltered
    /// links (one bit per link id).
    pub vars: Vec<(Var, Vec<u64>)>,
    /// For each tag ([`crate::RuleSet`]'s numbering), the prefiltered links of the rules
    /// that have it: what a `ctl:ruleRemoveTargetByTag` takes a value away from.
    pub tag_links: Vec<Vec<u64>>,
}

#[derive(Debug)]
pub struct PrefilterChain {
    pub transforms: Vec<Transform>,
    /// For each position `k` of `transforms`: the id of the rest of the list from `k`
    /// (lists with the same rest share it) and how the transformations before `k` change
    /// case ([`CASE_LOWER`], [`CASE_UPPER`], or 0: not at all) when they change nothing
    /// else.
    pub starts: Vec<(u32, u8)>,
    /// The variables its links target: only their values need this transformation list.
    pub vars: VarMask,
    /// Its links, one bit per prefiltered link id.
    pub links: Vec<u64>,
}

impl Prefilter {
    /// Gives each link whose operator has factors and whose targets are all static a
    /// prefilter id (`Link::prefilter`), and builds the automaton. `chain_ids` numbers
    /// the transformation lists (`Link::chain`); the prefixes `multiMatch` links need
    /// are added to it.
    pub fn build(
        rules: &mut [Rule],
        chain_ids: &mut HashMap<Vec<Transform>, u32>,
        tags: usize,
    ) -> Prefilter {
        let mut p = Prefilter::default();
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut pattern_ids: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut link_chains = Vec::new();
        let mut link_tags: Vec<Vec<u32>> = Vec::new();
        let mut vars: VarMask = 0;
        for rule in rules.iter_mut().filter(|r| !r.removed) {
            for link in &mut rule.links {
                let Some(op) = &mut link.operator else {
                    continue;
                };
                let Some(factors) = op.factors.take() else {
                    continue;
                };
                let targets = &link.targets.include;
                if targets.is_empty() || targets.iter().any(|t| t.count || !is_static(t.var)) {
                    continue;
                }
                let id = p.link_vars.len() as u32;
                link.prefilter = Some(id);
                let mask = targets.iter().fold(0, |m, t| m | var_bit(t.var));
                vars |= mask;
                p.link_vars.push(mask);
                link_tags.push(rule.tag_ids.clone());
                // `multiMatch` also matches the value before each transformation: the
                // link is a candidate if a factor occurs after any prefix of its list.
                let lists = if link.multi_match {
                    (0..=link.transforms.len())
                        .map(|n| link.transforms[..n].to_vec())
                        .collect()
                } else {
                    vec![link.transforms.clone()]
                };
                for list in lists {
                    let chain = if list.is_empty() {
                        0
                    } else {
                        let next = chain_ids.len() as u32 + 1;
                        *chain_ids.entry(list.clone()).or_insert(next)
                    };
                    link_chains.push((id, chain, list));
                }
                for f in factors {
                    let next = patterns.len() as u32;
                    let pid = *pattern_ids.entry(f.clone()).or_insert_with(|| {
                        patterns.push(f);
                        p.pattern_links.push(Vec::new());
                        next
                    });
                    p.pattern_links[pid as usize].push(id);
                }
            }
        }
        let words = p.link_vars.len().div_ceil(64);
        let mut by_chain: HashMap<u32, usize> = HashMap::new();
        let mut suffixes: HashMap<Vec<Transform>, u32> = HashMap::new();
        for (id, chain, transforms) in link_chains {
            let id = id as usize;
            let i = *by_chain.entry(chain).or_insert_with(|| {
                let mut case = 0;
                let starts = (0..transforms.len())
                    .map(|k| {
                        if k > 0 {
                            case = match transforms[k - 1] {
                                Transform::Lowercase | Transform::CmdLine => CASE_LOWER,
                                Transform::Uppercase => CASE_UPPER,
                                _ => case,
                            };
                        }
                        let next = suffixes.len() as u32;
                        (
                            *suffixes.entry(transforms[k..].to_vec()).or_insert(next),
                            case,
                        )
                    })
                    .collect();
                p.chains.push(PrefilterChain {
                    starts,
                    transforms,
                    vars: 0,
                    links: vec![0; words],
                });
                p.chains.len() - 1
            });
            let c = &mut p.chains[i];
            c.vars |= p.link_vars[id];
            c.links[id / 64] |= 1 << (id % 64);
        }
        let bits_of = |f: &dyn Fn(usize) -> bool| {
            let mut bits = vec![0u64; words];
            for id in (0..p.link_vars.len()).filter(|&id| f(id)) {
                bits[id / 64] |= 1 << (id % 64);
            }
            bits
        };
        p.vars = (0..128u32)
            .filter(|b| vars & (1 << b) != 0)
            .filter_map(|b| ALL_STATIC.iter().copied().find(|v| *v as u32 == b))
            .map(|v| (v, bits_of(&|id| p.link_vars[id] & var_bit(v) != 0)))
            .collect();
        p.tag_links = (0..tags as u32)
            .map(|tag| bits_of(&|id| link_tags[id].contains(&tag)))
            .collect();
        if !patterns.is_empty() {
            // Standard semantics: every occurrence of every factor, overlapping.
            p.ac = aho_corasick::nfa::contiguous::Builder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(&patterns)
                .ok();
            if p.ac.is_none() {
                // Without an automaton no link may be skipped.
                for rule in rules.iter_mut() {
                    for link in &mut rule.links {
                        link.prefilter = None;
                    }
                }
                return Prefilter::default();
            }
        }
        p
    }

    pub fn words(&self) -> usize {
        self.link_vars.len().div_ceil(64)
    }

    /// Calls `found` with the id of every factor that occurs in `haystack` (once per
    /// occurrence). A plain walk of the DFA: every byte one transition, and a look at the
    /// state only when it is a match.
    pub fn scan(dfa: &NFA, haystack: &[u8], mut found: impl FnMut(usize)) {
        use aho_corasick::Anchored;
        use aho_corasick::automaton::Automaton;
        let Ok(mut sid) = dfa.start_state(Anchored::No) else {
            return;
        };
        for &b in haystack {
            sid = dfa.next_state(Anchored::No, sid, b);
            if dfa.is_special(sid) {
                if dfa.is_dead(sid) {
                    return;
                }
                // Start states may be special too.
                if dfa.is_match(sid) {
                    for i in 0..dfa.match_len(sid) {
                        found(dfa.match_pattern(sid, i).as_usize());
                    }
                }
            }
        }
    }
}

/// The static variables ([`is_static`]).
const ALL_STATIC: &[Var] = {
    use Var::*;
    &[
        Args,
        ArgsGet,
        ArgsPost,
        ArgsNames,
        ArgsGetNames,
        ArgsPostNames,
        RequestUri,
        RequestUriRaw,
        RequestFilename,
        RequestBasename,
        RequestLine,
        RequestMethod,
        RequestProtocol,
        QueryString,
        RequestHeaders,
        RequestHeadersNames,
        RequestCookies,
        RequestCookiesNames,
        RequestBody,
        Files,
        FilesNames,
        MultipartPartHeaders,
        Xml,
        RemoteAddr,
        ServerName,
        UniqueId,
    ]
};

/// The most strings an exact set may grow to by cross products (`[ab][cd]` is 4).
const MAX_EXACT: usize = 64;
/// The most distinct bytes (after case folding) a class may stand for and still be
/// expanded into single-byte strings.
const MAX_CLASS: usize = 8;
/// The most factors of one pattern; past this it is not worth a prefilter.
const MAX_FACTORS: usize = 4096;

/// What a piece of a pattern says about the strings it matches.
enum Info {
    /// It matches exactly one of these strings (lowercased).
    Exact(Set),
    /// Every string it matches contains one of these (none empty).
    Factors(Set),
    /// Nothing useful.
    Any,
}

/// Factors of an `@rx` pattern already rewritten to RE2 syntax ([`crate::operators::translate_pcre`]),
/// parsed with the flags `compile_rx` uses. `None`: no useful literal (or the analysis
/// gave up), so the rule always runs.
pub fn rx_factors(translated: &str) -> Option<Vec<Vec<u8>>> {
    let hir = ParserBuilder::new()
        .dot_matches_new_line(true)
        .multi_line(true)
        .unicode(false)
        .utf8(false)
        .build()
        .parse(translated)
        .ok()?;
    finish(to_factors(analyse(&hir, 0)))
}

/// Factors of an operator matching a value that contains one of `phrases` (`@pm`,
/// `@contains`, ...). An empty phrase matches everything: no prefilter.
pub fn phrase_factors<'p>(phrases: impl IntoIterator<Item = &'p [u8]>) -> Option<Vec<Vec<u8>>> {
    let mut set = Set::new();
    for p in phrases {
        if p.is_empty() {
            return None;
        }
        set.insert(p.to_ascii_lowercase());
    }
    finish((!set.is_empty()).then_some(set))
}

fn finish(set: Option<Set>) -> Option<Vec<Vec<u8>>> {
    let set = set?;
    (!set.is_empty() && set.len() <= MAX_FACTORS && !set.contains(&Vec::new()))
        .then(|| set.into_iter().collect())
}

fn to_factors(info: Info) -> Option<Set> {
    match info {
        Info::Exact(s) if !s.contains(&Vec::new()) => Some(s),
        Info::Factors(s) => Some(s),
        _ => None,
    }
}

fn empty() -> Info {
    Info::Exact(std::iter::once(Vec::new()).collect())
}

/// Patterns nest deeper than this only in pathological cases: give up rather than
/// recurse without bound.
const MAX_DEPTH: usize = 200;

fn analyse(hir: &Hir, depth: usize) -> Info {
    if depth > MAX_DEPTH {
        return Info::Any;
    }
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => empty(),
        HirKind::Literal(l) => Info::Exact(std::iter::once(l.0.to_ascii_lowercase()).collect()),
        HirKind::Class(c) => class(c),
        HirKind::Capture(c) => analyse(&c.sub, depth + 1),
        HirKind::Repetition(r) => {
            if r.min == 0 {
                return Info::Any;
            }
            let sub = analyse(&r.sub, depth + 1);
            if r.min == 1 && r.max == Some(1) {
                return sub;
            }
            // At least one occurrence: its factors are required, though no longer exact.
            to_factors(sub).map_or(Info::Any, Info::Factors)
        }
        HirKind::Concat(subs) => {
            let mut run: Set = std::iter::once(Vec::new()).collect();
            let mut exact = true;
            let mut best = None;
            for sub in subs {
                match analyse(sub, depth + 1) {
                    Info::Exact(s) if run.len() * s.len() <= MAX_EXACT => run = cross(&run, &s),
                    Info::Exact(s) => {
                        consider(&mut best, std::mem::replace(&mut run, s));
                        exact = false;
                    }
                    other => {
                        consider(&mut best, std::mem::replace(&mut run, empty_set()));
                        exact = false;
                        if let Some(f) = to_factors(other) {
                            consider(&mut best, f);
                        }
                    }
                }
            }
            if exact {
                return Info::Exact(run);
            }
            consider(&mut best, run);
            best.map_or(Info::Any, Info::Factors)
        }
        HirKind::Alternation(subs) => {
            let infos: Vec<Info> = subs.iter().map(|s| analyse(s, depth + 1)).collect();
            if infos.iter().all(|i| matches!(i, Info::Exact(_))) {
                let union: Set = infos
                    .iter()
                    .flat_map(|i| match i {
                        Info::Exact(s) => s.iter().cloned(),
                        _ => unreachable!("all exact"),
                    })
                    .collect();
                if union.len() <= MAX_EXACT {
                    return Info::Exact(union);
                }
            }
            // Each branch must contribute a required set, or the whole says nothing.
            let mut union = Set::new();
            for info in infos {
                match to_factors(info) {
                    Some(s) => union.extend(s),
                    None => return Info::Any,
                }
                if union.len() > MAX_FACTORS {
                    return Info::Any;
                }
            }
            Info::Factors(union)
        }
    }
}

fn empty_set() -> Set {
    std::iter::once(Vec::new()).collect()
}

fn cross(a: &Set, b: &Set) -> Set {
    let mut out = Set::new();
    for x in a {
        for y in b {
            let mut s = x.clone();
            s.extend_from_slice(y);
            out.insert(s);
        }
    }
    out
}

/// Keeps the more selective of two required sets: the one expected to occur less often in
/// ordinary text (a set of letters is worth little, `<script` or `;` much). A set holding
/// the empty string requires nothing.
fn consider(best: &mut Option<Set>, candidate: Set) {
    if candidate.is_empty() || candidate.contains(&Vec::new()) {
        return;
    }
    if best.as_ref().is_none_or(|b| cost(&candidate) < cost(b)) {
        *best = Some(candidate);
    }
}

/// How often one of the strings is expected at a position of ordinary text (prose, JSON,
/// headers): the sum over the strings of the product of their bytes' frequencies.
fn cost(set: &Set) -> f64 {
    set.iter()
        .map(|s| s.iter().map(|&b| frequency(b)).product::<f64>())
        .sum()
}

/// A rough frequency of a (lowercased) byte in benign request text.
fn frequency(b: u8) -> f64 {
    match b {
        b' ' => 0.15,
        b'e' | b't' | b'a' | b'o' | b'i' | b'n' | b's' | b'r' | b'h' => 0.06,
        b'a'..=b'z' => 0.02,
        b'0'..=b'9' => 0.02,
        b'.' | b',' | b'-' | b'_' | b'/' | b':' | b'"' | b'\'' | b'\n' => 0.01,
        b'(' | b')' | b'=' | b'&' | b'?' | b'!' | b'%' | b'+' => 0.003,
        0x80.. => 0.005,
        _ => 0.001,
    }
}

/// A class as its few possible bytes, case folded; a larger class says nothing.
fn class(c: &Class) -> Info {
    let mut bytes = BTreeSet::new();
    let mut add = |lo: u32, hi: u32| -> bool {
        for b in lo..=hi {
            let Ok(b) = u8::try_from(b) else { return false };
            // A non-ASCII code point of a Unicode class is several bytes: give up.
            if b >= 0x80 && matches!(c, Class::Unicode(_)) {
                return false;
            }
            bytes.insert(b.to_ascii_lowercase());
            if bytes.len() > MAX_CLASS {
                return false;
            }
        }
        true
    };
    let complete = match c {
        Class::Bytes(b) => b
            .ranges()
            .iter()
            .all(|r| add(u32::from(r.start()), u32::from(r.end()))),
        Class::Unicode(u) => u
            .ranges()
            .iter()
            .all(|r| add(u32::from(r.start()), u32::from(r.end()))),
    };
    if !complete {
        return Info::Any;
    }
    Info::Exact(bytes.into_iter().map(|b| vec![b]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::translate_pcre;

    fn factors(pattern: &str) -> Option<Vec<String>> {
        rx_factors(&translate_pcre(pattern).unwrap()).map(|f| {
            f.into_iter()
                .map(|s| String::from_utf8(s).unwrap())
                .collect()
        })
    }

    #[test]
    fn literals_alternations_and_case_folding() {
        assert_eq!(factors("(?i)union\\s+select"), Some(vec!["select".into()]));
        assert_eq!(
            factors("(?i:<script|javascript:)"),
            Some(vec!["<script".into(), "javascript:".into()])
        );
        assert_eq!(factors("a[bc]d"), Some(vec!["abd".into(), "acd".into()]));
    }

    #[test]
    fn patterns_that_can_match_anything_have_none() {
        assert_eq!(factors(".*"), None);
        assert_eq!(factors("^$"), None);
        assert_eq!(factors("(?:abc)?"), None);
        assert_eq!(factors("abc|\\d+"), None);
        assert_eq!(factors("[^a]"), None);
    }

    #[test]
    fn repetitions_keep_required_parts() {
        assert_eq!(factors("x(?:ab)+y"), Some(vec!["ab".into()]));
        assert_eq!(factors("\\d+foo\\d*"), Some(vec!["foo".into()]));
    }

    #[test]
    fn empty_phrases_disable_the_prefilter() {
        assert_eq!(phrase_factors([&b"a"[..], b""]), None);
        assert_eq!(
            phrase_factors([&b"Select"[..]]),
            Some(vec![b"select".to_vec()])
        );
    }
}

#[cfg(test)]
mod soundness {
    use proptest::prelude::*;

    use super::*;
    use crate::operators::{compile_rx, translate_pcre};

    /// Whether `haystack` contains one of `factors`, ASCII case aside: what the
    /// automaton decides.
    fn contains_one(haystack: &[u8], factors: &[Vec<u8>]) -> bool {
        let lower = haystack.to_ascii_lowercase();
        factors
            .iter()
            .any(|f| lower.windows(f.len()).any(|w| w == f.as_slice()))
    }

    /// Small patterns from the constructs CRS uses: literals, classes, alternations,
    /// optional and repeated groups, anchors, word boundaries, case-insensitivity.
    fn pattern() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            8 => "[a-cA-C<'/ ]{1,3}",
            1 => Just("[ab]".to_string()),
            1 => Just("[^a]".to_string()),
            1 => Just("\\s".to_string()),
            1 => Just("\\d".to_string()),
            1 => Just("\\b".to_string()),
            1 => Just("^".to_string()),
            1 => Just("$".to_string()),
            1 => Just(".".to_string()),
        ];
        let piece = (
            atom,
            prop_oneof![
                6 => Just(""),
                1 => Just("?"),
                1 => Just("*"),
                1 => Just("+"),
                1 => Just("{2}"),
                1 => Just("{1,2}"),
            ],
        )
            .prop_map(|(a, q)| format!("(?:{a}){q}"));
        let seq = prop::collection::vec(piece, 1..5).prop_map(|v| v.concat());
        let alt = prop::collection::vec(seq, 1..4).prop_map(|v| v.join("|"));
        (alt, any::<bool>()).prop_map(|(a, ci)| {
            if ci {
                format!("(?i)(?:{a})")
            } else {
                format!("(?:{a})")
            }
        })
    }

    /// A pattern and haystacks for it: one generated from the pattern itself (so that
    /// most of them match) with text around it, where proptest can generate from it, and
    /// random text.
    fn case() -> impl Strategy<Value = (String, String)> {
        pattern().prop_flat_map(|p| {
            let text = "[a-cA-C<'/ 0-9\n]{0,6}";
            let matching =
                match proptest::string::string_regex(&p.replace(['^', '$'], "").replace("\\b", ""))
                {
                    Ok(s) => (text, s, text)
                        .prop_map(|(a, m, b)| format!("{a}{m}{b}"))
                        .boxed(),
                    Err(_) => text.prop_map(|s| s).boxed(),
                };
            let haystack = prop_oneof![3 => matching, 1 => "[a-cA-C<'/ 0-9\n]{0,12}"];
            (Just(p), haystack)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn every_match_contains_a_factor((p, haystack) in case()) {
            let re = compile_rx(&p).unwrap();
            if let Some(factors) = rx_factors(&translate_pcre(&p).unwrap())
                && re.is_match(haystack.as_bytes())
            {
                prop_assert!(
                    contains_one(haystack.as_bytes(), &factors),
                    "{p:?} matches {haystack:?} but the factors are {factors:?}"
                );
            }
        }
    }
}
