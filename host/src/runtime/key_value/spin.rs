//! `spin:key-value/key-value@3.0.0`: a store resource with get, set, delete, exists and
//! a streamed `get-keys`. Its functions are async to the guest, so they run on the
//! store's accessor rather than on a borrowed view.

use super::{KeyValueHandle, guest_message, run_blocking, run_point};
use crate::key_value::{KeyValueError, KeyValueStore};
use crate::runtime::bindings::spin::key_value::key_value as kv;
use crate::runtime::state::{SpinInterfaces, SpinView};
use wasmtime::component::{Accessor, Resource};

impl kv::Host for SpinView<'_> {}

fn kv_error(e: KeyValueError) -> kv::Error {
    kv::Error::Other(guest_message(e))
}

/// Runs a key-value operation on the store behind `handle`: at once if it touches one
/// key (`point`, see [`run_point`]), else on a blocking thread.
async fn with_store<U, R: Send + 'static>(
    accessor: &Accessor<U, SpinInterfaces>,
    handle: &Resource<KeyValueHandle>,
    point: bool,
    op: impl Fn(&dyn KeyValueStore, &str) -> Result<R, KeyValueError> + Send + 'static,
) -> wasmtime::Result<Result<R, kv::Error>> {
    let (label, database) = accessor.with(|mut access| {
        let view = access.get();
        let label = view.table.get(handle)?.label.clone();
        Ok::<_, wasmtime::Error>((label, view.grants.key_value.clone()))
    })?;
    let done = if point {
        run_point(database, move |db| op(db, &label)).await
    } else {
        run_blocking(database, move |db| op(db, &label)).await
    };
    Ok(done.map_err(kv_error))
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
        with_store(accessor, &store, true, move |db, label| db.get(label, &key)).await
    }

    async fn set(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        with_store(accessor, &store, true, move |db, label| {
            db.set(label, &key, &value)
        })
        .await
    }

    async fn delete(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        with_store(accessor, &store, true, move |db, label| {
            db.delete(label, &key)
        })
        .await
    }

    async fn exists(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv::Error>> {
        with_store(accessor, &store, true, move |db, label| {
            db.exists(label, &key)
        })
        .await
    }

    async fn get_keys(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
    ) -> wasmtime::Result<(
        wasmtime::component::StreamReader<String>,
        wasmtime::component::FutureReader<Result<(), kv::Error>>,
    )> {
        let listed = with_store(accessor, &store, false, |db, label| db.get_keys(label)).await?;
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
