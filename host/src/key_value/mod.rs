//! The key-value stores behind `spin:key-value` and `wasi:keyvalue`: the operations both
//! interfaces need ([`KeyValueStore`]), the limit on what one read may answer, and the
//! SQLite backend ([`SqliteKeyValue`]).
//!
//! The trait is what the host interfaces (`crate::runtime::key_value`) are written
//! against, as Spin's key-value factor is written against its `Store` trait, so that a
//! backend can change without touching the WIT side. Its calls are blocking: the host runs
//! them on tokio's blocking pool, except the point operations a backend can answer
//! without waiting ([`KeyValueStore::at_once`]), which it runs where the guest called.

mod sqlite;

pub use sqlite::SqliteKeyValue;

/// The most bytes of keys and values one read answers: Spin's `MAX_HOST_BUFFERED_BYTES`
/// (`crates/world/src/lib.rs` at spin commit 94a8fc8a), which its SQLite store
/// (`crates/key-value-spin/src/store.rs`) applies to `get`, `get-keys`, `get-many` and a
/// compare-and-swap's `current`. A larger result is refused with an error rather than
/// copied into the guest. Spin limits neither keys nor values on write, nor does chatgate.
///
/// Spin also counts each entry's in-memory overhead (a few dozen bytes); chatgate counts
/// only the bytes of the keys and values, which the guest receives.
pub const MAX_RESULT_BYTES: usize = 128 << 20;

/// Why a key-value operation failed. Messages never include stored values or keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyValueError {
    #[error("key-value database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create key-value directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error("the key-value worker thread failed: {0}")]
    Worker(String),
    #[error(
        "the value is not a counter: `increment` needs an 8-byte little-endian integer, the key holds {0} bytes"
    )]
    NotACounter(usize),
    #[error("the increment overflows a 64-bit counter")]
    Overflow,
    /// From [`KeyValueStore::at_once`] only: the operation would have had to wait (for
    /// the connection or a lock on the file) and changed nothing.
    #[error("the key-value operation would have to wait")]
    WouldWait,
    #[error("the result exceeds the key-value limit of {limit} bytes per read")]
    ResultTooLarge { limit: usize },
}

impl KeyValueError {
    /// Whether the caller caused the error (and may be told why), rather than the host.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            KeyValueError::NotACounter(_)
                | KeyValueError::Overflow
                | KeyValueError::ResultTooLarge { .. }
        )
    }
}

/// Keys with their values (`None`: the key has no value), as a batch read answers them.
pub type KeyValues = Vec<(String, Option<Vec<u8>>)>;

/// Every store of an app, each named by its label (`store`). Implementations must refuse
/// a read whose result exceeds their limit ([`MAX_RESULT_BYTES`] unless configured) with
/// [`KeyValueError::ResultTooLarge`]; [`ResultBudget`] counts it.
pub trait KeyValueStore: Send + Sync {
    /// The value at `key`, if any.
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KeyValueError>;

    /// Stores `value` at `key`, replacing what was there.
    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KeyValueError>;

    /// Removes `key`; a missing key is not an error.
    fn delete(&self, store: &str, key: &str) -> Result<(), KeyValueError>;

    /// Whether `key` has a value.
    fn exists(&self, store: &str, key: &str) -> Result<bool, KeyValueError>;

    /// Every key of the store, in order.
    fn get_keys(&self, store: &str) -> Result<Vec<String>, KeyValueError>;

    /// Adds `delta` to the counter at `key` (a missing key counts as 0; a counter is an
    /// 8-byte little-endian `i64`, as Spin stores it) and returns the new value, atomically.
    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KeyValueError>;

    /// Stores `value` at `key` only if the key still holds `expected` (`None`: only if
    /// the key is still absent). Returns whether the value was stored.
    fn compare_and_swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, KeyValueError>;

    /// The value of every key asked for, in the order asked (`None` where there is no
    /// value), consistent with each other.
    fn get_many(&self, store: &str, keys: Vec<String>) -> Result<KeyValues, KeyValueError>;

    /// Sets every pair: all of them or, on failure, none.
    fn set_many(&self, store: &str, key_values: &[(String, Vec<u8>)]) -> Result<(), KeyValueError>;

    /// Deletes every key; keys that do not exist are skipped.
    fn delete_many(&self, store: &str, keys: &[String]) -> Result<(), KeyValueError>;

    /// The same stores for a caller that must not block (an async worker): each operation
    /// either completes without waiting or fails with [`KeyValueError::WouldWait`] having
    /// changed nothing, to be run again on a blocking thread. `None`: every operation may
    /// wait, so none is run that way.
    fn at_once(&self) -> Option<&dyn KeyValueStore> {
        None
    }

    /// Whether upkeep that operations run [`at_once`](Self::at_once) have put off is due;
    /// answers `true` to one caller only, which then runs [`upkeep`](Self::upkeep) on a
    /// blocking thread.
    fn claim_upkeep(&self) -> bool {
        false
    }

    /// Upkeep put off by operations run at once (the SQLite backend's checkpoint). Blocks.
    fn upkeep(&self) {}
}

/// What is left of one read's allowance of bytes.
pub struct ResultBudget {
    limit: usize,
    used: usize,
}

impl ResultBudget {
    pub fn new(limit: usize) -> Self {
        ResultBudget { limit, used: 0 }
    }

    /// Counts `bytes` more of the result, refusing the read once the total exceeds the limit.
    pub fn charge(&mut self, bytes: usize) -> Result<(), KeyValueError> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.limit {
            return Err(KeyValueError::ResultTooLarge { limit: self.limit });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_limit_is_128_mib() {
        assert_eq!(MAX_RESULT_BYTES, 134_217_728);
    }

    #[test]
    fn a_budget_allows_exactly_its_limit() {
        let mut budget = ResultBudget::new(10);
        budget.charge(4).unwrap();
        budget.charge(6).unwrap();
        let err = budget.charge(1).unwrap_err();
        assert!(matches!(err, KeyValueError::ResultTooLarge { limit: 10 }));
        assert!(err.is_caller_error());
        assert!(err.to_string().contains("10 bytes"), "{err}");
        // Saturates rather than wrapping past the limit.
        assert!(ResultBudget::new(usize::MAX).charge(usize::MAX).is_ok());
    }
}
