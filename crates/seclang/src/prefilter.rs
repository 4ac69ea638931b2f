//! Literal prefilters: which rules can match a value at all, decided for all rules at once.
//!
//! Most values of a benign request match no rule, yet every rule of CRS visits every
//! value it targets. For each operator that can only match a value containing some
//! literal (an `@pm` phrase, a string every match of an `@rx` pattern contains), the
//! compiler records those literals ("factors"); one Aho-Corasick automaton over all of
//! them then scans each transformed value once per request, and a rule none of whose
//! factors occur in any of its values is skipped without visiting them. The factors and
//! why they are sound are [`crate::factors`]'.

use std::collections::HashMap;

use aho_corasick::MatchKind;
use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::nfa::contiguous::NFA;

use crate::rule::Rule;
use crate::transform::Transform;
use crate::variables::Var;

/// The transformations before a point of a list lowercase the value (or uppercase it).
pub const CASE_LOWER: u8 = 1;
pub const CASE_UPPER: u8 = 2;

/// A set of variables, one bit per [`Var`].
pub type VarMask = u128;

pub fn var_bit(var: Var) -> VarMask {
    bit(var as u32)
}

/// A [`VarMask`] as its two 64-bit words, for testing many variables against one mask:
/// the test the prefilter makes for each listed value and each variable.
///
/// WebAssembly has no 128-bit shift, so `mask & var_bit(var) != 0` (which LLVM turns into
/// a right shift of the mask) became a call to compiler-rt's `__lshrti3` per test, 98.3 k
/// of the 1,271.0 k instructions of a 2 KB chat request in the `waf` component
/// (`bench/instructions/guest-path waf`, `CASE=chat`, 2026-12-07). Choosing a word by
/// the variable's index is folded back by LLVM into that same shift (a shift of the mask
/// by 0 or 64, seen in the crate's IR for `wasm32-wasip2`), so the words are kept where
/// the optimiser cannot see they came from one 128-bit value.
pub struct MaskWords([u64; 2]);

impl MaskWords {
    pub fn of(mask: VarMask) -> MaskWords {
        MaskWords(std::hint::black_box([mask as u64, (mask >> 64) as u64]))
    }

    pub fn holds(&self, var: Var) -> bool {
        holds(&self.0, var as u32)
    }
}

fn bit(index: u32) -> VarMask {
    let low = VarMask::from(1u64 << (index % 64));
    if index < 64 { low } else { low << 64 }
}

fn holds(words: &[u64; 2], index: u32) -> bool {
    words[(index / 64) as usize % 2] & (1u64 << (index % 64)) != 0
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
    /// Smaller automata for the values of one variable whose links have few of the
    /// factors (`REQUEST_BODY`, `QUERY_STRING`, the URI variables under CRS): the
    /// variable's bit, the automaton of the factors of the links that target it, and
    /// each of its patterns' id in [`Prefilter::ac`]. A value of that variable alone
    /// (a request body, a query string: the longest values) is scanned with it; the
    /// factors it leaves out belong to links that never inspect such a value.
    pub var_acs: Vec<(VarMask, VarAutomaton, Vec<u32>)>,
}

/// A variable's own automaton: a DFA when it is small ([`DFA_LIMIT`]), walked with one
/// table look-up per byte instead of the NFA's transitions and failure links, else a
/// contiguous NFA like [`Prefilter::ac`].
#[derive(Debug)]
pub enum VarAutomaton {
    Dfa(DenseDfa),
    Nfa(NFA),
}

impl VarAutomaton {
    /// [`Prefilter::scan`] with this automaton.
    pub fn scan(&self, haystack: &[u8], found: impl FnMut(usize)) {
        match self {
            VarAutomaton::Dfa(dfa) => dfa.scan(haystack, found),
            VarAutomaton::Nfa(nfa) => Prefilter::scan(nfa, haystack, found),
        }
    }
}

/// aho-corasick's DFA copied into a table of our own, walked by a loop of a few
/// instructions per byte: through the crate's `Automaton` trait each byte took about 17
/// (a 2 KB chat body is scanned in every request). States are numbered with the match
/// states last, so that one comparison tells whether a byte ended a factor.
#[derive(Debug)]
pub struct DenseDfa {
    /// The equivalence class of each byte.
    classes: [u8; 256],
    /// `trans[state + class]`: the next state, premultiplied by the number of classes.
    trans: Vec<u32>,
    start: u32,
    /// The number of classes: a state's row length.
    stride: u32,
    /// States at or above it (premultiplied) are match states.
    first_match: u32,
    /// The patterns of match state `k` (the `k`-th from `first_match`):
    /// `matches[match_starts[k]..match_starts[k + 1]]`.
    match_starts: Vec<u32>,
    matches: Vec<u32>,
}

impl DenseDfa {
    /// The DFA's reachable states (from its unanchored start) in a table of their own.
    fn of(dfa: &DFA) -> Option<DenseDfa> {
        use aho_corasick::Anchored;
        let start = dfa.start_state(Anchored::No).ok()?;
        let mut ids = HashMap::new();
        let mut states = vec![start];
        ids.insert(start, 0usize);
        let mut next: Vec<[u32; 256]> = Vec::new();
        let mut i = 0;
        while i < states.len() {
            let sid = states[i];
            let mut row = [0u32; 256];
            for b in 0..=255u8 {
                let to = dfa.next_state(Anchored::No, sid, b);
                let n = states.len();
                let k = *ids.entry(to).or_insert_with(|| {
                    states.push(to);
                    n
                });
                row[usize::from(b)] = u32::try_from(k).ok()?;
            }
            next.push(row);
            i += 1;
        }
        // Bytes that lead every state to the same state share a class.
        let mut classes = [0u8; 256];
        let mut columns: Vec<Vec<u32>> = Vec::new();
        for b in 0..256 {
            let column: Vec<u32> = next.iter().map(|row| row[b]).collect();
            let class = match columns.iter().position(|c| *c == column) {
                Some(c) => c,
                None => {
                    columns.push(column);
                    columns.len() - 1
                }
            };
            classes[b] = u8::try_from(class).ok()?;
        }
        let stride = columns.len();
        // Non-match states first, then match states (a dead state, never reached from
        // an unanchored start, would be a state that matches nothing).
        let is_match = |sid| dfa.is_match(sid);
        let mut order: Vec<usize> = (0..states.len())
            .filter(|&k| !is_match(states[k]))
            .collect();
        let first = order.len();
        order.extend((0..states.len()).filter(|&k| is_match(states[k])));
        let mut place = vec![0u32; states.len()];
        for (p, &k) in order.iter().enumerate() {
            place[k] = u32::try_from(p * stride).ok()?;
        }
        let mut trans = vec![0u32; states.len() * stride];
        for (p, &k) in order.iter().enumerate() {
            for (b, &class) in classes.iter().enumerate() {
                trans[p * stride + usize::from(class)] = place[next[k][b] as usize];
            }
        }
        let mut match_starts = vec![0u32];
        let mut matches = Vec::new();
        for &k in &order[first..] {
            let sid = states[k];
            for m in 0..dfa.match_len(sid) {
                matches.push(dfa.match_pattern(sid, m).as_u32());
            }
            match_starts.push(u32::try_from(matches.len()).ok()?);
        }
        Some(DenseDfa {
            classes,
            trans,
            start: place[0],
            stride: u32::try_from(stride).ok()?,
            first_match: u32::try_from(first * stride).ok()?,
            match_starts,
            matches,
        })
    }

    /// [`Prefilter::scan`] with this table.
    pub fn scan(&self, haystack: &[u8], mut found: impl FnMut(usize)) {
        let (trans, classes, first_match) = (&self.trans[..], &self.classes, self.first_match);
        let mut s = self.start;
        for &b in haystack {
            s = trans[s as usize + usize::from(classes[usize::from(b)])];
            if s >= first_match {
                self.matched(s, &mut found);
            }
        }
    }

    #[inline(never)]
    fn matched(&self, s: u32, found: &mut impl FnMut(usize)) {
        let k = ((s - self.first_match) / self.stride) as usize;
        let (from, to) = (self.match_starts[k], self.match_starts[k + 1]);
        for &p in &self.matches[from as usize..to as usize] {
            found(p as usize);
        }
    }
}

/// The most memory a variable's own automaton may take as a DFA (rather than an NFA):
/// the request body's and the query string's automata under CRS are well below it, the
/// whole set of factors far above (about 20 MB, in every instance's snapshot).
const DFA_LIMIT: usize = 1 << 20;

/// A variable gets its own automaton ([`Prefilter::var_acs`]) when its links have at
/// most this share (1 / `SMALL_AUTOMATON_SHARE`) of all the factors: a smaller automaton
/// is walked faster.
const SMALL_AUTOMATON_SHARE: usize = 4;

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
        let present = MaskWords::of(vars);
        p.vars = (0..128u32)
            .filter(|&b| holds(&present.0, b))
            .filter_map(|b| ALL_STATIC.iter().copied().find(|v| *v as u32 == b))
            .map(|v| (v, bits_of(&|id| MaskWords::of(p.link_vars[id]).holds(v))))
            .collect();
        p.tag_links = (0..tags as u32)
            .map(|tag| bits_of(&|id| link_tags[id].contains(&tag)))
            .collect();
        // Standard semantics: every occurrence of every factor, overlapping.
        let automaton = |patterns: &[&Vec<u8>]| {
            aho_corasick::nfa::contiguous::Builder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(patterns)
                .ok()
        };
        for &(var, _) in &p.vars {
            let ids: Vec<u32> = (0..patterns.len() as u32)
                .filter(|&pid| {
                    p.pattern_links[pid as usize]
                        .iter()
                        .any(|&l| MaskWords::of(p.link_vars[l as usize]).holds(var))
                })
                .collect();
            if ids.is_empty() || ids.len() * SMALL_AUTOMATON_SHARE > patterns.len() {
                continue;
            }
            let own: Vec<&Vec<u8>> = ids.iter().map(|&pid| &patterns[pid as usize]).collect();
            let dfa = aho_corasick::dfa::Builder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(&own)
                .ok()
                .filter(|d| d.memory_usage() <= DFA_LIMIT)
                .and_then(|d| DenseDfa::of(&d));
            if let Some(dfa) = dfa {
                p.var_acs.push((var_bit(var), VarAutomaton::Dfa(dfa), ids));
            } else if let Some(ac) = automaton(&own) {
                p.var_acs.push((var_bit(var), VarAutomaton::Nfa(ac), ids));
            }
        }
        if !patterns.is_empty() {
            p.ac = automaton(&patterns.iter().collect::<Vec<_>>());
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

    /// The automaton to scan a value of the variables `mask` with: 0 for [`Prefilter::ac`],
    /// `k` for `var_acs[k - 1]` (a value of that one variable).
    pub fn automaton_for(&self, mask: VarMask) -> usize {
        self.var_acs
            .iter()
            .position(|(bit, _, _)| *bit == mask)
            .map_or(0, |k| k + 1)
    }

    /// Calls `found` with the id of every factor that occurs in `haystack` (once per
    /// occurrence). A plain walk of the DFA: every byte one transition, and a look at the
    /// state only when it is a match.
    pub fn scan(dfa: &impl Automaton, haystack: &[u8], mut found: impl FnMut(usize)) {
        use aho_corasick::Anchored;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn occurrences(scan: impl Fn(&mut dyn FnMut(usize))) -> Vec<usize> {
        let mut found = Vec::new();
        scan(&mut |p| found.push(p));
        found
    }

    /// A variable's bit and the test for it, written on 64-bit halves, are 128-bit
    /// arithmetic's: each of the 128 bits alone, and in masks that hold every other bit.
    #[test]
    fn a_mask_holds_exactly_the_bits_set_in_it() {
        for index in 0..128 {
            assert_eq!(bit(index), 1u128 << index, "bit {index}");
            for mask in [1u128 << index, !(1u128 << index), 0, u128::MAX] {
                let words = MaskWords::of(mask);
                assert_eq!(
                    holds(&words.0, index),
                    mask & (1u128 << index) != 0,
                    "bit {index}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// A mask holds the bits 128-bit arithmetic finds in it.
        #[test]
        fn holds_agrees_with_a_128_bit_test(mask: u128, index in 0u32..128) {
            prop_assert_eq!(holds(&MaskWords::of(mask).0, index), mask & (1u128 << index) != 0);
        }

        /// The table finds what aho-corasick's DFA finds, occurrence for occurrence.
        #[test]
        fn dense_dfa_finds_what_the_dfa_finds(
            patterns in proptest::collection::vec("[a-cA-C%/ ]{1,4}", 1..12),
            haystack in "[a-dA-D%/ \u{0}\u{ff}]{0,64}",
        ) {
            let dfa = aho_corasick::dfa::Builder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(&patterns)
                .unwrap();
            let dense = DenseDfa::of(&dfa).unwrap();
            let hay = haystack.as_bytes();
            prop_assert_eq!(
                occurrences(|f| Prefilter::scan(&dfa, hay, f)),
                occurrences(|f| dense.scan(hay, f))
            );
        }
    }
}
