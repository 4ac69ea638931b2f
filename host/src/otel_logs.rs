//! OpenTelemetry logs over OTLP (HTTP or gRPC, [`crate::otel_transport`]): the log
//! records guests emit through `wasi:otel/logs` (the `telemetry` component's one record
//! per request), exported with the traces when trace export is on, to
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
    BatchConfigBuilder, BatchLogProcessor, SdkLogger, SdkLoggerProvider,
};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

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
        Logs {
            provider,
            account,
            loggers: RwLock::new(Vec::new()),
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

    /// Exports what is queued now (blocks: call off the async threads).
    pub fn force_flush(&self) -> Result<(), String> {
        self.provider.force_flush().map_err(|e| e.to_string())
    }

    /// Exports what is left and stops (blocks: call off the async threads).
    pub fn shutdown(&self) -> Result<(), String> {
        self.provider.shutdown().map_err(|e| e.to_string())
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
