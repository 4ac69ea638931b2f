//! What one store holds: one request's instance of a composed component, with the
//! grants of its trigger, and the views wasmtime's WASI and HTTP implementations and the
//! Spin interfaces take of it.

use super::app_log::AppLogs;
use super::grants::Grants;
use super::guest_stdout::GuestStdout;
use super::outbound::OutboundHooks;
use std::sync::Arc;
use wasmtime::component::{HasData, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The data of one store: one request's instance of a composed component.
pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    grants: Arc<Grants>,
}

impl HostState {
    /// Fails when a mounted directory can no longer be opened (removed after load), as
    /// Spin's mounter fails the instance (`crates/factor-wasi/src/spin.rs`:35-39).
    pub fn new(grants: Arc<Grants>) -> wasmtime::Result<Self> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stderr().envs(&grants.environment);
        // The component's `files`, each directory opened itself rather than copied (Spin's
        // `--direct-mounts`, see `crate::manifest::FilesMount`): reads see the host's
        // current content, e.g. a rotated token. Read-only, as Spin's mounts without
        // `--allow-transient-write` (`crates/factor-wasi/src/lib.rs`:443-457). wasmtime
        // resolves every guest path inside the opened directory, symlinks included.
        for mount in &grants.files {
            wasi.preopened_dir(&mount.host, &mount.guest, FsPerms::ReadOnly)
                .map_err(|e| {
                    wasmtime::format_err!(
                        "cannot mount {} at `{}`: {e}",
                        mount.host.display(),
                        mount.guest
                    )
                })?;
        }
        // With logs exported, each write is also a log record, as Spin exports
        // components' output.
        match grants.span_sink.as_ref().and_then(|sink| sink.logs()) {
            Some(logs) => {
                let logs = AppLogs::new(logs.clone(), grants.component_id.clone());
                wasi.stderr(logs.wrap(std::io::stderr()));
                match &grants.guest_stdout {
                    GuestStdout::Queued(queue) => wasi.stdout(logs.wrap(queue.clone())),
                    GuestStdout::Captured(buffer) => wasi.stdout(logs.wrap(buffer.clone())),
                };
            }
            None => {
                match &grants.guest_stdout {
                    GuestStdout::Queued(queue) => wasi.stdout(queue.clone()),
                    GuestStdout::Captured(buffer) => wasi.stdout(buffer.clone()),
                };
            }
        }
        let wasi = wasi.build();
        Ok(HostState {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks::new(grants.clone()),
            grants,
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The view of the store the Spin interfaces are implemented on: the resource table and
/// the grants, and nothing of WASI's state.
pub struct SpinView<'a> {
    pub(super) table: &'a mut ResourceTable,
    pub(super) grants: &'a Arc<Grants>,
}

/// The `HasData` marker the Spin interfaces are added to the linker with.
pub(super) struct SpinInterfaces;

impl HasData for SpinInterfaces {
    type Data<'a> = SpinView<'a>;
}

pub(super) fn spin_view(state: &mut HostState) -> SpinView<'_> {
    SpinView {
        table: &mut state.table,
        grants: &state.grants,
    }
}
