//! `spin:key-value` (`spin`) and `wasi:keyvalue@0.2.0-draft2` (`wasi`: store,
//! atomics, batch): both interfaces over the same stores and the same grants, with the
//! semantics of Spin's SQLite backend, written against [`KeyValueStore`] so that the
//! backend is replaceable. What both share is here: the resources, running a call off the
//! async workers, and what a guest is told of a failure.
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
}
