//! `spin:key-value` backed by one SQLite file shared by all stores of an app.

use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

/// Why a key-value operation failed. Messages never include stored values.
#[derive(Debug, thiserror::Error)]
pub enum KeyValueError {
    #[error("key-value database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create key-value directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
}

/// The SQLite database holding every store, one row per (store, key).
pub struct SqliteKeyValue {
    connection: Mutex<Connection>,
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

    /// A database that lives only as long as this value (tests, `--key-value memory`).
    pub fn in_memory() -> Result<Self, KeyValueError> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(connection: Connection) -> Result<Self, KeyValueError> {
        // WAL lets readers proceed while a writer commits; NORMAL sync is durable across
        // process crashes, which is what a key-value cache of counters needs.
        connection.pragma_update(None, "journal_mode", "WAL").ok();
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key   TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            ) WITHOUT ROWID;",
        )?;
        Ok(SqliteKeyValue {
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, KeyValueError> {
        // A poisoned lock only means another request panicked mid-call; SQLite's own
        // transaction guarantees still hold, so keep serving.
        let connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        Ok(f(&connection)?)
    }

    pub fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KeyValueError> {
        self.with(|c| {
            c.query_row(
                "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                params![store, key],
                |row| row.get(0),
            )
            .optional()
        })
    }

    pub fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KeyValueError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                params![store, key, value],
            )
            .map(drop)
        })
    }

    pub fn delete(&self, store: &str, key: &str) -> Result<(), KeyValueError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                params![store, key],
            )
            .map(drop)
        })
    }

    pub fn exists(&self, store: &str, key: &str) -> Result<bool, KeyValueError> {
        Ok(self.get(store, key)?.is_some())
    }

    pub fn keys(&self, store: &str) -> Result<Vec<String>, KeyValueError> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?;
            let rows = stmt.query_map(params![store], |row| row.get(0))?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(kv.keys("s").unwrap(), vec!["a", "b", "c"]);
    }

    #[test]
    fn data_survives_reopening_the_file() {
        let dir = std::env::temp_dir().join(format!("chatgate-kv-{}", std::process::id()));
        let path = dir.join("kv.db");
        SqliteKeyValue::open(&path)
            .unwrap()
            .set("default", "k", b"v")
            .unwrap();
        let reopened = SqliteKeyValue::open(&path).unwrap();
        assert_eq!(reopened.get("default", "k").unwrap(), Some(b"v".to_vec()));
        std::fs::remove_dir_all(dir).ok();
    }
}
