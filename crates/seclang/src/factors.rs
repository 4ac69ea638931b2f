//! Factors: literals every match of an operator contains, which the prefilter
//! ([`crate::prefilter`]) looks for before running the operator.
//!
//! Soundness is what matters: a factor set must be found (ASCII case-insensitively) in
//! every string the operator matches. Every set is lowercased and searched without regard
//! to ASCII case, which can only find more.

use std::collections::BTreeSet;

use regex_syntax::ParserBuilder;
use regex_syntax::hir::{Class, Hir, HirKind};

type Set = BTreeSet<Vec<u8>>;

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
