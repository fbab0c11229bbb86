//! BLAKE3 on two cores while content is normalised as a stream: the normalised stream is cut
//! into 64 KiB blocks, each a complete BLAKE3 subtree; the worker thread hashes blocks as they
//! come while the caller keeps normalising, the caller helps with what is left, and the
//! subtrees' chaining values are merged into the root exactly as BLAKE3's tree defines it
//! (`blake3::hazmat`; tested against `blake3::hash` at every size boundary). Large content
//! held in memory goes through [`super::split`] instead (both cores normalise).
//!
//! Content of one block or less never leaves the calling thread. Longer content wakes the
//! worker before its first block is full, the worker spins briefly between blocks instead of
//! sleeping, nobody is signalled unless it sleeps, and block buffers are reused across runs:
//! waking a thread and faulting in fresh pages each cost more than hashing a block.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use onex_core::stamp::{NormalizedHash, Normalizer};

use super::worker;
use blake3::hazmat::{ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root};

/// Bytes per block: 64 chunks, a power of two, so every full block is a subtree of the tree.
pub const BLOCK: usize = 64 * 1024;
/// Blocks queued at most; beyond that the producer hashes the oldest itself (bounded memory).
pub const MAX_PENDING: usize = 2;

/// Block buffers kept between runs, at most this many (256 KiB): a fresh 64 KiB buffer per
/// block, freed on the other thread, made the allocator hand pages back and fault them in
/// again on every run, which cost more than hashing the block.
const MAX_SPARE: usize = MAX_PENDING + 2;
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty block buffer with room for a whole block.
fn take_buffer() -> Vec<u8> {
    let spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner).pop();
    spare.unwrap_or_else(|| Vec::with_capacity(BLOCK))
}

/// Keeps a hashed block's buffer for the next block (or frees it when enough are kept).
fn give_back(mut buffer: Vec<u8>) {
    buffer.clear();
    let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
    if spare.len() < MAX_SPARE && buffer.capacity() >= BLOCK {
        spare.push(buffer);
    }
}

/// How long the worker spins for the next block before it sleeps: waking a sleeping thread
/// took longer here than hashing a block, so a run is handed to the worker before its first
/// block is ready and the worker waits for blocks awake.
const SPIN: Duration = Duration::from_micros(50);

/// One hashing run's shared state: blocks waiting, chaining values done.
#[derive(Default)]
struct Run {
    state: Mutex<RunState>,
    changed: Condvar,
    /// Counts pushes and the close, so a spinning worker sees news without the lock.
    news: AtomicUsize,
}

#[derive(Default)]
struct RunState {
    pending: VecDeque<(usize, Vec<u8>)>,
    cvs: Vec<Option<ChainingValue>>,
    in_progress: usize,
    closed: bool,
    /// Threads waiting on `changed`: signalling costs a system call, so only they are signalled.
    sleeping: usize,
}

fn block_cv(index: usize, bytes: &[u8]) -> ChainingValue {
    blake3::Hasher::new().set_input_offset((index * BLOCK) as u64).update(bytes).finalize_non_root()
}

impl Run {
    fn lock(&self) -> MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a block; when the queue is full, first hashes the oldest one on this thread.
    fn push(&self, index: usize, block: Vec<u8>) {
        let mut state = self.lock();
        if state.pending.len() >= MAX_PENDING
            && let Some(job) = state.pending.pop_front()
        {
            state = self.hash_one(state, job);
        }
        state.pending.push_back((index, block));
        self.announce(state);
    }

    /// No more blocks will come.
    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.announce(state);
    }

    /// Tells a spinning worker (through `news`) and a sleeping one (through `changed`) that
    /// `state` changed.
    fn announce(&self, state: MutexGuard<'_, RunState>) {
        let sleeping = state.sleeping > 0;
        drop(state);
        self.news.fetch_add(1, Ordering::Release);
        if sleeping {
            self.changed.notify_all();
        }
    }

    /// Sleeps until `changed` is signalled.
    fn sleep<'s>(&'s self, mut state: MutexGuard<'s, RunState>) -> MutexGuard<'s, RunState> {
        state.sleeping += 1;
        let mut state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        state.sleeping -= 1;
        state
    }

    /// Spins up to [`SPIN`] for a push or the close after `seen` pushes; false if none came.
    fn spin_for_news(&self, seen: usize) -> bool {
        let until = Instant::now() + SPIN;
        while Instant::now() < until {
            if self.news.load(Ordering::Acquire) != seen {
                return true;
            }
            std::hint::spin_loop();
        }
        false
    }

    /// Hashes one block outside the lock and records its chaining value.
    fn hash_one<'s>(
        &'s self,
        mut state: MutexGuard<'s, RunState>,
        (index, block): (usize, Vec<u8>),
    ) -> MutexGuard<'s, RunState> {
        state.in_progress += 1;
        drop(state);
        let cv = block_cv(index, &block);
        give_back(block);
        let mut state = self.lock();
        if state.cvs.len() <= index {
            state.cvs.resize(index + 1, None);
        }
        state.cvs[index] = Some(cv);
        state.in_progress -= 1;
        if state.sleeping > 0 {
            self.changed.notify_all();
        }
        state
    }

    /// Hashes pending blocks until none is left; with `until_done`, also waits for blocks
    /// another thread is hashing (the caller's final drain), else returns when the run closes.
    fn work(&self, until_done: bool) {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.pending.pop_front() {
                state = self.hash_one(state, job);
            } else if (until_done && state.in_progress == 0) || (!until_done && state.closed) {
                return;
            } else if !until_done {
                let seen = self.news.load(Ordering::Acquire);
                drop(state);
                let news = self.spin_for_news(seen);
                state = self.lock();
                if !news && state.pending.is_empty() && !state.closed {
                    state = self.sleep(state);
                }
            } else {
                state = self.sleep(state);
            }
        }
    }
}

/// A drop-in for `HashSink` that hashes on a second core once content exceeds one block.
#[derive(Debug, Default)]
pub struct ParallelSink {
    block: Vec<u8>,
    index: usize,
    run: Option<Arc<Run>>,
    len: u64,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Run")
    }
}

impl ParallelSink {
    /// A sink for about `len` bytes: past one block, the worker is woken now, while the first
    /// block is still being filled.
    pub fn with_len_hint(len: usize) -> Self {
        let mut sink = Self::default();
        if len > BLOCK {
            sink.run = Some(start_run());
        }
        sink
    }

    /// Adds bytes.
    pub fn write(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        while !bytes.is_empty() {
            if self.block.len() == BLOCK {
                self.hand_off();
            }
            if self.block.capacity() == 0 {
                self.block = take_buffer();
            }
            let take = bytes.len().min(BLOCK - self.block.len());
            self.block.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
    }

    /// Passes the full current block to the worker (starting the run on the first one).
    fn hand_off(&mut self) {
        let run = self.run.get_or_insert_with(start_run);
        run.push(self.index, std::mem::take(&mut self.block));
        self.index += 1;
    }

    /// The BLAKE3 hash of everything written, and its length.
    pub fn finalize(mut self) -> (blake3::Hash, u64) {
        // One block or less: its hash is the root, computed here (a run started on a length
        // hint that normalising shrank is just closed).
        let run = match self.run.take() {
            Some(run) if self.index > 0 => Some(run),
            Some(run) => {
                run.close();
                None
            }
            None => None,
        };
        let Some(run) = run else {
            let hash = blake3::hash(&self.block);
            give_back(std::mem::take(&mut self.block));
            return (hash, self.len);
        };
        if !self.block.is_empty() {
            run.push(self.index, std::mem::take(&mut self.block));
        }
        run.close();
        run.work(true);
        let cvs: Vec<ChainingValue> = run.lock().cvs.iter().map(|cv| cv.unwrap_or_default()).collect();
        let mut lens = vec![BLOCK as u64; cvs.len()];
        if let Some(last) = lens.last_mut() {
            *last = self.len - (cvs.len() as u64 - 1) * BLOCK as u64;
        }
        (root(&cvs, &lens, self.len), self.len)
    }
}

impl Drop for ParallelSink {
    /// A sink dropped without `finalize` (a file that failed to read mid-way) still ends its
    /// run: otherwise the worker would wait for its next block forever and serve no other run.
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            run.close();
        }
    }
}

/// A run handed to the worker (if the worker is gone, the caller drains it alone in
/// `finalize`).
fn start_run() -> Arc<Run> {
    let run = Arc::new(Run::default());
    let on_worker = Arc::clone(&run);
    // Without a worker thread the caller hashes every block itself: slower, still right.
    let _ = worker::run(Box::new(move || on_worker.work(false)));
    run
}

/// Normalises and hashes content through the pipeline: on a second core past one block.
pub fn normalized_hash_pipelined(content: &[u8]) -> NormalizedHash {
    let mut sink = ParallelSink::with_len_hint(content.len());
    let mut normalizer = Normalizer::with_len_hint(content.len());
    normalizer.push(content, &mut |b: &[u8]| sink.write(b));
    let outcome = normalizer.finish(&mut |b: &[u8]| sink.write(b));
    let (hash, len) = sink.finalize();
    NormalizedHash::from_parts(outcome, hash, len)
}

/// Merges subtree chaining values (with their byte lengths, all full blocks but the last)
/// into BLAKE3's root, following its left-complete tree: a node over `n` bytes splits at
/// `left_subtree_len(n)`.
fn root(cvs: &[ChainingValue], lens: &[u64], total: u64) -> blake3::Hash {
    let split = split_at(lens, left_subtree_len(total));
    let left = merge(&cvs[..split], &lens[..split]);
    let right = merge(&cvs[split..], &lens[split..]);
    merge_subtrees_root(&left, &right, Mode::Hash)
}

fn merge(cvs: &[ChainingValue], lens: &[u64]) -> ChainingValue {
    if cvs.len() == 1 {
        return cvs[0];
    }
    let total: u64 = lens.iter().sum();
    let split = split_at(lens, left_subtree_len(total));
    merge_subtrees_non_root(&merge(&cvs[..split], &lens[..split]), &merge(&cvs[split..], &lens[split..]), Mode::Hash)
}

/// How many leading blocks add up to `left` bytes (always whole blocks: `left` is a power of
/// two at least one block long whenever a node spans more than one block).
fn split_at(lens: &[u64], left: u64) -> usize {
    let mut sum = 0;
    lens.iter()
        .take_while(|&&l| {
            sum += l;
            sum <= left
        })
        .count()
        .clamp(1, lens.len().saturating_sub(1).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parallel_hash(data: &[u8], piece: usize) -> blake3::Hash {
        let mut sink = ParallelSink::default();
        for p in data.chunks(piece.max(1)) {
            sink.write(p);
        }
        sink.finalize().0
    }

    #[test]
    fn equals_blake3_at_every_boundary() {
        let data: Vec<u8> = (0..(9 * BLOCK + 3000) as u32).map(|i| (i * 31 % 251) as u8).collect();
        let sizes = [
            0,
            1,
            1024,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            2 * BLOCK,
            2 * BLOCK + 1,
            3 * BLOCK + 17,
            4 * BLOCK,
            5 * BLOCK + 1024,
            8 * BLOCK,
            9 * BLOCK + 3000,
        ];
        for size in sizes {
            for piece in [1000, 4096, BLOCK, 3 * BLOCK] {
                assert_eq!(
                    parallel_hash(&data[..size], piece),
                    blake3::hash(&data[..size]),
                    "size {size} piece {piece}"
                );
            }
        }
    }

    #[test]
    fn normalised_hashes_match_the_single_core_ones() {
        let text = "line\r\n\n\n\n# ONEX:uid=1\n  tail \u{a0}\n".repeat(40_000);
        let single = onex_core::stamp::normalized_hash(text.as_bytes());
        let parallel = normalized_hash_pipelined(text.as_bytes());
        assert_eq!((parallel.hash, parallel.len, parallel.stamp_count), (single.hash, single.len, single.stamp_count));
    }

    #[test]
    fn content_that_normalises_to_one_block_or_less_is_hashed_as_its_root() {
        // Long enough to start a run on the second core, but normalised to one block or less.
        for (blank, body) in [(3 * BLOCK, "x".to_owned()), (2 * BLOCK, "y".repeat(BLOCK))] {
            let text = format!("{}{body}\n\n\n", " \n".repeat(blank / 2));
            let parallel = normalized_hash_pipelined(text.as_bytes());
            let single = onex_core::stamp::normalized_hash(text.as_bytes());
            assert_eq!((parallel.hash, parallel.len), (single.hash, single.len));
            assert_eq!(parallel.hash, blake3::hash(body.as_bytes()));
        }
    }

    #[test]
    fn a_sink_dropped_mid_run_releases_the_worker() {
        let mut sink = ParallelSink::default();
        sink.write(&vec![7u8; 3 * BLOCK]);
        let run = Arc::clone(sink.run.as_ref().expect("three blocks start a run"));
        drop(sink);
        // The worker lets go of a run once it is closed and drained; until then it waits for
        // the run's next block and serves no other run.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&run) > 1 {
            assert!(std::time::Instant::now() < deadline, "the worker still holds the dropped sink's run");
            std::thread::yield_now();
        }
        assert!(run.lock().closed);
    }

    #[test]
    fn concurrent_runs_do_not_mix() {
        let data: Vec<u8> = (0..(6 * BLOCK) as u32).map(|i| (i % 253) as u8).collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    let slice = &data[t * 1000..];
                    s.spawn(move || (parallel_hash(slice, 7000), blake3::hash(slice)))
                })
                .collect();
            for h in handles {
                let (got, want) = h.join().unwrap();
                assert_eq!(got, want);
            }
        });
    }
}
