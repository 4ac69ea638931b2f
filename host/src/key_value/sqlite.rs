//! The key-value backend: one SQLite file shared by all stores of an app, laid out as
//! Spin's own SQLite backend lays it out (table `spin_key_value`, one row per (store, key),
//! counters as 8-byte little-endian `i64`), so both interfaces, and Spin itself, read the
//! same data.

use super::{KeyValueError, KeyValueStore, KeyValues, ResultBudget};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

const SELECT_VALUE: &str = "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2";
const UPSERT_VALUE: &str = "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
     ON CONFLICT (store, key) DO UPDATE SET value = excluded.value";
const DELETE_KEY: &str = "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2";

/// Commits after which the write-ahead log is copied back into the database file
/// (a passive checkpoint). SQLite's own automatic checkpoint, which runs inside whichever
/// commit crosses its threshold (1,000 pages), is turned off: that commit may now run on
/// an async worker ([`SqliteKeyValue::at_once`]), and a checkpoint syncs the file to disk.
/// A commit of one small value writes one or two pages, so this keeps the log near the
/// size SQLite's default keeps it at.
const COMMITS_PER_CHECKPOINT: u32 = 512;

/// The SQLite database holding every store, one row per (store, key).
pub struct SqliteKeyValue {
    connection: Arc<Mutex<Connection>>,
    max_result_bytes: usize,
    /// Whether an operation waits for the connection and for SQLite's locks (the view
    /// run on blocking threads) or gives up at once ([`KeyValueError::WouldWait`]).
    waits: bool,
    /// The same database, never waiting: `None` in that view itself.
    at_once: Option<Box<SqliteKeyValue>>,
    commits_since_checkpoint: Arc<AtomicU32>,
}

/// What an operation does to the database, for the checkpoint count.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    Read,
    Write,
}

impl SqliteKeyValue {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path) -> Result<Self, KeyValueError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| KeyValueError::Directory {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Self::from_connection(Connection::open(path)?)
    }

    /// A database that lives only as long as this value: an app loaded without a
    /// `key_value_path` (tests), whose stores start empty and vanish with it.
    pub fn in_memory() -> Result<Self, KeyValueError> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(connection: Connection) -> Result<Self, KeyValueError> {
        // WAL lets readers proceed while a writer commits; NORMAL sync is durable across
        // process crashes, which is what a key-value cache of counters needs.
        connection.pragma_update(None, "journal_mode", "WAL").ok();
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key   TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            ) WITHOUT ROWID;",
        )?;
        let mut waiting = SqliteKeyValue {
            connection: Arc::new(Mutex::new(connection)),
            max_result_bytes: super::MAX_RESULT_BYTES,
            waits: true,
            at_once: None,
            commits_since_checkpoint: Arc::new(AtomicU32::new(0)),
        };
        waiting.at_once = Some(Box::new(SqliteKeyValue {
            connection: waiting.connection.clone(),
            max_result_bytes: waiting.max_result_bytes,
            waits: false,
            at_once: None,
            commits_since_checkpoint: waiting.commits_since_checkpoint.clone(),
        }));
        Ok(waiting)
    }

    /// The same database with another limit on what one read answers (tests use a small one).
    pub fn with_max_result_bytes(mut self, max_result_bytes: usize) -> Self {
        self.max_result_bytes = max_result_bytes;
        if let Some(at_once) = &mut self.at_once {
            at_once.max_result_bytes = max_result_bytes;
        }
        self
    }

    fn budget(&self) -> ResultBudget {
        ResultBudget::new(self.max_result_bytes)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, KeyValueError>,
    ) -> Result<T, KeyValueError> {
        self.with(Access::Read, f)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, KeyValueError>,
    ) -> Result<T, KeyValueError> {
        self.with(Access::Write, f)
    }

    fn with<T>(
        &self,
        access: Access,
        f: impl FnOnce(&mut Connection) -> Result<T, KeyValueError>,
    ) -> Result<T, KeyValueError> {
        // A poisoned lock only means another request panicked mid-call; SQLite's own
        // transaction guarantees still hold, so keep serving.
        let mut connection = if self.waits {
            self.connection.lock().unwrap_or_else(|e| e.into_inner())
        } else {
            match self.connection.try_lock() {
                Ok(connection) => connection,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => return Err(KeyValueError::WouldWait),
            }
        };
        if !self.waits {
            // Another process sharing the file may hold its lock: give up rather than
            // sleep on an async worker (nothing was written; the caller retries waiting).
            connection.busy_timeout(Duration::ZERO)?;
        }
        let result = f(&mut connection);
        if !self.waits {
            connection.busy_timeout(BUSY_TIMEOUT)?;
        }
        let result = result.map_err(|e| match e {
            KeyValueError::Sqlite(e) if !self.waits && is_busy(&e) => KeyValueError::WouldWait,
            e => e,
        });
        if access == Access::Write && result.is_ok() {
            let commits = self
                .commits_since_checkpoint
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            if self.waits && commits >= COMMITS_PER_CHECKPOINT {
                self.checkpoint_with(&connection);
            }
        }
        result
    }

    fn checkpoint_with(&self, connection: &Connection) {
        self.commits_since_checkpoint.store(0, Ordering::Relaxed);
        // PASSIVE: copies what no reader still needs and never waits; whatever is left
        // goes with a later checkpoint.
        if let Err(e) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(target: "chatgate::key_value", "checkpoint failed: {e}");
        }
    }
}

/// How long a waiting operation waits for another process's lock on the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl KeyValueStore for SqliteKeyValue {
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KeyValueError> {
        // rusqlite cannot stream one value, so the value is already in memory when it is
        // measured; the limit still keeps it from reaching the guest.
        let value = self.read(|c| Ok(read(c, store, key)?))?;
        self.budget().charge(value.as_ref().map_or(0, Vec::len))?;
        Ok(value)
    }

    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KeyValueError> {
        self.write(|c| {
            c.prepare_cached(UPSERT_VALUE)?
                .execute(params![store, key, value])?;
            Ok(())
        })
    }

    fn delete(&self, store: &str, key: &str) -> Result<(), KeyValueError> {
        self.write(|c| {
            c.prepare_cached(DELETE_KEY)?.execute(params![store, key])?;
            Ok(())
        })
    }

    fn exists(&self, store: &str, key: &str) -> Result<bool, KeyValueError> {
        // Answers a boolean, so no value reaches the guest and no result limit applies.
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2)",
            )?
            .query_row(params![store, key], |row| row.get(0))?)
        })
    }

    fn get_keys(&self, store: &str) -> Result<Vec<String>, KeyValueError> {
        let mut budget = self.budget();
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?;
            let mut rows = stmt.query(params![store])?;
            let mut keys = Vec::new();
            // Measured row by row, so that a huge store is refused before it is all read.
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                budget.charge(key.len())?;
                keys.push(key);
            }
            Ok(keys)
        })
    }

    /// One transaction: concurrent increments, from this process or another one sharing
    /// the file, never lose an update.
    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KeyValueError> {
        self.write(|c| {
            // IMMEDIATE takes the write lock before reading: a deferred transaction would
            // read under a shared lock and could then fail to upgrade it.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current = match read(&tx, store, key)? {
                Some(bytes) => decode_counter(&bytes)?,
                None => 0,
            };
            let next = current.checked_add(delta).ok_or(KeyValueError::Overflow)?;
            tx.prepare_cached(UPSERT_VALUE)?.execute(params![
                store,
                key,
                next.to_le_bytes().as_slice()
            ])?;
            tx.commit()?;
            Ok(next)
        })
    }

    fn compare_and_swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, KeyValueError> {
        self.write(|c| {
            // One statement each: SQLite applies it atomically under its write lock.
            let changed = match expected {
                Some(expected) => c
                    .prepare_cached(
                        "UPDATE spin_key_value SET value = ?4
                         WHERE store = ?1 AND key = ?2 AND value = ?3",
                    )?
                    .execute(params![store, key, expected, value])?,
                None => c
                    .prepare_cached(
                        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (store, key) DO NOTHING",
                    )?
                    .execute(params![store, key, value])?,
            };
            Ok(changed == 1)
        })
    }

    /// One transaction, so that the values are consistent with each other.
    fn get_many(&self, store: &str, keys: Vec<String>) -> Result<KeyValues, KeyValueError> {
        let mut budget = self.budget();
        self.read(|c| {
            let tx = c.transaction()?;
            let values = keys
                .into_iter()
                .map(|key| {
                    let value = read(&tx, store, &key)?;
                    budget.charge(key.len() + value.as_ref().map_or(0, Vec::len))?;
                    Ok((key, value))
                })
                .collect::<Result<Vec<_>, KeyValueError>>()?;
            tx.commit()?;
            Ok(values)
        })
    }

    /// One transaction: all of them or, on failure, none.
    fn set_many(&self, store: &str, key_values: &[(String, Vec<u8>)]) -> Result<(), KeyValueError> {
        self.write(|c| {
            let tx = c.transaction()?;
            {
                let mut upsert = tx.prepare_cached(UPSERT_VALUE)?;
                for (key, value) in key_values {
                    upsert.execute(params![store, key, value])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// One transaction.
    fn delete_many(&self, store: &str, keys: &[String]) -> Result<(), KeyValueError> {
        self.write(|c| {
            let tx = c.transaction()?;
            {
                let mut delete = tx.prepare_cached(DELETE_KEY)?;
                for key in keys {
                    delete.execute(params![store, key])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn at_once(&self) -> Option<&dyn KeyValueStore> {
        self.at_once
            .as_deref()
            .map(|at_once| at_once as &dyn KeyValueStore)
    }

    fn claim_upkeep(&self) -> bool {
        let commits = &self.commits_since_checkpoint;
        commits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n >= COMMITS_PER_CHECKPOINT).then_some(0)
            })
            .is_ok()
    }

    fn upkeep(&self) {
        let connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        self.checkpoint_with(&connection);
    }
}

fn read(c: &Connection, store: &str, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    c.prepare_cached(SELECT_VALUE)?
        .query_row(params![store, key], |row| row.get(0))
        .optional()
}

/// A counter as Spin's SQLite store writes it: an `i64`, 8 bytes little-endian.
fn decode_counter(bytes: &[u8]) -> Result<i64, KeyValueError> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| KeyValueError::NotACounter(bytes.len()))?;
    Ok(i64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_value::MAX_RESULT_BYTES;
    use std::sync::Arc;

    /// A database file unique to one test, removed when dropped.
    struct TempDb(std::path::PathBuf);

    impl TempDb {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("chatgate-kv-{name}-{}", std::process::id()));
            std::fs::remove_dir_all(&dir).ok();
            TempDb(dir)
        }

        fn path(&self) -> std::path::PathBuf {
            self.0.join("kv.db")
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }

    #[test]
    fn stores_are_isolated_and_values_round_trip() {
        let kv = SqliteKeyValue::in_memory().unwrap();
        kv.set("default", "a", b"1").unwrap();
        kv.set("other", "a", b"2").unwrap();
        assert_eq!(kv.get("default", "a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(kv.get("other", "a").unwrap(), Some(b"2".to_vec()));
        kv.set("default", "a", b"3").unwrap();
        assert_eq!(kv.get("default", "a").unwrap(), Some(b"3".to_vec()));
        kv.delete("default", "a").unwrap();
        assert!(!kv.exists("default", "a").unwrap());
        assert!(kv.exists("other", "a").unwrap());
    }

    #[test]
    fn keys_are_listed_per_store_in_order() {
        let kv = SqliteKeyValue::in_memory().unwrap();
        for k in ["b", "a", "c"] {
            kv.set("s", k, b"").unwrap();
        }
        kv.set("t", "z", b"").unwrap();
        assert_eq!(kv.get_keys("s").unwrap(), vec!["a", "b", "c"]);
    }

    #[test]
    fn data_survives_reopening_the_file() {
        let db = TempDb::new("reopen");
        SqliteKeyValue::open(&db.path())
            .unwrap()
            .set("default", "k", b"v")
            .unwrap();
        let reopened = SqliteKeyValue::open(&db.path()).unwrap();
        assert_eq!(reopened.get("default", "k").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn increment_starts_from_zero_and_stores_spins_counter_bytes() {
        let kv = SqliteKeyValue::in_memory().unwrap();
        assert_eq!(kv.increment("default", "n", 5).unwrap(), 5);
        assert_eq!(kv.increment("default", "n", -7).unwrap(), -2);
        assert_eq!(
            kv.get("default", "n").unwrap(),
            Some((-2i64).to_le_bytes().to_vec())
        );
        // A counter written by a plain `set` in Spin's encoding continues from its value.
        kv.set("default", "m", &41i64.to_le_bytes()).unwrap();
        assert_eq!(kv.increment("default", "m", 1).unwrap(), 42);
        assert_eq!(kv.increment("other", "n", 1).unwrap(), 1);
    }

    #[test]
    fn increment_refuses_non_counters_and_overflow_without_changing_the_value() {
        let kv = SqliteKeyValue::in_memory().unwrap();
        kv.set("default", "text", b"12").unwrap();
        let err = kv.increment("default", "text", 1).unwrap_err();
        assert!(matches!(err, KeyValueError::NotACounter(2)), "{err}");
        assert!(err.is_caller_error());
        assert_eq!(kv.get("default", "text").unwrap(), Some(b"12".to_vec()));

        kv.increment("default", "big", i64::MAX).unwrap();
        let err = kv.increment("default", "big", 1).unwrap_err();
        assert!(matches!(err, KeyValueError::Overflow), "{err}");
        assert_eq!(kv.increment("default", "big", 0).unwrap(), i64::MAX);
    }

    #[test]
    fn concurrent_increments_on_one_connection_all_count() {
        let kv = Arc::new(SqliteKeyValue::in_memory().unwrap());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let kv = kv.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        kv.increment("default", "n", 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(kv.increment("default", "n", 0).unwrap(), 800);
    }

    #[test]
    fn concurrent_increments_through_separate_connections_to_one_file_all_count() {
        // Two connections are what two host processes sharing the file would have.
        let db = TempDb::new("two-connections");
        let connections = [
            Arc::new(SqliteKeyValue::open(&db.path()).unwrap()),
            Arc::new(SqliteKeyValue::open(&db.path()).unwrap()),
        ];
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let kv = connections[i % 2].clone();
                std::thread::spawn(move || {
                    for _ in 0..400 {
                        kv.increment("default", "n", 2).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(connections[0].increment("default", "n", 0).unwrap(), 4800);
    }

    #[test]
    fn at_once_gives_up_while_the_connection_is_busy_and_changes_nothing() {
        let kv = SqliteKeyValue::in_memory().unwrap();
        let at_once = kv.at_once().expect("SQLite answers at once");
        at_once.set("default", "k", b"1").unwrap();
        assert_eq!(at_once.get("default", "k").unwrap(), Some(b"1".to_vec()));
        let held = kv.connection.lock().unwrap();
        for attempt in [
            at_once.set("default", "k", b"2").map(|_| ()),
            at_once.increment("default", "n", 1).map(|_| ()),
            at_once.get("default", "k").map(|_| ()),
        ] {
            assert!(
                matches!(attempt, Err(KeyValueError::WouldWait)),
                "{attempt:?}"
            );
        }
        drop(held);
        assert_eq!(kv.get("default", "k").unwrap(), Some(b"1".to_vec()));
        assert!(!kv.exists("default", "n").unwrap());
    }

    #[test]
    fn at_once_gives_up_on_another_processs_write_lock_but_still_reads() {
        // Two connections to one file are what two host processes sharing it would have.
        let db = TempDb::new("other-writer");
        let (ours, theirs) = (
            SqliteKeyValue::open(&db.path()).unwrap(),
            SqliteKeyValue::open(&db.path()).unwrap(),
        );
        ours.increment("default", "n", 5).unwrap();
        let writing = theirs.connection.lock().unwrap();
        writing.execute_batch("BEGIN IMMEDIATE").unwrap();
        let at_once = ours.at_once().unwrap();
        let started = std::time::Instant::now();
        let attempt = at_once.increment("default", "n", 1);
        assert!(
            matches!(attempt, Err(KeyValueError::WouldWait)),
            "{attempt:?}"
        );
        assert!(
            started.elapsed() < BUSY_TIMEOUT,
            "gave up without waiting out the lock"
        );
        // WAL: a reader never waits for the writer.
        assert_eq!(at_once.increment("default", "n", 0).ok(), None);
        assert_eq!(
            at_once.get("default", "n").unwrap(),
            Some(5i64.to_le_bytes().to_vec())
        );
        writing.execute_batch("COMMIT").unwrap();
        drop(writing);
        // The busy timeout is back for the waiting view, and the increment was not lost.
        assert_eq!(ours.increment("default", "n", 1).unwrap(), 6);
    }

    #[test]
    fn writes_at_once_leave_the_checkpoint_to_one_claimant_and_keep_the_log_bounded() {
        let wal_after = |name: &str, upkeep: bool| {
            let db = TempDb::new(name);
            let kv = SqliteKeyValue::open(&db.path()).unwrap();
            let mut claims = 0;
            for i in 0..4 * COMMITS_PER_CHECKPOINT {
                kv.at_once()
                    .unwrap()
                    .set(
                        "default",
                        &format!("k{}", i % 64),
                        &i.to_le_bytes().repeat(128),
                    )
                    .unwrap();
                if upkeep && kv.claim_upkeep() {
                    assert!(!kv.claim_upkeep(), "a second claimant for one checkpoint");
                    claims += 1;
                    kv.upkeep();
                }
            }
            let wal = std::fs::metadata(db.path().with_extension("db-wal"))
                .unwrap()
                .len();
            (claims, wal)
        };
        let (claims, kept) = wal_after("checkpointed", true);
        let (_, grown) = wal_after("never-checkpointed", false);
        assert_eq!(claims, 4);
        assert!(
            kept * 3 < grown,
            "log {kept} bytes with upkeep, {grown} without"
        );
    }

    #[test]
    fn compare_and_swap_stores_only_over_the_expected_value() {
        let kv = SqliteKeyValue::in_memory().unwrap();
        // Absent expected: inserts once, then refuses to overwrite what now exists.
        assert!(kv.compare_and_swap("s", "k", None, b"a").unwrap());
        assert!(!kv.compare_and_swap("s", "k", None, b"b").unwrap());
        assert_eq!(kv.get("s", "k").unwrap(), Some(b"a".to_vec()));
        // A stale expectation changes nothing; the current one swaps.
        assert!(!kv.compare_and_swap("s", "k", Some(b"x"), b"c").unwrap());
        assert!(kv.compare_and_swap("s", "k", Some(b"a"), b"c").unwrap());
        assert_eq!(kv.get("s", "k").unwrap(), Some(b"c".to_vec()));
        // Expecting a value of a deleted key fails.
        kv.delete("s", "k").unwrap();
        assert!(!kv.compare_and_swap("s", "k", Some(b"c"), b"d").unwrap());
        assert!(!kv.exists("s", "k").unwrap());
    }

    #[test]
    fn batches_read_write_and_delete_many_keys_of_one_store() {
        let kv = SqliteKeyValue::in_memory().unwrap();
        kv.set_many(
            "s",
            &[("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())],
        )
        .unwrap();
        kv.set("t", "a", b"other store").unwrap();
        assert_eq!(
            kv.get_many("s", vec!["b".into(), "missing".into(), "a".into()])
                .unwrap(),
            vec![
                ("b".to_string(), Some(b"2".to_vec())),
                ("missing".to_string(), None),
                ("a".to_string(), Some(b"1".to_vec())),
            ]
        );
        kv.delete_many("s", &["a".into(), "missing".into()])
            .unwrap();
        assert_eq!(kv.get_keys("s").unwrap(), vec!["b"]);
        assert_eq!(kv.get("t", "a").unwrap(), Some(b"other store".to_vec()));
        assert_eq!(kv.get_many("s", Vec::new()).unwrap(), Vec::new());
    }

    #[test]
    fn reads_larger_than_the_limit_are_refused_and_writes_are_not() {
        let kv = SqliteKeyValue::in_memory()
            .unwrap()
            .with_max_result_bytes(8);
        // Spin limits no write: a value larger than a read may answer is still stored.
        kv.set("s", "big", &[0; 9]).unwrap();
        kv.set("s", "ok", &[0; 8]).unwrap();
        assert_eq!(kv.get("s", "ok").unwrap(), Some(vec![0; 8]));
        let err = kv.get("s", "big").unwrap_err();
        assert!(
            matches!(err, KeyValueError::ResultTooLarge { limit: 8 }),
            "{err}"
        );
        assert!(err.is_caller_error());
        // `exists` answers no value, so the limit does not apply to it.
        assert!(kv.exists("s", "big").unwrap());
        // Keys count too: "big" + "ok" is 5 bytes, plus "longkey" is 12.
        assert_eq!(kv.get_keys("s").unwrap(), vec!["big", "ok"]);
        kv.set("s", "longkey", b"").unwrap();
        assert!(matches!(
            kv.get_keys("s").unwrap_err(),
            KeyValueError::ResultTooLarge { .. }
        ));
        // A batch counts every key and value it answers: "ok" + 8 bytes is 10.
        assert_eq!(
            kv.get_many("s", vec!["longkey".into()]).unwrap(),
            vec![("longkey".to_string(), Some(Vec::new()))]
        );
        assert!(matches!(
            kv.get_many("s", vec!["ok".into()]).unwrap_err(),
            KeyValueError::ResultTooLarge { .. }
        ));
    }

    #[test]
    fn the_default_limit_is_spins() {
        let kv = SqliteKeyValue::in_memory().unwrap();
        assert_eq!(kv.max_result_bytes, MAX_RESULT_BYTES);
    }
}
