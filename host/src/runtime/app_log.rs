//! Guests' stdout and stderr as OpenTelemetry log records, when logs are exported: each
//! write becomes one record whose body is the text written and whose `component_id`
//! attribute names the trigger's component, as Spin exports a component's output (read
//! in Spin's source: `crates/telemetry/src/logs.rs`, `handle_app_log`, called for every
//! write by `crates/trigger/src/cli/stdio.rs`; restated, not copied). That is how a
//! request that is not sampled still reaches the collector: `telemetry` writes its JSON
//! request line for every request, and emits its `wasi:otel/logs` record (with trace and
//! span ids) only in sampled traces.
//!
//! A write is passed on unchanged to the stream it was meant for; the record is queued
//! for export (never waiting, dropped and counted when the queue is full,
//! [`crate::otel_logs`]). With logs not exported, no stream is wrapped.

use crate::otel_logs::Logs;
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Where a component's output is also sent: the logs pipeline, with the component's id.
#[derive(Clone)]
pub struct AppLogs {
    logs: Arc<Logs>,
    component_id: Arc<str>,
}

impl AppLogs {
    pub fn new(logs: Arc<Logs>, component_id: Arc<str>) -> AppLogs {
        AppLogs { logs, component_id }
    }

    /// `stream`, each of whose writes is also a log record.
    pub fn wrap<S: StdoutStream + 'static>(&self, stream: S) -> Exported<S> {
        Exported {
            stream,
            logs: self.clone(),
        }
    }

    fn record(&self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.logs.emit_app_log(bytes, &self.component_id);
        }
    }
}

/// A guest's stdout or stderr whose writes are also exported as log records.
pub struct Exported<S> {
    stream: S,
    logs: AppLogs,
}

impl<S: IsTerminal> IsTerminal for Exported<S> {
    fn is_terminal(&self) -> bool {
        self.stream.is_terminal()
    }
}

impl<S: StdoutStream> StdoutStream for Exported<S> {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(ExportedP2 {
            stream: self.stream.p2_stream(),
            logs: self.logs.clone(),
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(ExportedAsync {
            stream: Pin::from(self.stream.async_stream()),
            logs: self.logs.clone(),
        })
    }
}

/// The WASIp2 `output-stream` of an [`Exported`] stream.
struct ExportedP2 {
    stream: Box<dyn OutputStream>,
    logs: AppLogs,
}

#[async_trait::async_trait]
impl Pollable for ExportedP2 {
    async fn ready(&mut self) {
        self.stream.ready().await
    }
}

#[async_trait::async_trait]
impl OutputStream for ExportedP2 {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.logs.record(&bytes);
        self.stream.write(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.stream.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.stream.check_write()
    }

    /// The wrapped stream's own, which may be more direct than the default loop.
    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.logs.record(&bytes);
        self.stream.blocking_write_and_flush(bytes).await
    }

    /// Zeroes are not text: passed on, not recorded.
    fn write_zeroes(&mut self, count: usize) -> StreamResult<()> {
        self.stream.write_zeroes(count)
    }

    async fn cancel(&mut self) {
        self.stream.cancel().await
    }
}

/// The WASIp3 stream of an [`Exported`] stream: what the wrapped stream accepted is
/// recorded.
struct ExportedAsync {
    stream: Pin<Box<dyn tokio::io::AsyncWrite + Send + Sync>>,
    logs: AppLogs,
}

impl tokio::io::AsyncWrite for ExportedAsync {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = self.stream.as_mut().poll_write(cx, buf);
        if let Poll::Ready(Ok(count)) = &written {
            self.logs.record(&buf[..*count]);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream.as_mut().poll_shutdown(cx)
    }
}
