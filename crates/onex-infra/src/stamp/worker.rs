//! The stamping worker: one long-lived thread that runs hashing tasks handed to it, one at a
//! time, and stays awake a little while between them; and [`Handoff`], how the worker and a
//! caller pass one value each way without paying for a sleeping thread's wake-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// A task for the worker.
pub(super) type Task = Box<dyn FnOnce() + Send>;

/// How long the worker stays awake for the next task after finishing one, and how long a
/// [`Handoff::take`] spins before it sleeps. Waking a sleeping thread took about 40 µs on a
/// 2-core VM (a third of hashing 1 MiB), so back-to-back stamps (a directory, a batch of
/// requests) find the worker awake; about twice the wake-up, as spinning locks do.
pub(super) const AWAKE: Duration = Duration::from_micros(100);

/// Hands `task` to the worker thread (started on first use). Gives the task back when there is
/// no worker thread: the caller then does the work itself, slower but right.
pub(super) fn run(task: Task) -> Result<(), Task> {
    static WORKER: OnceLock<Option<Sender<Task>>> = OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        let (tx, rx) = channel::<Task>();
        let spawned = std::thread::Builder::new().name("onex-blake3".into()).spawn(move || {
            while let Some(task) = next_task(&rx) {
                task();
            }
        });
        spawned.ok().map(|_| tx)
    });
    match worker {
        Some(tx) => tx.send(task).map_err(|e| e.0),
        None => Err(task),
    }
}

/// The worker's next task: looked for awake for [`AWAKE`], then waited for asleep; `None` once
/// no sender is left.
fn next_task(tasks: &Receiver<Task>) -> Option<Task> {
    let until = Instant::now() + AWAKE;
    while Instant::now() < until {
        match tasks.try_recv() {
            Ok(task) => return Some(task),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
    tasks.recv().ok()
}

/// One value passed from one thread to another: the taker spins for [`AWAKE`], then sleeps
/// until it is put.
#[derive(Debug)]
pub(super) struct Handoff<T> {
    value: Mutex<Option<T>>,
    put: AtomicBool,
    ready: Condvar,
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Self { value: Mutex::new(None), put: AtomicBool::new(false), ready: Condvar::new() }
    }
}

impl<T> Handoff<T> {
    /// Puts the value (once).
    pub(super) fn put(&self, value: T) {
        *self.value.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        self.put.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// Waits for the value and takes it.
    pub(super) fn take(&self) -> T {
        let until = Instant::now() + AWAKE;
        while !self.put.load(Ordering::Acquire) && Instant::now() < until {
            std::hint::spin_loop();
        }
        let mut value = self.value.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match value.take() {
                Some(taken) => return taken,
                None => value = self.ready.wait(value).unwrap_or_else(PoisonError::into_inner),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn tasks_run_on_the_worker_thread() {
        let handoff = Arc::new(Handoff::default());
        let told = Arc::clone(&handoff);
        let task: Task = Box::new(move || told.put(std::thread::current().name().map(str::to_owned)));
        assert!(run(task).is_ok(), "the worker thread starts");
        assert_eq!(handoff.take().as_deref(), Some("onex-blake3"));
    }

    #[test]
    fn a_value_put_after_a_long_wait_still_arrives() {
        let handoff = Arc::new(Handoff::default());
        let putter = Arc::clone(&handoff);
        let thread = std::thread::spawn(move || {
            // Past the spin: the taker is asleep on the condition variable by now.
            std::thread::sleep(AWAKE * 20);
            putter.put(7);
        });
        assert_eq!(handoff.take(), 7);
        thread.join().unwrap();
    }
}
