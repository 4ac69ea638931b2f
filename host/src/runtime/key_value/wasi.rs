//! `wasi:keyvalue@0.2.0-draft2`: `store` (buckets), `atomics` (increment and
//! compare-and-swap) and `batch`, over the same stores as `spin:key-value`. Its functions
//! are synchronous to the guest; the host awaits the database on a borrowed view.

use super::{CasHandle, KeyValueHandle, guest_message, run_blocking, run_point};
use crate::key_value::{KeyValueError, KeyValueStore};
use crate::runtime::bindings::wasi::keyvalue::{
    atomics as wasi_atomics, batch as wasi_batch, store as wasi_kv,
};
use crate::runtime::state::SpinView;
use std::sync::Arc;
use wasmtime::component::Resource;

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

/// Runs an operation on one key of a bucket's store (from [`SpinView::bucket`]), at once
/// if it can ([`run_point`]). Takes no view: the view is not `Sync`, and the future must
/// be `Send`.
async fn on_bucket<R: Send + 'static>(
    (label, database): (String, Arc<dyn KeyValueStore>),
    op: impl Fn(&dyn KeyValueStore, &str) -> Result<R, KeyValueError> + Send + 'static,
) -> wasmtime::Result<Result<R, wasi_kv::Error>> {
    Ok(run_point(database, move |db| op(db, &label))
        .await
        .map_err(wasi_kv_error))
}

/// Runs an operation on many keys of a bucket's store on a blocking thread.
async fn on_bucket_blocking<R: Send + 'static>(
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
            on_bucket_blocking(self.bucket(&bucket)?, |db, label| db.get_keys(label))
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
            run_point(database.clone(), move |db| {
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
                    run_point(database, move |db| db.get(&label, &key)).await
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
        let read = run_point(database, move |db| db.get(&label, &key)).await;
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
        on_bucket_blocking(self.bucket(&bucket)?, move |db, label| {
            db.get_many(label, keys)
        })
        .await
    }

    async fn set_many(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        on_bucket_blocking(self.bucket(&bucket)?, move |db, label| {
            db.set_many(label, &key_values)
        })
        .await
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        on_bucket_blocking(self.bucket(&bucket)?, move |db, label| {
            db.delete_many(label, &keys)
        })
        .await
    }
}
