//! Decoding many items on two threads with the output in item order.
//!
//! The calling thread takes blocks of items from the front, one helper thread from the
//! back, until they meet. Unlike fixed halves, neither waits for the other when one starts
//! late or is descheduled (a wake-up costs tens of µs on the machine this was tuned on,
//! and it is shared). Each block is decoded from its own first index, so the result is
//! what one thread would give.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Items per unit of work shared between the two threads.
const BLOCK_ITEMS: usize = 32;
/// Below this many items, one thread decodes them all (the hand-off would cost more).
pub const PARALLEL_MIN_ITEMS: usize = 64;

/// One helper thread for the whole process, kept between calls: starting a thread per read
/// cost about 7% of the loop thread (make bench profile). Only the loop thread calls in, so
/// one helper is enough for the two cores the server aims to use.
fn helper_pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "log-decode".to_string())
            .build()
            .expect("cannot start the decoder's helper thread")
    })
}

/// Decode items `0..items` into `out`, in order. `decode(range, out)` decodes the items of
/// `range` in order and returns how many it decoded and, if it stopped at a bad one, why;
/// then nothing after that item counts. Returns the same for all items. `bytes_per_item`
/// sizes the helper's buffers (a guess; they grow if needed).
pub fn decode_in_order<E: Send>(
    items: usize,
    bytes_per_item: usize,
    out: &mut String,
    decode: impl Fn(Range<usize>, &mut String) -> (usize, Option<E>) + Sync,
) -> (usize, Option<E>) {
    if items < PARALLEL_MIN_ITEMS {
        return decode(0..items, out);
    }
    let blocks = items.div_ceil(BLOCK_ITEMS);
    let block = |i: usize| i * BLOCK_ITEMS..((i + 1) * BLOCK_ITEMS).min(items);
    // Blocks taken so far by both threads: a claim succeeds while this is below `blocks`,
    // so the front's blocks 0, 1, ... and the back's blocks ..., blocks-2, blocks-1 never
    // overlap, and together they are all blocks (unless the front stopped early).
    let claimed = AtomicUsize::new(0);
    let mut back_parts = Vec::new();
    let front = helper_pool().in_place_scope(|scope| {
        scope.spawn(|_| {
            let mut index = blocks;
            while claimed.fetch_add(1, Ordering::Relaxed) < blocks {
                index -= 1;
                let range = block(index);
                let mut part = String::with_capacity(range.len() * bytes_per_item);
                let (count, stop) = decode(range.clone(), &mut part);
                back_parts.push((range.start, part, count, stop));
            }
        });
        let mut front = (0, None);
        let mut index = 0;
        while claimed.fetch_add(1, Ordering::Relaxed) < blocks {
            let range = block(index);
            let start = range.start;
            let (count, stop) = decode(range, out);
            front = (start + count, stop);
            index += 1;
            if front.1.is_some() {
                break; // later items do not count: leave the rest to the helper
            }
        }
        front
    });
    if front.1.is_some() {
        return front;
    }
    // The helper's blocks are the last ones, taken from the end: append them in order.
    for (start, part, count, stop) in back_parts.into_iter().rev() {
        out.push_str(&part);
        if stop.is_some() {
            return (start + count, stop);
        }
    }
    (items, None)
}
