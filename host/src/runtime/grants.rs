//! What one trigger's composed component may use: its variables, outbound hosts, stores
//! and environment, resolved at load.
//!
//! Shared (`Arc`) by every instance of the trigger, so that instantiating per request
//! copies nothing but the WASI context; its own module because both the store data and
//! the outbound hook read it.

use crate::key_value::KeyValueStore;
use crate::outbound::OutboundPolicy;
use crate::variables::ComponentVariables;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What one trigger's composed component may use, shared by all of its instances.
pub struct Grants {
    /// The trigger's component: what its output is attributed to when exported as log
    /// records (`component_id`, [`super::app_log`]).
    pub component_id: Arc<str>,
    pub variables: ComponentVariables,
    pub outbound: OutboundPolicy,
    pub key_value_stores: BTreeSet<String>,
    /// The app's stores; only the labels in `key_value_stores` open.
    pub key_value: Arc<dyn KeyValueStore>,
    /// The component's `environment`, as WASI environment variables.
    pub environment: Vec<(String, String)>,
    /// The component's `files`: directories preopened read-only in every instance.
    pub files: Vec<crate::manifest::FileMount>,
    /// Where guests' stdout goes: the process's stdout, or a buffer tests read.
    pub guest_stdout: super::guest_stdout::GuestStdout,
    /// Where guests' spans (`wasi:otel/tracing`) are exported; `None` when trace export
    /// is off, and the interface then takes spans and does nothing with them.
    pub span_sink: Option<crate::otel::SpanSink>,
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Grants of a component with `outbound` and nothing else.
    pub(in crate::runtime) fn grants(outbound: OutboundPolicy) -> Grants {
        Grants {
            component_id: "test".into(),
            variables: ComponentVariables::default(),
            outbound,
            key_value_stores: BTreeSet::new(),
            key_value: Arc::new(crate::key_value::SqliteKeyValue::in_memory().unwrap()),
            environment: Vec::new(),
            files: Vec::new(),
            guest_stdout: super::super::guest_stdout::GuestStdout::Captured(
                wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(0),
            ),
            span_sink: None,
        }
    }
}
