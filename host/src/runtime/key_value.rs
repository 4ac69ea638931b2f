//! `spin:key-value` and `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch): both
//! interfaces over the same stores and the same grants, with the semantics of Spin's
//! SQLite backend, written against [`KeyValueStore`] so that the backend is replaceable.
//!
//! A store opens only if its label is among the component's `key_value_stores`, as in
//! Spin; every granted label is a store of the app's database.

use super::bindings::spin::key_value::key_value as kv;
use super::bindings::wasi::keyvalue::{
    atomics as wasi_atomics, batch as wasi_batch, store as wasi_kv,
};
use super::state::{SpinInterfaces, SpinView};
use crate::key_value::{KeyValueError, KeyValueStore};
use std::sync::Arc;
use wasmtime::component::{Accessor, Resource};

/// A handle to an opened key-value store: the resource behind `spin:key-value/store`
/// and `wasi:keyvalue/store.bucket`.
pub struct KeyValueHandle {
    label: String,
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

impl kv::Host for SpinView<'_> {}

fn kv_error(e: KeyValueError) -> kv::Error {
    kv::Error::Other(guest_message(e))
}

/// Runs a key-value operation on the store behind `handle`.
async fn with_store<U, R: Send + 'static>(
    accessor: &Accessor<U, SpinInterfaces>,
    handle: &Resource<KeyValueHandle>,
    op: impl FnOnce(&dyn KeyValueStore, &str) -> Result<R, KeyValueError> + Send + 'static,
) -> wasmtime::Result<Result<R, kv::Error>> {
    let (label, database) = accessor.with(|mut access| {
        let view = access.get();
        let label = view.table.get(handle)?.label.clone();
        Ok::<_, wasmtime::Error>((label, view.grants.key_value.clone()))
    })?;
    Ok(run_blocking(database, move |db| op(db, &label))
        .await
        .map_err(kv_error))
}

impl kv::HostStore for SpinView<'_> {
    fn drop(&mut self, store: Resource<KeyValueHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl<U> kv::HostStoreWithStore<U> for SpinInterfaces {
    async fn open(
        accessor: &Accessor<U, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KeyValueHandle>, kv::Error>> {
        accessor.with(|mut access| {
            let view = access.get();
            if !view.grants.key_value_stores.contains(&label) {
                return Ok(Err(kv::Error::AccessDenied));
            }
            Ok(Ok(view.table.push(KeyValueHandle { label })?))
        })
    }

    async fn get(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, kv::Error>> {
        with_store(accessor, &store, move |db, label| db.get(label, &key)).await
    }

    async fn set(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        with_store(accessor, &store, move |db, label| {
            db.set(label, &key, &value)
        })
        .await
    }

    async fn delete(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        with_store(accessor, &store, move |db, label| db.delete(label, &key)).await
    }

    async fn exists(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv::Error>> {
        with_store(accessor, &store, move |db, label| db.exists(label, &key)).await
    }

    async fn get_keys(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
    ) -> wasmtime::Result<(
        wasmtime::component::StreamReader<String>,
        wasmtime::component::FutureReader<Result<(), kv::Error>>,
    )> {
        let listed = with_store(accessor, &store, |db, label| db.get_keys(label)).await?;
        let (keys, outcome) = match listed {
            Ok(keys) => (keys, Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        };
        accessor.with(|mut access| {
            let keys = wasmtime::component::StreamReader::new(&mut access, keys)?;
            let outcome = wasmtime::component::FutureReader::new(&mut access, async move {
                Ok::<_, wasmtime::Error>(outcome)
            })?;
            Ok((keys, outcome))
        })
    }
}

/// A compare-and-swap in progress: the value the key held when last read (`None`: absent,
/// or not read yet), which `swap` requires the key still to hold.
pub struct CasHandle {
    label: String,
    key: String,
    expected: Option<Vec<u8>>,
}

fn wasi_kv_error(e: KeyValueError) -> wasi_kv::Error {
    wasi_kv::Error::Other(guest_message(e))
}

impl SpinView<'_> {
    /// The label and database behind a bucket handle.
    fn bucket(
        &self,
        bucket: &Resource<KeyValueHandle>,
    ) -> wasmtime::Result<(String, Arc<dyn KeyValueStore>)> {
        let label = self.table.get(bucket)?.label.clone();
        Ok((label, self.grants.key_value.clone()))
    }
}

/// Runs `op` on a bucket's store (from [`SpinView::bucket`]). Takes no view: the view is
/// not `Sync`, and the future must be `Send`.
async fn on_bucket<R: Send + 'static>(
    (label, database): (String, Arc<dyn KeyValueStore>),
    op: impl FnOnce(&dyn KeyValueStore, &str) -> Result<R, KeyValueError> + Send + 'static,
) -> wasmtime::Result<Result<R, wasi_kv::Error>> {
    Ok(run_blocking(database, move |db| op(db, &label))
        .await
        .map_err(wasi_kv_error))
}

impl wasi_kv::Host for SpinView<'_> {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<KeyValueHandle>, wasi_kv::Error>> {
        // As in Spin, a label outside `key_value_stores` is denied whether or not a store
        // by that name exists; every granted label is a store of the app's database.
        if !self.grants.key_value_stores.contains(&identifier) {
            return Ok(Err(wasi_kv::Error::AccessDenied));
        }
        Ok(Ok(self.table.push(KeyValueHandle { label: identifier })?))
    }
}

impl wasi_kv::HostBucket for SpinView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| db.get(label, &key)).await
    }

    async fn set(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.set(label, &key, &value)
        })
        .await
    }

    async fn delete(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.delete(label, &key)
        })
        .await
    }

    async fn exists(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.exists(label, &key)
        })
        .await
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi_kv::KeyResponse, wasi_kv::Error>> {
        // Spin answers every key in one response and so never hands out a cursor.
        if cursor.is_some() {
            return Ok(Err(wasi_kv::Error::Other(
                "list-keys: cursors are not supported (all keys come in the first response)".into(),
            )));
        }
        Ok(
            on_bucket(self.bucket(&bucket)?, |db, label| db.get_keys(label))
                .await?
                .map(|keys| wasi_kv::KeyResponse { keys, cursor: None }),
        )
    }

    async fn drop(&mut self, bucket: Resource<KeyValueHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl wasi_atomics::Host for SpinView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.increment(label, &key, delta)
        })
        .await
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_atomics::CasError>> {
        let CasHandle {
            label,
            key,
            expected,
        } = self.table.delete(cas)?;
        let database = self.grants.key_value.clone();
        let attempt = {
            let (label, key) = (label.clone(), key.clone());
            run_blocking(database.clone(), move |db| {
                db.compare_and_swap(&label, &key, expected.as_deref(), &value)
            })
            .await
        };
        match attempt {
            Ok(true) => Ok(Ok(())),
            Ok(false) => {
                // The spec asks for a handle at the latest version, ready for the retry.
                let latest = {
                    let (label, key) = (label.clone(), key.clone());
                    run_blocking(database, move |db| db.get(&label, &key)).await
                };
                Ok(Err(match latest {
                    Ok(expected) => {
                        let retry = self.table.push(CasHandle {
                            label,
                            key,
                            expected,
                        })?;
                        wasi_atomics::CasError::CasFailed(retry)
                    }
                    Err(e) => wasi_atomics::CasError::StoreError(wasi_kv_error(e)),
                }))
            }
            Err(e) => Ok(Err(wasi_atomics::CasError::StoreError(wasi_kv_error(e)))),
        }
    }
}

impl wasi_atomics::HostCas for SpinView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<CasHandle>, wasi_kv::Error>> {
        // Like Spin, nothing is read yet: until `current` is called, the swap expects
        // the key to be absent.
        let (label, _) = self.bucket(&bucket)?;
        Ok(Ok(self.table.push(CasHandle {
            label,
            key,
            expected: None,
        })?))
    }

    async fn current(
        &mut self,
        cas: Resource<CasHandle>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        let (label, key) = {
            let handle = self.table.get(&cas)?;
            (handle.label.clone(), handle.key.clone())
        };
        let database = self.grants.key_value.clone();
        let read = run_blocking(database, move |db| db.get(&label, &key)).await;
        Ok(match read {
            Ok(value) => {
                self.table.get_mut(&cas)?.expected.clone_from(&value);
                Ok(value)
            }
            Err(e) => Err(wasi_kv_error(e)),
        })
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl wasi_batch::Host for SpinView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.get_many(label, keys)
        })
        .await
    }

    async fn set_many(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.set_many(label, &key_values)
        })
        .await
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.delete_many(label, &keys)
        })
        .await
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
