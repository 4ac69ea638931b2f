//! `spin:key-value` (`spin`) and `wasi:keyvalue@0.2.0-draft2` (`wasi`: store,
//! atomics, batch): both interfaces over the same stores and the same grants, with the
//! semantics of Spin's SQLite backend, written against [`KeyValueStore`] so that the
//! backend is replaceable. What both share is here: the resources, running a call (at once
//! when it touches one key and the database need not wait, else off the async workers),
//! and what a guest is told of a failure.
//!
//! A store opens only if its label is among the component's `key_value_stores`, as in
//! Spin; every granted label is a store of the app's database.

mod spin;
mod wasi;

use crate::key_value::{KeyValueError, KeyValueStore};
use std::sync::Arc;

/// A handle to an opened key-value store: the resource behind `spin:key-value/store`
/// and `wasi:keyvalue/store.bucket`.
pub struct KeyValueHandle {
    label: String,
}

/// A compare-and-swap in progress: the value the key held when last read (`None`: absent,
/// or not read yet), which `swap` requires the key still to hold.
pub struct CasHandle {
    label: String,
    key: String,
    expected: Option<Vec<u8>>,
}

/// Runs a database operation on tokio's blocking pool: SQLite calls are short, but one
/// may wait for the file's write lock, and must not hold up the requests sharing a worker.
async fn run_blocking<R: Send + 'static>(
    database: Arc<dyn KeyValueStore>,
    op: impl FnOnce(&dyn KeyValueStore) -> Result<R, KeyValueError> + Send + 'static,
) -> Result<R, KeyValueError> {
    tokio::task::spawn_blocking(move || op(database.as_ref()))
        .await
        .unwrap_or_else(|e| Err(KeyValueError::Worker(e.to_string())))
}

/// Runs an operation on one key (read, write, increment, compare-and-swap) where the
/// guest called it when the database can answer without waiting, else as
/// [`run_blocking`]. A hand-off to the blocking pool and back costs two thread wake-ups,
/// more than the point operation itself on an idle connection, on every quota check and
/// circuit-breaker read of a request.
async fn run_point<R: Send + 'static>(
    database: Arc<dyn KeyValueStore>,
    op: impl Fn(&dyn KeyValueStore) -> Result<R, KeyValueError> + Send + 'static,
) -> Result<R, KeyValueError> {
    if let Some(at_once) = database.at_once() {
        match op(at_once) {
            Err(KeyValueError::WouldWait) => {}
            done => {
                if database.claim_upkeep() {
                    // Fire and forget: the upkeep reports its own failures.
                    drop(tokio::task::spawn_blocking(move || database.upkeep()));
                }
                return done;
            }
        }
    }
    run_blocking(database, move |db| op(db)).await
}

/// What a guest is told about a failed operation: its own mistakes in full, host
/// failures only as a pointer to the host log (they may name paths).
fn guest_message(e: KeyValueError) -> String {
    if e.is_caller_error() {
        e.to_string()
    } else {
        tracing::error!(target: "chatgate::key_value", "{e}");
        "key-value store failure (see host log)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_value::SqliteKeyValue;

    #[test]
    fn guests_learn_their_own_mistakes_but_not_host_failures() {
        let told = guest_message(KeyValueError::ResultTooLarge { limit: 8 });
        assert!(told.contains("8 bytes"), "{told}");
        assert!(guest_message(KeyValueError::NotACounter(3)).contains("3 bytes"));
        let hidden = guest_message(KeyValueError::Directory {
            path: "/srv/secret/kv".into(),
            source: std::io::Error::other("denied"),
        });
        assert!(!hidden.contains("/srv/secret"), "{hidden}");
        assert!(hidden.contains("host log"), "{hidden}");
    }

    #[tokio::test]
    async fn operations_run_off_the_async_workers_and_a_panic_is_a_host_failure() {
        let database: Arc<dyn KeyValueStore> = Arc::new(SqliteKeyValue::in_memory().unwrap());
        run_blocking(database.clone(), |db| db.set("s", "k", b"v"))
            .await
            .unwrap();
        let read = run_blocking(database.clone(), |db| db.get("s", "k")).await;
        assert_eq!(read.unwrap(), Some(b"v".to_vec()));
        let failed = run_blocking(database, |_| -> Result<(), KeyValueError> {
            panic!("a backend bug")
        })
        .await
        .unwrap_err();
        assert!(matches!(failed, KeyValueError::Worker(_)), "{failed}");
        assert!(!failed.is_caller_error());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn point_operations_run_where_called_unless_the_file_is_locked() {
        let dir = std::env::temp_dir().join(format!("chatgate-kv-point-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        let path = dir.join("kv.db");
        let database: Arc<dyn KeyValueStore> = Arc::new(SqliteKeyValue::open(&path).unwrap());
        let ran_on = Arc::new(std::sync::Mutex::new(Vec::new()));
        let increment = |ran_on: Arc<std::sync::Mutex<Vec<std::thread::ThreadId>>>| {
            move |db: &dyn KeyValueStore| {
                ran_on.lock().unwrap().push(std::thread::current().id());
                db.increment("s", "n", 1)
            }
        };
        let here = std::thread::current().id();

        let n = run_point(database.clone(), increment(ran_on.clone())).await;
        assert_eq!(n.unwrap(), 1);
        assert_eq!(*ran_on.lock().unwrap(), [here]);

        // Another process holding the file's write lock: tried at once, then waited for
        // on a blocking thread, and counted once.
        ran_on.lock().unwrap().clear();
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let waiting = tokio::spawn(run_point(database.clone(), increment(ran_on.clone())));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        other.execute_batch("COMMIT").unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), 2);
        let ran_on = ran_on.lock().unwrap().clone();
        assert_eq!(ran_on.len(), 2, "{ran_on:?}");
        assert_eq!(ran_on[0], here);
        assert_ne!(ran_on[1], here);
        drop(database);
        std::fs::remove_dir_all(&dir).ok();
    }
}
