//! Transaction collections (`TX`, ...) and the hasher of their keys and of the
//! evaluator's address-keyed caches.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// The collection member names the rules know at load time (`setvar` targets,
/// `TX:name` targets, `%{tx.name}` macros, the capture names), lowercased and numbered:
/// a link, `setvar` or macro carries its name's number, so a transaction reaches the
/// member by index instead of hashing the name per access. Names computed at run time
/// (`setvar:tx.%{rule.id}-...`) are looked up here once per access, and kept in a
/// collection's own small map when the rule set does not know them.
#[derive(Debug, Default)]
pub(crate) struct Names {
    // Filled at load time only: no name chosen by a request is ever inserted.
    by_name: HashMap<String, u32, BuildHasherDefault<AddressHasher>>,
    names: Vec<Arc<str>>,
}

impl Names {
    /// The number of `name` (lowercased first), given one if it has none.
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        let name = name.to_ascii_lowercase();
        if let Some(&slot) = self.by_name.get(&name) {
            return slot;
        }
        let slot = self.names.len() as u32;
        self.names.push(Arc::from(name.as_str()));
        self.by_name.insert(name, slot);
        slot
    }

    /// The number of `name`, compared without regard to ASCII case, if the rules know it.
    pub(crate) fn slot(&self, name: &str) -> Option<u32> {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_name.get(&name.to_ascii_lowercase()).copied()
        } else {
            self.by_name.get(name).copied()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// A bit per name: whether `selects` it.
    pub(crate) fn selected_by(&self, selects: impl Fn(&str) -> bool) -> Box<[u64]> {
        let mut bits = vec![0u64; self.names.len().div_ceil(64)];
        for (i, name) in self.names.iter().enumerate() {
            if selects(name) {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        bits.into_boxed_slice()
    }
}

/// A member's value: inline when short (scores, levels, flags: most of what CRS
/// stores), shared when long (the lists of `crs-setup.conf`), so that copying a
/// collection (the start snapshot's, per transaction) allocates nothing.
#[derive(Clone)]
pub(crate) enum Bytes {
    Inline(u8, [u8; INLINE]),
    Shared(Arc<[u8]>),
}

const INLINE: usize = 22;

impl Bytes {
    pub(crate) fn new(value: &[u8]) -> Bytes {
        if value.len() <= INLINE {
            let mut buf = [0; INLINE];
            buf[..value.len()].copy_from_slice(value);
            Bytes::Inline(value.len() as u8, buf)
        } else {
            Bytes::Shared(Arc::from(value))
        }
    }

    /// A decimal number, written without allocating (`setvar:tx.x=+5`).
    pub(crate) fn number(n: i64) -> Bytes {
        let mut buf = [0; INLINE];
        let mut digits = [0u8; 20];
        let mut len = 0;
        let mut m = n.unsigned_abs();
        loop {
            digits[len] = b'0' + (m % 10) as u8;
            len += 1;
            m /= 10;
            if m == 0 {
                break;
            }
        }
        let mut at = 0;
        if n < 0 {
            buf[0] = b'-';
            at = 1;
        }
        for i in 0..len {
            buf[at + i] = digits[len - 1 - i];
        }
        Bytes::Inline((at + len) as u8, buf)
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Inline(len, buf) => &buf[..usize::from(*len)],
            Bytes::Shared(b) => b,
        }
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

/// A transaction collection (`TX`, ...): members in insertion order, keys lowercased,
/// found by their [`Names`] number or, for names the rules do not know, by a small map.
/// A removed member leaves a hole rather than moving the later ones: CRS's captures
/// remove and set `TX:0`..`TX:9` at every capturing match.
#[derive(Debug, Default)]
pub(crate) struct Collection {
    entries: Vec<Entry>,
    /// By name number: 1 + the member's index in `entries`, 0 when absent. Sized on the
    /// first member with a number.
    slots: Vec<u32>,
    /// Members whose names the rules do not know, by name: their index in `entries`.
    others: HashMap<Arc<str>, u32, BuildHasherDefault<AddressHasher>>,
    /// Members present.
    len: usize,
    /// Whether a member was ever set.
    touched: bool,
}

// By hand, for `clone_from`: a transaction copies the start snapshot's `TX` into the
// tables of the last transaction's (see [`Collection::emptied`]), reusing their room
// instead of allocating them per request (the derived `clone_from` clones anew).
impl Clone for Collection {
    fn clone(&self) -> Collection {
        Collection {
            entries: self.entries.clone(),
            slots: self.slots.clone(),
            others: self.others.clone(),
            len: self.len,
            touched: self.touched,
        }
    }

    fn clone_from(&mut self, source: &Collection) {
        self.entries.clone_from(&source.entries);
        self.slots.clone_from(&source.slots);
        self.others.clone_from(&source.others);
        self.len = source.len;
        self.touched = source.touched;
    }
}

/// The collections of a transaction: `TX`, and the others (`IP`, `GEO`, ...: rare) by
/// lowercased name.
#[derive(Debug, Default)]
pub(crate) struct Collections {
    pub(crate) tx: Collection,
    pub(crate) other: BTreeMap<String, Collection>,
}

impl Clone for Collections {
    fn clone(&self) -> Collections {
        Collections {
            tx: self.tx.clone(),
            other: self.other.clone(),
        }
    }

    fn clone_from(&mut self, source: &Collections) {
        self.tx.clone_from(&source.tx);
        self.other.clone_from(&source.other);
    }
}

impl Collections {
    pub(crate) fn get(&self, name: &str) -> Option<&Collection> {
        if name == "tx" {
            Some(&self.tx)
        } else {
            self.other.get(name)
        }
    }

    /// The collection `name`, made if it does not exist yet.
    pub(crate) fn get_mut(&mut self, name: &str) -> &mut Collection {
        if name == "tx" {
            return &mut self.tx;
        }
        if !self.other.contains_key(name) {
            self.other.insert(name.to_owned(), Collection::default());
        }
        self.other.get_mut(name).expect("inserted")
    }

    /// Whether no member was ever set (removed ones count as set).
    pub(crate) fn untouched(&self) -> bool {
        !self.tx.touched && self.other.values().all(|c| !c.touched)
    }

    pub(crate) fn clear(&mut self) {
        self.tx = Collection::default();
        self.other.clear();
    }
}

#[derive(Debug, Clone)]
struct Entry {
    name: Arc<str>,
    /// The name's number, [`NO_SLOT`] for a name the rules do not know.
    slot: u32,
    /// `None`: removed.
    value: Option<Bytes>,
}

pub(crate) const NO_SLOT: u32 = u32::MAX;

impl Collection {
    /// Without members, its tables' room kept (`None` when they grew past `limit`
    /// entries: a large transaction's are not worth keeping).
    pub(crate) fn emptied(mut self, limit: usize) -> Option<Collection> {
        if self.entries.capacity() > limit || self.others.capacity() > limit {
            return None;
        }
        self.entries.clear();
        self.slots.clear();
        self.others.clear();
        self.len = 0;
        self.touched = false;
        Some(self)
    }

    /// Room for `n` more members without growing.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    /// The members, in insertion order, with their names' numbers ([`NO_SLOT`]: none).
    pub(crate) fn iter_numbered(&self) -> impl Iterator<Item = (u32, &str, &[u8])> {
        self.entries
            .iter()
            .filter_map(|e| e.value.as_ref().map(|v| (e.slot, &*e.name, v.as_slice())))
    }

    /// The members, in insertion order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries
            .iter()
            .filter_map(|e| e.value.as_ref().map(|v| (&*e.name, v.as_slice())))
    }

    fn index_of_slot(&self, slot: u32) -> Option<usize> {
        match self.slots.get(slot as usize) {
            Some(&i) if i != 0 => Some(i as usize - 1),
            _ => None,
        }
    }

    fn index_of(&self, names: &Names, key: &str) -> Option<usize> {
        match names.slot(key) {
            Some(slot) => self.index_of_slot(slot),
            None if self.others.is_empty() => None,
            None if key.bytes().any(|b| b.is_ascii_uppercase()) => self
                .others
                .get(key.to_ascii_lowercase().as_str())
                .map(|&i| i as usize),
            None => self.others.get(key).map(|&i| i as usize),
        }
    }

    fn at(&self, i: usize) -> Option<(&str, &[u8])> {
        let e = &self.entries[i];
        Some((&e.name, e.value.as_ref()?.as_slice()))
    }

    /// The member numbered `slot` ([`Names`]): its stored name and value.
    pub(crate) fn entry_by_slot(&self, slot: u32) -> Option<(&str, &[u8])> {
        self.at(self.index_of_slot(slot)?)
    }

    /// The member `key` (any ASCII case): its stored name and value.
    pub(crate) fn entry(&self, names: &Names, key: &str) -> Option<(&str, &[u8])> {
        self.at(self.index_of(names, key)?)
    }

    pub(crate) fn get_slot(&self, slot: u32) -> Option<&[u8]> {
        self.entry_by_slot(slot).map(|(_, v)| v)
    }

    pub(crate) fn get(&self, names: &Names, key: &str) -> Option<&[u8]> {
        self.entry(names, key).map(|(_, v)| v)
    }

    /// Sets the member numbered `slot`.
    pub(crate) fn set_slot(&mut self, names: &Names, slot: u32, value: Bytes) {
        if let Some(i) = self.index_of_slot(slot) {
            self.entries[i].value = Some(value);
            return;
        }
        self.touched = true;
        if self.slots.len() < names.len() {
            self.slots.resize(names.len(), 0);
        }
        self.entries.push(Entry {
            name: names.names[slot as usize].clone(),
            slot,
            value: Some(value),
        });
        self.slots[slot as usize] = self.entries.len() as u32;
        self.len += 1;
    }

    /// Sets the member `key` (any ASCII case).
    pub(crate) fn set(&mut self, names: &Names, key: &str, value: Bytes) {
        // Lowercased once for both look-ups and the new member's name: names computed
        // at run time (`tx.%{rule.id}-OWASP_CRS/...-%{matched_var_name}`, one per
        // matching rule) hold capitals.
        let key: std::borrow::Cow<'_, str> = if key.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(key.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(key)
        };
        if let Some(&slot) = names.by_name.get(key.as_ref()) {
            return self.set_slot(names, slot, value);
        }
        match self.others.get(key.as_ref()) {
            Some(&i) => self.entries[i as usize].value = Some(value),
            None => {
                self.touched = true;
                let name: Arc<str> = Arc::from(key.as_ref());
                self.others.insert(name.clone(), self.entries.len() as u32);
                self.entries.push(Entry {
                    name,
                    slot: NO_SLOT,
                    value: Some(value),
                });
                self.len += 1;
            }
        }
    }

    fn remove_at(&mut self, i: usize) {
        let e = &mut self.entries[i];
        e.value = None;
        if e.slot == NO_SLOT {
            let name = e.name.clone();
            self.others.remove(&name);
        } else {
            self.slots[e.slot as usize] = 0;
        }
        self.len -= 1;
        // The holes are dropped when they are most of the entries (captures set and
        // removed again and again), the members renumbered.
        if self.entries.len() >= 2 * self.len + 32 {
            self.entries.retain(|e| e.value.is_some());
            for (i, e) in self.entries.iter().enumerate() {
                if e.slot == NO_SLOT {
                    self.others.insert(e.name.clone(), i as u32);
                } else {
                    self.slots[e.slot as usize] = i as u32 + 1;
                }
            }
        }
    }

    pub(crate) fn delete_slot(&mut self, slot: u32) {
        if let Some(i) = self.index_of_slot(slot) {
            self.remove_at(i);
        }
    }

    pub(crate) fn delete(&mut self, names: &Names, key: &str) {
        if let Some(i) = self.index_of(names, key) {
            self.remove_at(i);
        }
    }
}

/// A hash of `bytes` with [`AddressHasher`], a word at a time.
pub(crate) fn bytes_hash(bytes: &[u8]) -> u64 {
    let mut h = AddressHasher::default();
    h.write(bytes);
    h.write_usize(bytes.len());
    h.finish()
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
