//! What evaluation learns about a value and can reuse in later requests: header values,
//! argument names, roles and model names repeat from one request of a client to the next,
//! and most of the work CRS does on them (libinjection, byte ranges, the prefilter's
//! transformations and scan) gives the same "no match" every time.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

use foldhash::SharedSeed;
use foldhash::quality::SeedableRandomState;

use crate::compile::RuleSet;
use crate::prefilter::VarMask;

/// The longest value remembered. Header values, argument names, roles and models fit;
/// prose mostly does not, and would only fill the memo with what never repeats.
pub const MEMO_VALUE_LIMIT: usize = 256;

/// The most distinct values remembered; the memo is emptied when a transaction starts
/// beyond it (or beyond [`MEMO_BYTES`]), and within one transaction it takes no new value
/// past twice this (or twice [`MEMO_BYTES`]): a body of many distinct short values cannot
/// grow it without bound.
pub const MEMO_VALUES: usize = 4096;

/// The most bytes the remembered values and their records take (approximately: the
/// values, the bit sets and a fixed overhead per value).
pub const MEMO_BYTES: usize = 2 << 20;

/// A memo of evaluation results across requests, owned by the caller and given to
/// [`RuleSet::evaluate_with`] or [`RuleSet::transaction_with`] (one per instance or
/// thread; it is not shared).
///
/// For each value of at most [`MEMO_VALUE_LIMIT`] bytes it remembers:
///
/// - the links of rules whose operator did not match it, among the links whose answer
///   depends on the value alone (an operator without macros and without side effects:
///   `@rx`, `@pm`, `@detectSQLi`, `@detectXSS`, `@validateByteRange`, comparisons with a
///   constant, ...; not `@within %{tx.…}`, `@geoLookup`, `@rbl`). Such a link then skips
///   the value: no transformation, no operator. A match is never remembered: a matching
///   value runs the rule as before, with its actions.
/// - the prefilter's verdict for the value (which links may match it), per set of
///   variables the value belongs to, so the value is not transformed and scanned again.
///
/// Values are looked up by their bytes, compared exactly (the hash only finds the
/// candidate; a collision never answers for another value), with a randomly keyed hash.
/// The memo belongs to the rule set it was filled with: given to another, it is emptied
/// first. Verdicts are the same with and without it (`tests/memo.rs`).
#[derive(Default)]
pub struct EvalMemo {
    /// [`RuleSet::id`] of the rule set the records are for (0: none yet).
    rules: u64,
    /// Words per record: the memo bits of links.
    link_words: usize,
    map: HashMap<Box<[u8]>, u32, MemoHasher>,
    records: Vec<Record>,
    bytes: usize,
    /// The last transaction's scratch (caches keyed by addresses, emptied), so that the
    /// next one does not allocate its tables again. The evaluator's own type, which the
    /// memo only keeps: erased, so that this module does not depend on the evaluator's.
    pub(crate) scratch: Option<Box<dyn std::any::Any + Send + Sync>>,
}

#[derive(Default)]
struct Record {
    /// One bit per [`crate::compile::Link::memo`]: the link's operator did not match the
    /// value (after the link's transformations).
    no_match: Box<[u64]>,
    /// Per set of variables: the prefiltered links one of whose factors occurs in the
    /// value after their transformations (before exclusions).
    prefilter: Vec<Verdict>,
    /// The value as a collection key: whether regular-expression selectors select it, by
    /// the address of the selector's pattern in the rule set (`eval::SelectorMemo`).
    selectors: Vec<(usize, bool)>,
}

/// The prefilter's verdict for a value as a member of some variables.
struct Verdict {
    mask: VarMask,
    /// The links one of whose factors occurs in the value.
    links: Box<[u64]>,
    /// The links `links` answers for; `None`: all of them. A verdict computed while `ctl`
    /// exclusions took the value from every link of some transformation lists (the
    /// prompt-field policy's message contents) left those lists unapplied, so it says
    /// nothing about their links.
    covered: Option<Box<[u64]>>,
}

/// The memo's hash. Its keys are request values, chosen by clients: a hash without a
/// secret key (FxHash, the address tables' [`crate::collection::AddressHasher`]) could be
/// driven into collisions, every value of a request landing in one chain that each
/// look-up walks (up to `2 * MEMO_VALUES` values compared byte for byte). foldhash's
/// quality variant, keyed with 64 random bits for the process (from std's `RandomState`,
/// the OS's random source: WASI's `random_get` in Wasm) and 64 more per memo: a keyed
/// hash like SipHash, which it replaces for about a third of the instructions per value
/// (foldhash claims minimal HashDoS resistance, not SipHash's; the memo's size caps bound
/// what a chain could cost in any case).
#[derive(Clone)]
struct MemoHasher(SeedableRandomState);

impl MemoHasher {
    fn random() -> MemoHasher {
        static SHARED: OnceLock<SharedSeed> = OnceLock::new();
        let random = || RandomState::new().hash_one(0x6d65_6d6f_u64);
        let shared = SHARED.get_or_init(|| SharedSeed::from_u64(random()));
        MemoHasher(SeedableRandomState::with_seed(random(), shared))
    }
}

impl Default for MemoHasher {
    fn default() -> MemoHasher {
        MemoHasher::random()
    }
}

impl BuildHasher for MemoHasher {
    type Hasher = <SeedableRandomState as BuildHasher>::Hasher;
    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// A value's record in an [`EvalMemo`].
pub(crate) type Slot = u32;

impl EvalMemo {
    /// An empty memo.
    pub fn new() -> EvalMemo {
        EvalMemo::default()
    }

    /// How many values it remembers.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it remembers nothing.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.map.clear();
        self.records.clear();
        self.bytes = 0;
    }

    /// Before a transaction of `rules`: empties the memo if it was filled for another
    /// rule set or is full.
    pub(crate) fn begin(&mut self, rules: &RuleSet) {
        if self.rules != rules.id {
            self.clear();
            self.rules = rules.id;
            self.link_words = (rules.memo_links as usize).div_ceil(64);
        } else if self.records.len() >= MEMO_VALUES || self.bytes >= MEMO_BYTES {
            self.clear();
        }
    }

    /// The record of `value`, if it has one.
    pub(crate) fn find(&self, value: &[u8]) -> Option<Slot> {
        if value.len() > MEMO_VALUE_LIMIT {
            return None;
        }
        self.map.get(value).copied()
    }

    /// The record of `value`, made if it has none; `None` if the value is too long.
    pub(crate) fn find_or_add(&mut self, value: &[u8]) -> Option<Slot> {
        if value.len() > MEMO_VALUE_LIMIT {
            return None;
        }
        if let Some(&slot) = self.map.get(value) {
            return Some(slot);
        }
        // A value without a record is simply evaluated: refusing one costs time only.
        if self.records.len() >= 2 * MEMO_VALUES || self.bytes >= 2 * MEMO_BYTES {
            return None;
        }
        let slot = self.records.len() as Slot;
        self.records.push(Record {
            no_match: vec![0; self.link_words].into_boxed_slice(),
            prefilter: Vec::new(),
            selectors: Vec::new(),
        });
        self.bytes += value.len() + 8 * self.link_words + 96;
        self.map.insert(value.into(), slot);
        Some(slot)
    }

    /// Whether the link with memo bit `bit` is known not to match the value.
    pub(crate) fn no_match(&self, slot: Slot, bit: u32) -> bool {
        let words = &self.records[slot as usize].no_match;
        words[bit as usize / 64] & (1 << (bit % 64)) != 0
    }

    /// The first `words` words of the value's record of links known not to match it.
    pub(crate) fn no_match_words(&self, slot: Slot, words: usize) -> &[u64] {
        &self.records[slot as usize].no_match[..words]
    }

    pub(crate) fn set_no_match(&mut self, slot: Slot, bit: u32) {
        let words = &mut self.records[slot as usize].no_match;
        words[bit as usize / 64] |= 1 << (bit % 64);
    }

    /// Whether the selector whose pattern is at `pattern` selects the value as a key, if
    /// known.
    pub(crate) fn selects(&self, slot: Slot, pattern: usize) -> Option<bool> {
        self.records[slot as usize]
            .selectors
            .iter()
            .find(|(p, _)| *p == pattern)
            .map(|&(_, answer)| answer)
    }

    pub(crate) fn set_selects(&mut self, slot: Slot, pattern: usize, answer: bool) {
        self.records[slot as usize]
            .selectors
            .push((pattern, answer));
        self.bytes += 16;
    }

    /// The prefilter's links for the value as a member of the variables `mask`, if the
    /// verdict answers for every link set in `live`.
    pub(crate) fn prefilter(&self, slot: Slot, mask: VarMask, live: &[u64]) -> Option<&[u64]> {
        let v = self.records[slot as usize]
            .prefilter
            .iter()
            .find(|v| v.mask == mask)?;
        match &v.covered {
            Some(covered) if live.iter().zip(covered.iter()).any(|(l, c)| l & !c != 0) => None,
            _ => Some(&v.links[..]),
        }
    }

    /// Records the prefilter's `links` for the value as a member of the variables `mask`,
    /// answering for the links in `covered` (`None`: all). A verdict that answers for
    /// more replaces one that answers for fewer.
    pub(crate) fn set_prefilter(
        &mut self,
        slot: Slot,
        mask: VarMask,
        links: &[u64],
        covered: Option<&[u64]>,
    ) {
        let record = &mut self.records[slot as usize];
        let verdict = Verdict {
            mask,
            links: links.into(),
            covered: covered.map(Into::into),
        };
        match record.prefilter.iter_mut().find(|v| v.mask == mask) {
            None => {
                self.bytes += 16 * links.len() + 40;
                record.prefilter.push(verdict);
            }
            Some(old) => {
                let wider = match (&old.covered, covered) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(o), Some(c)) => {
                        o.iter().zip(c).all(|(o, c)| o & !c == 0) && o[..] != c[..]
                    }
                };
                if wider {
                    *old = verdict;
                }
            }
        }
    }
}
