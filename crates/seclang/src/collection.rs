//! Transaction collections (`TX`, ...), the hasher of their keys and of the evaluator's
//! address-keyed caches, and the state the request-independent start of phase 1 leaves
//! ([`Prefix`]).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use crate::outcome::RuleMatch;

/// A transaction collection (`TX`, ...): keys lowercased, in insertion order, with an
/// index by key. CRS reads single TX variables hundreds of times per request.
#[derive(Debug, Default, Clone)]
pub(crate) struct Collection {
    pub(crate) entries: Vec<(String, Vec<u8>)>,
    pub(crate) index: HashMap<String, usize, BuildHasherDefault<AddressHasher>>,
}

impl Collection {
    /// The slot of `key`, compared without regard to ASCII case.
    pub(crate) fn position(&self, key: &str) -> Option<usize> {
        if key.bytes().any(|b| b.is_ascii_uppercase()) {
            self.index.get(&key.to_ascii_lowercase()).copied()
        } else {
            self.index.get(key).copied()
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Vec<u8>> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    pub(crate) fn set(&mut self, key: &str, value: Vec<u8>) {
        match self.position(key) {
            Some(i) => self.entries[i].1 = value,
            None => {
                let key = key.to_ascii_lowercase();
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    pub(crate) fn delete(&mut self, key: &str) {
        if let Some(i) = self.position(key) {
            let (key, _) = self.entries.remove(i);
            self.index.remove(&key);
            for slot in self.index.values_mut() {
                if *slot > i {
                    *slot -= 1;
                }
            }
        }
    }
}

/// Hashes the cache's small integer keys: a multiply-and-rotate mix is enough for
/// addresses, and much cheaper than SipHash.
#[derive(Default)]
pub(crate) struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Collection keys: eight bytes at a time.
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(word));
        }
        // The rest as one word (its length is hashed by the caller: `str` and slices
        // write it, or a terminator).
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The state a transaction is in after the start of phase 1 that reads nothing of the
/// request: the rules before the first one that reads request data (through a target,
/// an operator argument or a macro; but see `checks`), matches with a disruptive action
/// or changes the engine mode.
/// CRS's set-up (`crs-setup.conf`'s `SecAction`s, the 901 initialisation rules) sets
/// about forty `TX` variables and records about twenty matches the same way for every
/// request; a transaction starts from a copy of their result instead of running them.
/// Computed once per rule set, on its first transaction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefix {
    /// Where phase 1 goes on: an index into its list of rules and markers.
    pub(crate) next: usize,
    /// The rules (indices into the rule set) whose `ctl`s ran, in order: a transaction
    /// runs them again (they point into the rule set, which the snapshot cannot borrow).
    pub(crate) ctl_rules: Vec<usize>,
    /// Guards (rules that deny, drop or redirect) that read the request and nothing else,
    /// matched nothing here and precede every `ctl` (the chat policy's check of query
    /// parameter names, 40110, which comes before CRS's set-up): a transaction runs them
    /// first, and starts from the snapshot only if none of them matches a value.
    pub(crate) checks: Vec<usize>,
    /// The collections (`tx`, ...) as those rules left them.
    pub(crate) collections: BTreeMap<String, Collection>,
    /// Their match records, in order.
    pub(crate) matches: Vec<RuleMatch>,
    /// `MATCHED_VAR` of an earlier rule, and `MATCHED_VARS` of the last link run.
    pub(crate) earlier_match: Option<(String, Vec<u8>)>,
    pub(crate) matched_vars: Vec<(String, Vec<u8>)>,
}
