//! OpenTelemetry logs over OTLP (HTTP or gRPC, [`crate::otel_transport`]): the log
//! records guests emit through `wasi:otel/logs` (the `telemetry` component's one record
//! per sampled request), their writes to stdout and stderr ([`Logs::emit_app_log`]) and
//! the host's own warnings ([`HostEvents`]), exported to
//! `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` as given, else `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (followed by `/v1/logs` over HTTP), through the SDK's batch processor: a bounded
//! queue (`OTEL_BLRP_MAX_QUEUE_SIZE`, 2048 records by default), beyond which records are
//! dropped, counted and reported as spans are ([`crate::otel_queue`]).

use crate::otel_queue::{CountingExporter, QueueAccount};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::{InstrumentationScope, Key};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{
    BatchConfigBuilder, BatchLogProcessor, SdkLogRecord, SdkLogger, SdkLoggerProvider,
};
use std::cell::Cell;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::SystemTime;

/// The most bytes of one write to stdout or stderr a record keeps
/// ([`Logs::emit_app_log`]): with the default queue of 2,048 records, at most 32 MiB
/// queued while a collector is down, plus the batch being sent (512 records by default,
/// 8 MiB). A request log line is about 350 bytes.
pub const MAX_APP_LOG_BYTES: usize = 16 << 10;

/// A log record as a guest gave it, its values already checked.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestLog {
    pub timestamp: Option<SystemTime>,
    pub observed_timestamp: Option<SystemTime>,
    /// OpenTelemetry's severity number, 1 to 24.
    pub severity: Option<u8>,
    pub body: Option<AnyValue>,
    pub attributes: Vec<(Key, AnyValue)>,
    /// The guest's instrumentation scope: its name and version.
    pub scope: Option<(String, Option<String>)>,
    /// The trace and span the record belongs to, with the trace's sampled flag.
    pub trace: Option<(TraceId, SpanId, bool)>,
}

/// Instrumentation scopes whose logger is kept ([`Logs::logger`]): far more than
/// chatgate's stages, few enough that their leaked names are no matter.
const MAX_KEPT_SCOPES: usize = 64;

/// A guest's instrumentation scope: its name and version.
type ScopeName = (String, Option<String>);

/// A running log pipeline.
#[derive(Debug)]
pub struct Logs {
    provider: SdkLoggerProvider,
    /// Records between the host and the exporter, and those dropped.
    account: Arc<QueueAccount>,
    /// A logger for each scope seen, with the scope's strings leaked (`'static`): the
    /// batch processor clones a record's scope into its queue, and a borrowed name
    /// clones without allocating.
    loggers: RwLock<Vec<(ScopeName, SdkLogger)>>,
    /// The host's own logger (scope `chatgate`): components' output
    /// ([`Logs::emit_app_log`]) and the host's warnings ([`HostEvents`]).
    host_logger: SdkLogger,
}

impl Logs {
    /// Starts the batch export through `exporter`, with `resource`, behind a queue of
    /// `capacity` records.
    pub(crate) fn start(
        exporter: impl opentelemetry_sdk::logs::LogExporter + 'static,
        resource: Resource,
        capacity: usize,
    ) -> Logs {
        let account = Arc::new(QueueAccount::new(capacity, "log record"));
        // The other batch settings stay the SDK's, which reads `OTEL_BLRP_*` for them.
        let processor =
            BatchLogProcessor::builder(CountingExporter::new(exporter, account.clone()))
                .with_batch_config(
                    BatchConfigBuilder::default()
                        .with_max_queue_size(capacity)
                        .build(),
                )
                .build();
        let provider = SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_log_processor(processor)
            .build();
        let host_logger = provider.logger_with_scope(
            InstrumentationScope::builder("chatgate")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        Logs {
            provider,
            account,
            loggers: RwLock::new(Vec::new()),
            host_logger,
        }
    }

    /// The logger of the scope `name` (`version`): the kept one, else a new one, kept
    /// while fewer than [`MAX_KEPT_SCOPES`] are.
    fn logger(&self, scope: Option<ScopeName>) -> SdkLogger {
        let (name, version) = scope.unwrap_or_else(|| ("guest".to_string(), None));
        let kept = self.loggers.read().unwrap_or_else(|e| e.into_inner());
        if let Some((_, logger)) = kept.iter().find(|((n, v), _)| *n == name && *v == version) {
            return logger.clone();
        }
        let full = kept.len() >= MAX_KEPT_SCOPES;
        drop(kept);
        if full {
            let mut scope = InstrumentationScope::builder(name);
            if let Some(version) = version {
                scope = scope.with_version(version);
            }
            return self.provider.logger_with_scope(scope.build());
        }
        let mut kept = self.loggers.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, logger)) = kept.iter().find(|((n, v), _)| *n == name && *v == version) {
            return logger.clone();
        }
        let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
        let mut scope = InstrumentationScope::builder(leaked);
        if let Some(version) = &version {
            let leaked: &'static str = Box::leak(version.clone().into_boxed_str());
            scope = scope.with_version(leaked);
        }
        let logger = self.provider.logger_with_scope(scope.build());
        kept.push(((name, version), logger.clone()));
        logger
    }

    /// Log records dropped because the export queue was full.
    pub fn dropped(&self) -> u64 {
        self.account.dropped()
    }

    /// Queues `log` for export, or drops and counts it when the queue is full; never
    /// waits.
    pub fn emit(&self, log: GuestLog) {
        if !self.account.admit() {
            return;
        }
        let logger = self.logger(log.scope);
        let mut record = logger.create_log_record();
        if let Some(time) = log.timestamp {
            record.set_timestamp(time);
        }
        record.set_observed_timestamp(log.observed_timestamp.unwrap_or_else(SystemTime::now));
        if let Some(number) = log.severity {
            let (severity, text) = severity(number);
            record.set_severity_number(severity);
            record.set_severity_text(text);
        }
        if let Some(body) = log.body {
            record.set_body(body);
        }
        record.add_attributes(log.attributes);
        if let Some((trace, span, sampled)) = log.trace {
            let flags = if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            record.set_trace_context(trace, span, Some(flags));
        }
        logger.emit(record);
    }

    /// Queues a component's write to stdout or stderr as a record ([`crate::runtime::app_log`]):
    /// the text as its body and `component_id`; bytes that are not UTF-8 as their first
    /// 50 escaped, with `app_log_non_utf8` (what Spin records). Beyond
    /// [`MAX_APP_LOG_BYTES`] the text is cut, with `app_log_truncated` (Spin keeps it
    /// whole). No severity and no trace context: a write belongs to no span the host
    /// knows. Never waits.
    pub fn emit_app_log(&self, bytes: &[u8], component_id: &Arc<str>) {
        if !self.account.admit() {
            return;
        }
        let logger = &self.host_logger;
        let mut record = logger.create_log_record();
        record.set_observed_timestamp(SystemTime::now());
        // The queue is bounded in records; this bounds each record's bytes too (a
        // component printing a whole body should not hold megabytes per record while a
        // collector is down). stdout and stderr still get every byte.
        let bytes = if bytes.len() > MAX_APP_LOG_BYTES {
            record.add_attribute("app_log_truncated", true);
            match std::str::from_utf8(bytes) {
                Ok(text) => &bytes[..text.floor_char_boundary(MAX_APP_LOG_BYTES)],
                Err(_) => &bytes[..MAX_APP_LOG_BYTES],
            }
        } else {
            bytes
        };
        match std::str::from_utf8(bytes) {
            Ok(text) => record.set_body(AnyValue::String(text.to_owned().into())),
            Err(_) => {
                let escaped: String = bytes
                    .iter()
                    .take(50)
                    .flat_map(|byte| std::ascii::escape_default(*byte))
                    .map(char::from)
                    .collect();
                record.set_body(AnyValue::String(escaped.into()));
                record.add_attribute("app_log_non_utf8", true);
            }
        }
        record.add_attribute(
            "component_id",
            AnyValue::String(opentelemetry::StringValue::from(component_id.clone())),
        );
        logger.emit(record);
    }

    /// Queues one of the host's own `tracing` events as a record ([`HostEvents`]): its
    /// message as the body, its other fields as attributes, its target as the record's
    /// (which the OTLP encoding makes its scope). Never waits.
    fn emit_host_event(&self, event: &tracing::Event<'_>) {
        if !self.account.admit() {
            return;
        }
        let metadata = event.metadata();
        let mut record = self.host_logger.create_log_record();
        let now = SystemTime::now();
        record.set_timestamp(now);
        record.set_observed_timestamp(now);
        let (severity, text) = match *metadata.level() {
            tracing::Level::ERROR => (Severity::Error, "ERROR"),
            _ => (Severity::Warn, "WARN"),
        };
        record.set_severity_number(severity);
        record.set_severity_text(text);
        record.set_target(metadata.target());
        event.record(&mut EventFields(&mut record));
        // The warnings about exports are raised on the SDK's export threads, where it
        // marks telemetry suppressed (its own loop guard) and its logger would drop the
        // record after `admit` counted it. Here the loop is bounded: each such warning
        // comes at most once a minute per signal, and [`HostEvents`] queues no event
        // raised while it queues one.
        let _unsuppressed = opentelemetry::Context::new().attach();
        self.host_logger.emit(record);
    }

    /// Exports what is queued now (blocks: call off the async threads).
    pub fn force_flush(&self) -> Result<(), String> {
        self.provider.force_flush().map_err(|e| e.to_string())
    }

    /// Exports what is left and stops (blocks: call off the async threads).
    pub fn shutdown(&self) -> Result<(), String> {
        self.provider.shutdown().map_err(|e| e.to_string())
    }
}

/// The host's own warnings and errors as log records: its `tracing` events of level
/// WARN and above from its own targets (`chatgate...`; not the OpenTelemetry, hyper or
/// wasmtime crates'), exported once a logs pipeline is given ([`HostEvents::export_to`]).
/// Spin exports only its components' output as records (its own events become span
/// events); chatgate's operators would otherwise see its warnings (a collector
/// unreachable, load shed, an instance that failed to start) only in `kubectl logs`.
/// The same events still go to stderr.
#[derive(Clone, Default)]
pub struct HostEvents {
    logs: Arc<OnceLock<Arc<Logs>>>,
}

impl HostEvents {
    /// Exports the events from now on through `logs`; a second call changes nothing.
    pub fn export_to(&self, logs: Arc<Logs>) {
        let _ = self.logs.set(logs);
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for HostEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let Some(logs) = self.logs.get() else {
            return;
        };
        let metadata = event.metadata();
        if *metadata.level() > tracing::Level::WARN || !metadata.target().starts_with("chatgate") {
            return;
        }
        thread_local! {
            /// An event raised while one is being queued (a warning about the queue
            /// itself) is not queued again.
            static QUEUEING: Cell<bool> = const { Cell::new(false) };
        }
        if QUEUEING.replace(true) {
            return;
        }
        logs.emit_host_event(event);
        QUEUEING.set(false);
    }
}

/// Writes an event's fields into a record: `message` as its body, the others as
/// attributes of their own type where OpenTelemetry has one, else as text.
struct EventFields<'a>(&'a mut SdkLogRecord);

impl tracing::field::Visit for EventFields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.record_text(field, format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.record_text(field, value.to_owned());
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.add_attribute(field.name(), value);
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        match i64::try_from(value) {
            Ok(value) => self.0.add_attribute(field.name(), value),
            Err(_) => self.record_text(field, value.to_string()),
        }
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.add_attribute(field.name(), value);
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.add_attribute(field.name(), value);
    }
}

impl EventFields<'_> {
    fn record_text(&mut self, field: &tracing::field::Field, text: String) {
        if field.name() == "message" {
            self.0.set_body(AnyValue::String(text.into()));
        } else {
            self.0.add_attribute(field.name(), text);
        }
    }
}

/// The severity of OpenTelemetry's number (1 to 24; others are clamped), and its short
/// name (the guest's own severity text is not used: the SDK keeps only static text).
pub fn severity(number: u8) -> (Severity, &'static str) {
    use Severity::*;
    const ALL: [Severity; 24] = [
        Trace, Trace2, Trace3, Trace4, Debug, Debug2, Debug3, Debug4, Info, Info2, Info3, Info4,
        Warn, Warn2, Warn3, Warn4, Error, Error2, Error3, Error4, Fatal, Fatal2, Fatal3, Fatal4,
    ];
    let severity = ALL[usize::from(number.clamp(1, 24)) - 1];
    (severity, severity.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::logs::{LogBatch, LogExporter};
    use std::sync::Mutex;

    /// What an exported record carried: target, severity text, body, attributes.
    type Seen = (
        Option<String>,
        Option<String>,
        String,
        Vec<(String, String)>,
    );

    /// An exporter keeping what it is given.
    #[derive(Debug, Clone, Default)]
    struct Kept(Arc<Mutex<Vec<Seen>>>);

    impl LogExporter for Kept {
        fn export(
            &self,
            batch: LogBatch<'_>,
        ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
            let mut kept = self.0.lock().unwrap();
            for (record, _) in batch.iter() {
                let text = |value: &AnyValue| match value {
                    AnyValue::String(text) => text.to_string(),
                    other => format!("{other:?}"),
                };
                kept.push((
                    record.target().map(|t| t.to_string()),
                    record.severity_text().map(str::to_owned),
                    record.body().map(text).unwrap_or_default(),
                    record
                        .attributes_iter()
                        .map(|(k, v)| (k.to_string(), text(v)))
                        .collect(),
                ));
            }
            std::future::ready(Ok(()))
        }

        fn shutdown_with_timeout(&self, _: std::time::Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    fn logs() -> (Arc<Logs>, Kept) {
        let kept = Kept::default();
        let logs = Logs::start(kept.clone(), Resource::builder_empty().build(), 16);
        (Arc::new(logs), kept)
    }

    #[test]
    fn a_components_output_is_a_record_of_its_text_and_component() {
        let (logs, kept) = logs();
        let component: Arc<str> = "chat".into();
        logs.emit_app_log(b"{\"msg\":\"request\"}\n", &component);
        // Not UTF-8: its first 50 bytes, escaped, and a flag saying so (as Spin does).
        let mut binary = vec![0xff, b'a', b'\n'];
        binary.extend([b'x'; 60]);
        logs.emit_app_log(&binary, &component);
        logs.force_flush().unwrap();
        let kept = kept.0.lock().unwrap().clone();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert_eq!(kept[0].2, "{\"msg\":\"request\"}\n");
        assert_eq!(kept[0].3, [("component_id".into(), "chat".into())]);
        assert_eq!(kept[0].1, None, "no severity: a write says none");
        assert_eq!(kept[1].2, format!("\\xffa\\n{}", "x".repeat(47)));
        assert_eq!(
            kept[1].3,
            [
                ("app_log_non_utf8".into(), "Boolean(true)".into()),
                ("component_id".into(), "chat".into())
            ]
        );
    }

    #[test]
    fn a_long_write_is_cut_at_a_character_boundary_and_says_so() {
        let (logs, kept) = logs();
        let component: Arc<str> = "chat".into();
        // "é" is two bytes: the limit falls inside the last one kept whole.
        let long = format!("a{}", "é".repeat(MAX_APP_LOG_BYTES));
        logs.emit_app_log(long.as_bytes(), &component);
        logs.emit_app_log(&long.as_bytes()[..MAX_APP_LOG_BYTES - 1], &component);
        logs.force_flush().unwrap();
        let kept = kept.0.lock().unwrap().clone();
        assert_eq!(kept[0].2.len(), MAX_APP_LOG_BYTES - 1);
        assert!(long.starts_with(&kept[0].2));
        assert_eq!(
            kept[0].3[0],
            ("app_log_truncated".into(), "Boolean(true)".into())
        );
        assert_eq!(
            kept[1].3,
            [("component_id".into(), "chat".into())],
            "not cut"
        );
    }

    #[test]
    fn the_hosts_warnings_and_errors_are_records_and_nothing_else_is() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let (logs, kept) = logs();
        let events = HostEvents::default();
        let subscriber = tracing_subscriber::registry().with(events.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "chatgate::server", "before any export");
            events.export_to(logs.clone());
            tracing::warn!(target: "chatgate::server", peer = "10.0.0.1", shed = 3u64, "load shed");
            tracing::error!(target: "chatgate::app", "an instance failed to start");
            tracing::info!(target: "chatgate::server", "listening");
            tracing::warn!(target: "hyper::proto", "not ours");
        });
        logs.force_flush().unwrap();
        let kept = kept.0.lock().unwrap().clone();
        assert_eq!(
            kept,
            [
                (
                    Some("chatgate::server".into()),
                    Some("WARN".into()),
                    "load shed".into(),
                    vec![
                        ("peer".into(), "10.0.0.1".into()),
                        ("shed".into(), "Int(3)".into())
                    ]
                ),
                (
                    Some("chatgate::app".into()),
                    Some("ERROR".into()),
                    "an instance failed to start".into(),
                    vec![]
                ),
            ]
        );
    }

    #[test]
    fn severity_numbers_map_to_their_ranges() {
        assert_eq!(severity(9), (Severity::Info, "INFO"));
        assert_eq!(severity(12), (Severity::Info4, "INFO4"));
        assert_eq!(severity(17), (Severity::Error, "ERROR"));
        assert_eq!(severity(24), (Severity::Fatal4, "FATAL4"));
        assert_eq!(severity(0), (Severity::Trace, "TRACE"));
        assert_eq!(severity(200), (Severity::Fatal4, "FATAL4"));
    }
}
