//! Content held in memory, normalised and hashed on two cores. Large content is cut at a line
//! start near its middle: the worker normalises the second part while the caller normalises the
//! first, then each hashes one of the two subtrees under BLAKE3's root (its left subtree is the
//! largest power of two of chunks below the length), merged with `blake3::hazmat`. Streaming
//! normalisation alone cannot keep up with BLAKE3 on one core, so this halves it.
//!
//! A cut where one pass would have normalised differently (inside a rich stamp block, beside
//! whitespace that joins across it) is refused by the normaliser after the fact, and the content
//! goes through the streaming pipeline instead ([`super::parallel`]), as does content under
//! [`SPLIT_MIN`] or over [`SPLIT_MAX`]. A worker busy elsewhere does not hold the caller up:
//! whoever claims the second part first normalises and hashes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use blake3::hazmat::{ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_root};
use bytes::Bytes;
use onex_core::stamp::{NormalizeOutcome, NormalizedHash, Normalizer};

use super::parallel::{ParallelSink, normalized_hash_pipelined};
use super::worker::{self, Handoff};

/// Content shorter than this goes through the streaming pipeline: the split's fixed costs
/// (handing over, two output buffers) are not worth it.
pub const SPLIT_MIN: usize = 256 * 1024;
/// Content longer than this goes through the streaming pipeline, whose memory is bounded: the
/// split holds the whole normalised output.
pub const SPLIT_MAX: usize = 4 << 20;
/// How far past the middle a cut is looked for.
const CUT_WINDOW: usize = 64 * 1024;
/// Output buffers kept between runs (faulting in fresh pages for a 512 KiB buffer cost about as
/// much as normalising it), and the largest capacity kept.
const MAX_SPARE: usize = 2;
const MAX_SPARE_CAPACITY: usize = SPLIT_MAX / 2 + CUT_WINDOW;

static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn take_buffer(len: usize) -> Vec<u8> {
    let mut buffer = SPARE.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_default();
    buffer.reserve(len);
    buffer
}

fn give_back(mut buffer: Vec<u8>) {
    buffer.clear();
    let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
    if spare.len() < MAX_SPARE && buffer.capacity() <= MAX_SPARE_CAPACITY {
        spare.push(buffer);
    }
}

/// Normalises and hashes content: on two cores past one 64 KiB block, both normalising when
/// the content is large enough to split.
pub fn normalized_hash_parallel(content: &Bytes) -> NormalizedHash {
    normalized_hash_split(content).unwrap_or_else(|| normalized_hash_pipelined(content))
}

/// Raw BLAKE3 of binary content, on two cores past one 64 KiB block.
pub fn raw_hash_parallel(content: &Bytes) -> NormalizedHash {
    let last = content.last().copied();
    if content.len() >= SPLIT_MIN {
        return NormalizedHash::raw(raw_hash_split(content), content.len() as u64, last);
    }
    let mut sink = ParallelSink::with_len_hint(content.len());
    sink.write(content);
    let (hash, len) = sink.finalize();
    NormalizedHash::raw(hash, len, last)
}

/// Where large content is cut: past the middle, at the start of a line that begins with a
/// printable ASCII character (whitespace there would always join across the cut).
fn cut_point(content: &[u8]) -> Option<usize> {
    let from = content.len() / 2;
    let window = &content[from..content.len().min(from + CUT_WINDOW)];
    memchr::memchr_iter(b'\n', window)
        .map(|nl| from + nl + 1)
        .find(|&at| content.get(at).is_some_and(|b| b.is_ascii_graphic()))
}

/// The second part's normalisation: its output and outcome, `None` when its output cannot
/// follow the first part's (see `Normalizer::finish_continuing`).
type SecondPart = Option<(Vec<u8>, NormalizeOutcome)>;

/// One split run, shared by the caller and the worker.
struct Job {
    content: Bytes,
    cut: usize,
    /// Taken by whoever normalises the second part first.
    claimed: AtomicBool,
    second: Handoff<SecondPart>,
    /// The normalised parts and where the root splits them, for the worker's subtree; `None`
    /// when there is nothing left for it to do.
    plan: Handoff<Option<Plan>>,
    right: Handoff<ChainingValue>,
}

struct Plan {
    first: Arc<Vec<u8>>,
    second: Arc<Vec<u8>>,
    mid: usize,
}

fn normalize_second(content: &[u8], cut: usize) -> SecondPart {
    let mut out = take_buffer(content.len() - cut);
    let mut normalizer = Normalizer::continuing_at(cut as u64, content.len() - cut);
    normalizer.push(&content[cut..], &mut |b: &[u8]| out.extend_from_slice(b));
    match normalizer.finish_continuing(&mut |b: &[u8]| out.extend_from_slice(b)) {
        Some(outcome) => Some((out, outcome)),
        None => {
            give_back(out);
            None
        }
    }
}

/// The worker's share: the second part, then the root's right subtree once the caller says
/// where it starts.
fn on_worker(job: &Job) {
    if job.claimed.swap(true, Ordering::AcqRel) {
        return;
    }
    job.second.put(normalize_second(&job.content, job.cut));
    if let Some(Plan { first, second, mid }) = job.plan.take() {
        let len = first.len() + second.len();
        let cv = subtree(&first, &second, mid, len);
        drop((first, second));
        job.right.put(cv);
    }
}

/// Normalises and hashes `content` split in two, or `None` when it is not suited (size, no
/// cut, a cut the normaliser refuses): the caller then takes the streaming pipeline.
fn normalized_hash_split(content: &Bytes) -> Option<NormalizedHash> {
    if !(SPLIT_MIN..=SPLIT_MAX).contains(&content.len()) {
        return None;
    }
    let cut = cut_point(content)?;
    let job = Arc::new(Job {
        content: content.clone(),
        cut,
        claimed: AtomicBool::new(false),
        second: Handoff::default(),
        plan: Handoff::default(),
        right: Handoff::default(),
    });
    let shared = Arc::clone(&job);
    let on_worker_thread = worker::run(Box::new(move || on_worker(&shared))).is_ok();
    let mut first = take_buffer(cut + 1);
    let mut normalizer = Normalizer::with_len_hint(cut);
    normalizer.push(&content[..cut], &mut |b: &[u8]| first.extend_from_slice(b));
    let first_outcome = normalizer.end_at_split(&mut |b: &[u8]| first.extend_from_slice(b));
    // A worker that has not started (busy, or none) leaves the second part to the caller.
    let worker_has_it = on_worker_thread && job.claimed.swap(true, Ordering::AcqRel);
    let second = if worker_has_it { job.second.take() } else { normalize_second(content, cut) };
    let (first_outcome, (second, second_outcome)) = match (first_outcome, second) {
        (Ok(first_outcome), Some(second)) => (first_outcome, second),
        (_, second) => {
            if worker_has_it {
                job.plan.put(None);
            }
            give_back(first);
            if let Some((second, _)) = second {
                give_back(second);
            }
            return None;
        }
    };
    let outcome = first_outcome.then(second_outcome);
    let len = first.len() + second.len();
    let (first, second) = (Arc::new(first), Arc::new(second));
    let hash = if len <= blake3::CHUNK_LEN {
        if worker_has_it {
            job.plan.put(None);
        }
        blake3::Hasher::new().update(&first).update(&second).finalize()
    } else {
        let mid = usize::try_from(left_subtree_len(len as u64)).unwrap_or(len);
        let right = if worker_has_it {
            job.plan.put(Some(Plan { first: Arc::clone(&first), second: Arc::clone(&second), mid }));
            None
        } else {
            Some(subtree(&first, &second, mid, len))
        };
        let left = subtree(&first, &second, 0, mid);
        let right = right.unwrap_or_else(|| job.right.take());
        merge_subtrees_root(&left, &right, Mode::Hash)
    };
    // The worker let go of both before it handed over its subtree.
    for buffer in [first, second] {
        if let Ok(buffer) = Arc::try_unwrap(buffer) {
            give_back(buffer);
        }
    }
    Some(NormalizedHash::from_parts(outcome, hash, len as u64))
}

/// BLAKE3 hashes 16 chunks at a time (AVX-512) when fed whole, aligned runs of them.
const ALIGN: usize = 16 * blake3::CHUNK_LEN;

/// The chaining value of bytes `from..to` of `first` followed by `second`, a subtree of the
/// whole (`from` is 0 or the root's split). The bytes around the join are gathered into one
/// aligned piece: fed unaligned, BLAKE3 falls back to fewer chunks at a time for the rest of
/// the subtree (6 % slower over 512 KiB).
fn subtree(first: &[u8], second: &[u8], from: usize, to: usize) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(from as u64);
    let split = first.len();
    if to <= split {
        hasher.update(&first[from..to]);
    } else if from >= split {
        hasher.update(&second[from - split..to - split]);
    } else {
        let before = from + (split - from) / ALIGN * ALIGN;
        let after = to.min(before + 2 * ALIGN);
        let mut joint = Vec::with_capacity(after - before);
        joint.extend_from_slice(&first[before..]);
        joint.extend_from_slice(&second[..after - split]);
        hasher.update(&first[from..before]).update(&joint).update(&second[after - split..to - split]);
    }
    hasher.finalize_non_root()
}

/// Raw BLAKE3 of large content: the worker hashes the root's right subtree while the caller
/// hashes the left (or the caller both, when the worker has not started).
fn raw_hash_split(content: &Bytes) -> blake3::Hash {
    struct RawJob {
        content: Bytes,
        mid: usize,
        claimed: AtomicBool,
        right: Handoff<ChainingValue>,
    }
    let len = content.len();
    let mid = usize::try_from(left_subtree_len(len as u64)).unwrap_or(len);
    let job =
        Arc::new(RawJob { content: content.clone(), mid, claimed: AtomicBool::new(false), right: Handoff::default() });
    let shared = Arc::clone(&job);
    let on_worker_thread = worker::run(Box::new(move || {
        if !shared.claimed.swap(true, Ordering::AcqRel) {
            shared.right.put(subtree(&shared.content, &[], shared.mid, shared.content.len()));
        }
    }))
    .is_ok();
    let left = subtree(content, &[], 0, mid);
    let worker_has_it = on_worker_thread && job.claimed.swap(true, Ordering::AcqRel);
    let right = if worker_has_it { job.right.take() } else { subtree(content, &[], mid, len) };
    merge_subtrees_root(&left, &right, Mode::Hash)
}

#[cfg(test)]
mod tests {
    use onex_core::stamp::normalized_hash;

    use super::*;

    /// Python-like source: lines of content, blank runs to collapse, indentation.
    fn source(len: usize) -> Bytes {
        let unit = "def handler(event):\r\n    return 1\n\n\n\nx = '\u{a0}'  \n";
        Bytes::from(unit.repeat(len / unit.len() + 1).into_bytes())
    }

    fn same(split: &NormalizedHash, single: &NormalizedHash) {
        assert_eq!((split.hash, split.len, split.stamp_count), (single.hash, single.len, single.stamp_count));
        assert_eq!((&split.stamps, &split.body), (&single.stamps, &single.body));
    }

    #[test]
    fn split_content_hashes_as_one_pass_does() {
        for len in [SPLIT_MIN, SPLIT_MIN + 4097, 1 << 20, 3 << 20] {
            let content = source(len);
            let split = normalized_hash_split(&content).expect("source text is cut at a line of content");
            same(&split, &normalized_hash(&content));
            same(&normalized_hash_parallel(&content), &split);
        }
    }

    #[test]
    fn stamps_on_both_sides_of_the_cut_are_found_in_order() {
        let half = "# ONEX:uid=1\n".to_owned() + &"body line\n".repeat(SPLIT_MIN / 10);
        let content = Bytes::from(format!("{half}{half}").into_bytes());
        let split = normalized_hash_split(&content).expect("a cut between lines of content");
        same(&split, &normalized_hash(&content));
        let offsets: Vec<u64> = split.stamps.iter().map(|s| s.offset).collect();
        assert_eq!(offsets, [0, half.len() as u64]);
    }

    #[test]
    fn a_refused_cut_falls_back_to_the_pipeline() {
        // Every line after the middle is inside an unterminated rich block: the cut is refused.
        let text = format!("{}<!-- ONEX_METADATA_START -->\n{}", "a\n".repeat(SPLIT_MIN / 2), "b\n".repeat(SPLIT_MIN));
        let content = Bytes::from(text.into_bytes());
        assert!(normalized_hash_split(&content).is_none());
        same(&normalized_hash_parallel(&content), &normalized_hash(&content));
    }

    #[test]
    fn content_normalised_to_one_chunk_or_less_is_hashed_as_its_root() {
        // Blank lines around `x` and `y`, the middle of the content among those before them.
        let (before, after) = (140_000, SPLIT_MIN - 140_000 + 100);
        let text = format!("{}x\ny\n{}", " \n".repeat(before / 2), "\n".repeat(after));
        let content = Bytes::from(text.into_bytes());
        let split = normalized_hash_split(&content).expect("the cut before `y` is accepted");
        assert_eq!(split.hash, blake3::hash(b"x\ny"));
    }

    #[test]
    fn a_busy_worker_leaves_both_parts_to_the_caller() {
        let gate = Arc::new(Handoff::<()>::default());
        let held = Arc::clone(&gate);
        assert!(worker::run(Box::new(move || held.take())).is_ok());
        // The worker is held by the task above: the split's task waits behind it, so the
        // caller claims the second part and does everything itself.
        let content = source(1 << 20);
        same(&normalized_hash_split(&content).expect("split"), &normalized_hash(&content));
        assert_eq!(raw_hash_parallel(&content).hash, blake3::hash(&content));
        gate.put(());
    }

    #[test]
    fn subtrees_over_two_buffers_merge_into_blake3_wherever_they_join() {
        let data: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let mid = usize::try_from(left_subtree_len(data.len() as u64)).unwrap();
        for join in
            [0, 1, 1024, ALIGN - 1, ALIGN + 5, mid - ALIGN - 3, mid - 1, mid, mid + 1, mid + 3 * ALIGN + 7, 399_999]
        {
            let (first, second) = data.split_at(join);
            let left = subtree(first, second, 0, mid);
            let right = subtree(first, second, mid, data.len());
            assert_eq!(merge_subtrees_root(&left, &right, Mode::Hash), blake3::hash(&data), "joined at {join}");
        }
    }

    #[test]
    fn raw_hashes_equal_blake3_around_the_split_sizes() {
        let data: Bytes = (0..(3 << 20) as u32).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>().into();
        for len in [SPLIT_MIN - 1, SPLIT_MIN, SPLIT_MIN + 1, 1 << 20, (1 << 20) + 1025, 3 << 20] {
            let content = data.slice(..len);
            assert_eq!(raw_hash_parallel(&content).hash, blake3::hash(&content), "{len} bytes");
        }
    }
}
