//! Capturing what `tracing` writes during one test, to assert that secrets never reach logs.
//! Included with `#[path = "common/logs.rs"] mod logs;` by the tests that need it.

use std::sync::{Arc, Mutex};

/// Everything `tracing` writes on this thread while it lives, at every level (tests run on
/// tokio's current-thread runtime, so the handler's tasks log here too).
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
    _silent: tracing::Dispatch,
}

impl LogCapture {
    /// Starts capturing at TRACE. A second, silent dispatcher is registered as well: with
    /// exactly one registered dispatcher, tracing-core takes a callsite's interest from the
    /// thread that first reaches it, so a callsite first reached by a concurrent test (which has
    /// no subscriber) would stay disabled here too.
    pub fn start() -> Self {
        let silent = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Captured(Arc::clone(&buf));
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        Self { buf, _guard: tracing::subscriber::set_default(subscriber), _silent: silent }
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
    }
}

#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
