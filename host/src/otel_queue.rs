//! The spans and log records waiting for export, bounded, with what is dropped counted
//! and reported.
//!
//! The SDK's batch processors drop a span or a log record when their queue is full and
//! say so once, in a log the host does not build in (read in `opentelemetry_sdk`
//! 0.33.1, `span_processor.rs` and `batch_log_processor.rs`). So chatgate keeps its own
//! account in front of each: items handed to the processor minus items handed on to
//! the exporter is at least what the queue holds, and an item that would take that past
//! the queue's capacity is dropped here, counted, and reported (a warning at the first
//! drop, then at most once a minute with the number since the last report). The
//! processor's own queue therefore never fills, and every drop is counted.
//!
//! A request that starts while the span queue is full is not traced at all
//! ([`SpanQueue::has_room`], [`SpanQueue::leave_untraced`]): its spans would be dropped,
//! so the host builds none and gives it an unsampled trace context, which tells the
//! stages not to build theirs either. A collector that is down or stalled then costs
//! the request path a check, not the spans it would throw away.

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::trace::{
    BatchConfig, BatchSpanProcessor, SpanData, SpanExporter, SpanProcessor,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often drops are reported after the first.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// The account of spans (or log records) between the host and the exporter.
#[derive(Debug)]
pub struct QueueAccount {
    /// What is queued, for the report: `span`, `log record`.
    what: &'static str,
    capacity: u64,
    submitted: AtomicU64,
    exported: AtomicU64,
    dropped: AtomicU64,
    /// Requests left untraced because the queue was full (spans only).
    untraced: AtomicU64,
    /// Drops since the last report.
    unreported: AtomicU64,
    /// Requests left untraced since the last report.
    unreported_untraced: AtomicU64,
    /// When drops were last reported, in milliseconds after `created` plus one (0: never).
    /// Atomics, not a lock: with the collector down every request drops its items, and
    /// none should wait on another.
    reported_at: AtomicU64,
    created: Instant,
}

impl QueueAccount {
    /// An account for a queue of `capacity` items of the kind `what` names.
    pub fn new(capacity: usize, what: &'static str) -> QueueAccount {
        QueueAccount {
            what,
            capacity: capacity as u64,
            submitted: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            untraced: AtomicU64::new(0),
            unreported: AtomicU64::new(0),
            unreported_untraced: AtomicU64::new(0),
            reported_at: AtomicU64::new(0),
            created: Instant::now(),
        }
    }

    /// Takes one item in if the queue has room; otherwise counts it as dropped.
    pub fn admit(&self) -> bool {
        let submitted = self.submitted.fetch_add(1, Ordering::AcqRel) + 1;
        let exported = self.exported.load(Ordering::Acquire);
        if submitted.saturating_sub(exported) <= self.capacity {
            return true;
        }
        self.submitted.fetch_sub(1, Ordering::AcqRel);
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.unreported.fetch_add(1, Ordering::AcqRel);
        self.report(Instant::now());
        false
    }

    /// Whether one more item would be taken in now.
    pub fn has_room(&self) -> bool {
        let submitted = self.submitted.load(Ordering::Acquire);
        let exported = self.exported.load(Ordering::Acquire);
        submitted.saturating_sub(exported) < self.capacity
    }

    /// Counts a request left untraced because the queue had no room.
    pub fn leave_untraced(&self) {
        self.untraced.fetch_add(1, Ordering::Relaxed);
        self.unreported_untraced.fetch_add(1, Ordering::AcqRel);
        self.report(Instant::now());
    }

    /// Requests left untraced since the start.
    pub fn untraced(&self) -> u64 {
        self.untraced.load(Ordering::Relaxed)
    }

    /// Records that `items` left the queue for the exporter.
    pub fn exported(&self, items: usize) {
        self.exported.fetch_add(items as u64, Ordering::AcqRel);
    }

    /// Items dropped since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Warns of the drops and untraced requests since the last report, if a report is
    /// due: at the first, then at most once a minute.
    fn report(&self, now: Instant) {
        let now_ms = now.saturating_duration_since(self.created).as_millis() as u64 + 1;
        let last = self.reported_at.load(Ordering::Acquire);
        let interval = DROP_REPORT_INTERVAL.as_millis() as u64;
        if last != 0 && now_ms.saturating_sub(last) < interval {
            return;
        }
        // One of the drops that find a report due makes it.
        if self
            .reported_at
            .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let since = self.unreported.swap(0, Ordering::AcqRel);
        let untraced_since = self.unreported_untraced.swap(0, Ordering::AcqRel);
        let what = self.what;
        let untraced = if untraced_since > 0 {
            format!(
                " and left {untraced_since} request(s) untraced ({} in all)",
                self.untraced()
            )
        } else {
            String::new()
        };
        tracing::warn!(
            target: "chatgate::otel",
            "the {what} export queue ({} {what}s) is full: dropped {} {what}(s) since the last report ({} in all){untraced}; the collector is slow or down",
            self.capacity,
            since,
            self.dropped()
        );
    }
}

/// An exporter that records in the account every span it is handed.
#[derive(Debug)]
pub struct CountingExporter<E> {
    inner: E,
    account: Arc<QueueAccount>,
}

impl<E> CountingExporter<E> {
    /// Wraps `inner`, counting into `account`.
    pub fn new(inner: E, account: Arc<QueueAccount>) -> Self {
        CountingExporter { inner, account }
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.account.exported(batch.len());
        self.inner.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: LogExporter> LogExporter for CountingExporter<E> {
    fn export(
        &self,
        batch: LogBatch<'_>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.account.exported(batch.iter().count());
        self.inner.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The batch processor behind the account.
#[derive(Debug)]
pub struct SpanQueue {
    processor: BatchSpanProcessor,
    account: Arc<QueueAccount>,
}

impl SpanQueue {
    /// A batch processor for `exporter` with `config`, whose queue capacity the account
    /// takes as its own.
    pub fn new<E: SpanExporter + 'static>(
        exporter: E,
        config: BatchConfig,
        capacity: usize,
    ) -> SpanQueue {
        let account = Arc::new(QueueAccount::new(capacity, "span"));
        let processor =
            BatchSpanProcessor::builder(CountingExporter::new(exporter, account.clone()))
                .with_batch_config(config)
                .build();
        SpanQueue { processor, account }
    }

    /// Queues `span` for export, or drops and counts it when the queue is full.
    pub fn submit(&self, span: SpanData) {
        if self.account.admit() {
            self.processor.on_end(span);
        }
    }

    /// Spans dropped since the start.
    pub fn dropped(&self) -> u64 {
        self.account.dropped()
    }

    /// Whether a span submitted now would be taken in: a request that starts when it
    /// would not is left untraced ([`SpanQueue::leave_untraced`]).
    pub fn has_room(&self) -> bool {
        self.account.has_room()
    }

    /// Counts a request left untraced because the queue was full, and reports it with
    /// the drops.
    pub fn leave_untraced(&self) {
        self.account.leave_untraced();
    }

    /// Requests left untraced since the start.
    pub fn untraced(&self) -> u64 {
        self.account.untraced()
    }

    /// The processor, for what is not a finished span (start, flush, shutdown).
    pub fn processor(&self) -> &BatchSpanProcessor {
        &self.processor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_counts_and_takes_spans_again_once_exported() {
        let account = QueueAccount::new(2, "span");
        assert!(account.admit());
        assert!(account.admit());
        assert!(!account.admit());
        assert!(!account.admit());
        assert_eq!(account.dropped(), 2);
        account.exported(1);
        assert!(account.admit());
        assert!(!account.admit());
        assert_eq!(account.dropped(), 3);
    }

    #[test]
    fn room_is_what_the_next_admission_would_find() {
        let account = QueueAccount::new(1, "span");
        assert!(account.has_room());
        assert!(account.admit());
        assert!(!account.has_room());
        account.leave_untraced();
        account.leave_untraced();
        assert_eq!((account.untraced(), account.dropped()), (2, 0));
        account.exported(1);
        assert!(account.has_room());
    }

    #[test]
    fn drops_are_reported_at_once_then_at_most_once_a_minute() {
        let account = QueueAccount::new(0, "log record");
        let start = account.created + Duration::from_millis(5);
        let report = |account: &QueueAccount| {
            (
                account.reported_at.load(Ordering::Acquire),
                account.unreported.load(Ordering::Acquire),
            )
        };
        let drop_at = |account: &QueueAccount, at: Instant| {
            account.unreported.fetch_add(1, Ordering::AcqRel);
            account.report(at);
        };
        drop_at(&account, start);
        assert_eq!(report(&account), (6, 0));
        drop_at(&account, start + Duration::from_secs(30));
        drop_at(&account, start + Duration::from_secs(59));
        assert_eq!(report(&account), (6, 2));
        drop_at(&account, start + Duration::from_secs(61));
        assert_eq!(report(&account), (61_006, 0));
    }
}
