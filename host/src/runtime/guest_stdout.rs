//! Guests' stdout: the request log line `telemetry` writes for every request, among others.
//!
//! wasmtime's inherited stdout writes each guest write to the process's stdout on the
//! thread running the guest, and the guest's `blocking-write-and-flush` returns only after
//! that `write(2)`. Measured on `chat` behind `telemetry` (the gateway bench, one
//! connection, stdout a file): writing the line that way made a request about 11 µs slower
//! than keeping it in memory. Here a guest's write only appends the bytes to a queue, and a
//! thread of the app's own writes the queue to stdout in batches, at most every [`LINGER`]:
//! the line leaves the request's path, and many lines go out in one `write(2)`. The
//! writer is not woken per line: measured the same way, a wake-up per request (a futex
//! call, and the writer's run competing for the two cores) made a request 70 µs slower
//! than writing the line directly.
//!
//! What the guests see does not change: their writes reach stdout whole and in the order
//! they were made (one queue, one writer), as they would through a pipe's buffer. When
//! stdout cannot keep up, the queue is bounded ([`MAX_QUEUED`]) and a write waits for room,
//! as a write to a full pipe would. When the app is dropped ([`StdoutWriter`]), what is
//! queued is written before the writer ends; a guest writing after that writes directly.

use bytes::Bytes;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The most bytes queued before a guest's write waits for the writer: far more than a burst
/// of log lines (a line is about 350 bytes), little memory.
pub const MAX_QUEUED: usize = 4 << 20;

/// How long the writer lets lines gather after writing a batch: what a line may wait, at
/// most, beyond the write itself.
const LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// Where guests' stdout goes: the process's stdout through the queue, or a buffer tests read.
#[derive(Clone)]
pub enum GuestStdout {
    /// Queued for the app's stdout writer.
    Queued(StdoutQueue),
    /// Kept in memory (`capture_guest_stdout`).
    Captured(wasmtime_wasi::p2::pipe::MemoryOutputPipe),
}

/// The queue guests' writes go to; every clone is the same queue.
#[derive(Clone)]
pub struct StdoutQueue {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when bytes are queued or the writer is to stop.
    queued: Condvar,
    /// Signalled when the writer has taken the queue.
    taken: Condvar,
}

#[derive(Default)]
struct State {
    bytes: Vec<u8>,
    /// The writer stopped: writes go straight to stdout.
    closed: bool,
    /// The writer waits for a write to wake it.
    idle: bool,
}

/// The thread writing an app's queue to stdout; dropping it writes what is queued and
/// stops the thread.
pub struct StdoutWriter {
    queue: StdoutQueue,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StdoutWriter {
    /// Starts the writer thread of a new queue, writing to the process's stdout.
    pub fn start() -> std::io::Result<StdoutWriter> {
        Self::start_with(std::io::stdout())
    }

    /// Starts the writer thread of a new queue, writing to `sink`.
    fn start_with(sink: impl Write + Send + 'static) -> std::io::Result<StdoutWriter> {
        let queue = StdoutQueue {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                queued: Condvar::new(),
                taken: Condvar::new(),
            }),
        };
        let shared = queue.shared.clone();
        let thread = std::thread::Builder::new()
            .name("guest-stdout".into())
            .spawn(move || write_until_closed(&shared, sink))?;
        Ok(StdoutWriter {
            queue,
            thread: Some(thread),
        })
    }

    /// The queue the guests write to.
    pub fn queue(&self) -> StdoutQueue {
        self.queue.clone()
    }
}

impl Drop for StdoutWriter {
    fn drop(&mut self) {
        self.queue.shared.lock().closed = true;
        self.queue.shared.queued.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_until_closed(shared: &Shared, mut sink: impl Write) {
    let mut batch = Vec::new();
    loop {
        {
            let mut state = shared.lock();
            if state.bytes.is_empty() && !state.closed {
                // Idle: the next write wakes the writer (the only write that pays a wake-up).
                state.idle = true;
                state = shared
                    .queued
                    .wait_while(state, |state| state.bytes.is_empty() && !state.closed)
                    .unwrap_or_else(|e| e.into_inner());
                state.idle = false;
            }
            if state.bytes.is_empty() {
                // Closed and nothing left: later writes go straight to stdout.
                return;
            }
            std::mem::swap(&mut batch, &mut state.bytes);
        }
        shared.taken.notify_all();
        // As with an inherited stdout, a failed write loses the bytes and nothing else.
        let _ = sink.write_all(&batch).and_then(|()| sink.flush());
        batch.clear();
        // Keeps the buffer's capacity for the next batch, unless a burst grew it.
        if batch.capacity() > MAX_QUEUED {
            batch = Vec::new();
        }
        // Lets the next lines gather, woken only to stop: a request's write then costs no
        // wake-up of this thread, whose every run competes with the requests for a core.
        let state = shared.lock();
        drop(
            shared
                .queued
                .wait_timeout_while(state, LINGER, |state| !state.closed)
                .unwrap_or_else(|e| e.into_inner()),
        );
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StdoutQueue {
    fn push(&self, bytes: &[u8]) -> std::io::Result<()> {
        let shared = &self.shared;
        let mut state = shared.lock();
        while !state.closed
            && !state.bytes.is_empty()
            && state.bytes.len() + bytes.len() > MAX_QUEUED
        {
            state = shared.taken.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.closed {
            drop(state);
            let mut stdout = std::io::stdout().lock();
            return stdout.write_all(bytes).and_then(|()| stdout.flush());
        }
        let wake = std::mem::take(&mut state.idle);
        state.bytes.extend_from_slice(bytes);
        drop(state);
        if wake {
            shared.queued.notify_one();
        }
        Ok(())
    }
}

impl IsTerminal for StdoutQueue {
    fn is_terminal(&self) -> bool {
        std::io::IsTerminal::is_terminal(&std::io::stdout())
    }
}

impl StdoutStream for StdoutQueue {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for StdoutQueue {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes)
            .map_err(|e| wasmtime_wasi::p2::StreamError::LastOperationFailed(e.into()))
    }

    /// Queued bytes are on their way, as bytes written to a pipe are: nothing to wait for.
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_QUEUED)
    }
}

#[async_trait::async_trait]
impl Pollable for StdoutQueue {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for StdoutQueue {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.push(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test reads after the writer has stopped.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_write_arrives_whole_and_in_its_writers_order_before_the_writer_stops() {
        let sink = Sink::default();
        let writer = StdoutWriter::start_with(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut queue = writer.queue();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        let line = format!("{{\"thread\":{t},\"line\":{i}}}\n");
                        OutputStream::write(&mut queue, Bytes::from(line)).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let queue = writer.queue();
        drop(writer);
        assert!(queue.shared.lock().closed);
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0; 4];
        for line in written.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let t = value["thread"].as_u64().unwrap() as usize;
            assert_eq!(value["line"], next[t], "thread {t}'s lines out of order");
            next[t] += 1;
        }
        assert_eq!(next, [2_000; 4]);
    }

    #[test]
    fn a_full_queue_makes_the_writer_wait_rather_than_grow() {
        // A sink that blocks until `release` is dropped: the queue fills up behind it.
        let (release, released) = std::sync::mpsc::channel::<()>();
        struct Blocked(std::sync::mpsc::Receiver<()>, Sink);
        impl Write for Blocked {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let _ = self.0.recv();
                self.1.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = StdoutWriter::start_with(Blocked(released, sink.clone())).unwrap();
        let queue = writer.queue();
        // The writer takes a first byte and blocks in the sink with it.
        queue.push(b"x").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let chunk = vec![b'x'; MAX_QUEUED / 4];
        let filler = {
            let queue = queue.clone();
            let chunk = chunk.clone();
            std::thread::spawn(move || {
                for _ in 0..12 {
                    queue.push(&chunk).unwrap();
                }
            })
        };
        // The chunks queue behind the blocked writer (without the bound, all twelve of
        // them, in far less than this).
        std::thread::sleep(std::time::Duration::from_millis(300));
        let queued = queue.shared.lock().bytes.len();
        // Unblocks the sink before anything can fail, so that the writer can stop.
        drop(release);
        filler.join().unwrap();
        drop(writer);
        assert!(queued <= MAX_QUEUED, "{queued} bytes queued");
        assert_eq!(sink.0.lock().unwrap().len(), 1 + 12 * chunk.len());
    }
}
