//! A LoggerMsg's fields read straight from its one segment, without the capnp crate's
//! reader: the crate's pointer reads (segment lookup, far-pointer check, bounds and read
//! limit, each through a trait object) were a tenth of the server's CPU under load.
//!
//! It reads only the common shape: one segment, a struct root, text pointers within the
//! segment, no attributes. For anything else, and for anything the crate would refuse, it
//! gives None and the caller reads the message with the crate, which then gives the same
//! fields or its own error. So where it gives Some, the fields are the crate's, byte for byte
//! (checked on every test vector and on mutated messages, `tests` below).

use capnp::message::ReaderOptions;

use crate::format::{Fields, Text};
/// The pointer index of `attributes` (schema/logger.capnp).
const ATTRIBUTES: usize = 15;

fn word(segment: &[u8], at: usize) -> Option<u64> {
    let bytes = segment.get(at * 8..at * 8 + 8)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// A pointer's target, as the crate's `target_from_segment` and `check_offset`: the word
/// after the pointer plus its signed 30-bit offset, within the segment (its end included).
fn target(pointer: u64, at: usize, words: usize) -> Option<usize> {
    let offset = i64::from((pointer as u32 as i32) >> 2);
    let target = at as i64 + 1 + offset;
    (0..=words as i64).contains(&target).then_some(target as usize)
}

/// The read limit, as the crate's `ReadLimiter`: every interval it checks is counted.
struct Budget(Option<usize>);

impl Budget {
    fn take(&mut self, words: usize) -> Option<()> {
        if let Some(left) = &mut self.0 {
            *left = left.checked_sub(words)?;
        }
        Some(())
    }
}

/// The fields of a message whose only segment is `segment`, or None (see the module's doc).
pub fn fields<'a>(segment: &'a [u8], options: &ReaderOptions) -> Option<Fields<'a>> {
    let words = segment.len() / 8;
    let mut budget = Budget(options.traversal_limit_in_words);
    budget.take(1)?; // the root pointer
    let root = word(segment, 0)?;
    // A null root (an empty struct) is left to the crate, as is any non-struct pointer.
    if root == 0 || root & 3 != 0 || options.nesting_limit <= 0 {
        return None;
    }
    let start = target(root, 0, words)?;
    let data_words = ((root >> 32) & 0xffff) as usize;
    let pointer_count = (root >> 48) as usize;
    let pointers = start + data_words;
    if pointers + pointer_count > words {
        return None;
    }
    budget.take(data_words + pointer_count)?;
    let level = if data_words >= 1 { u16::from_le_bytes([segment[start * 8], segment[start * 8 + 1]]) } else { 0 };
    if pointer_count > ATTRIBUTES && word(segment, pointers + ATTRIBUTES)? != 0 {
        return None;
    }
    let mut text = Text::empty_fields();
    for (i, field) in text.iter_mut().enumerate().take(pointer_count) {
        let at = pointers + i;
        let pointer = word(segment, at)?;
        if pointer == 0 {
            continue; // null: the default, empty text
        }
        // A list (kind 1) of bytes (element size 2); far pointers and the rest go to the crate.
        if pointer & 3 != 1 || (pointer >> 32) & 7 != 2 {
            return None;
        }
        let count = (pointer >> 35) as usize;
        let start = target(pointer, at, words)?;
        let size = count.div_ceil(8);
        if start + size > words {
            return None;
        }
        budget.take(size)?;
        // Text ends with a NUL, which is not part of it.
        let bytes = segment.get(start * 8..start * 8 + count)?;
        let (&0, bytes) = bytes.split_last()? else {
            return None;
        };
        *field = Text::from_utf8_lossy(bytes);
    }
    Some(Fields { text, level: i64::from(level), attributes: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logger_capnp::logger_msg;
    use crate::testing::xorshift;
    use capnp::message::Builder;

    fn options() -> ReaderOptions {
        let mut options = ReaderOptions::new();
        options.traversal_limit_in_words(Some(4096)).nesting_limit(16);
        options
    }

    /// What the crate reads: (the 15 texts, level), or None when it refuses the message.
    fn by_crate(segment: &[u8], options: &ReaderOptions) -> Option<(Vec<String>, i64, bool)> {
        let segments: &[&[u8]] = &[segment];
        let message = capnp::message::Reader::new(capnp::message::SegmentArray::new(segments), *options);
        let root: logger_msg::Reader = message.get_root().ok()?;
        let fields = crate::fields_of(root).ok()?;
        Some((fields.text.iter().map(|t| t.text.to_string()).collect(), fields.level, !fields.attributes.is_empty()))
    }

    fn sample(attributes: bool) -> Vec<u8> {
        let mut builder = Builder::new_default();
        let mut msg = builder.init_root::<logger_msg::Builder>();
        msg.set_timestamp("2026-12-08T04:00:00Z");
        msg.set_hostname("host-é");
        msg.set_logger_name("app");
        msg.set_level(crate::logger_capnp::Level::Warning);
        msg.set_message("a message of some length, \"quoted\" and\nsplit");
        msg.set_thread_name("");
        if attributes {
            let mut list = msg.init_attributes(1);
            list.reborrow().get(0).set_key("k");
            list.get(0).set_value("v");
        }
        let segments = builder.get_segments_for_output();
        assert_eq!(segments.len(), 1);
        segments[0].to_vec()
    }

    fn check(segment: &[u8], options: &ReaderOptions) -> bool {
        let expected = by_crate(segment, options);
        match fields(segment, options) {
            Some(f) => {
                let got = (f.text.iter().map(|t| t.text.to_string()).collect(), f.level, false);
                assert_eq!(Some(got), expected, "read directly, unlike the crate: {segment:02x?}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn common_messages_are_read_directly_as_the_crate_reads_them() {
        assert!(check(&sample(false), &options()));
        assert!(!check(&sample(true), &options()), "attributes go to the crate");
        let mut tight = options();
        tight.traversal_limit_in_words(Some(8));
        assert!(!check(&sample(false), &tight), "over the read limit: the crate's error");
        let mut unlimited = options();
        unlimited.traversal_limit_in_words(None);
        assert!(check(&sample(false), &unlimited));
    }

    #[test]
    fn shorter_structs_of_older_schemas_read_as_defaults() {
        let mut builder = Builder::new_default();
        builder.init_root::<logger_msg::Builder>().set_message("m");
        let full = builder.get_segments_for_output()[0].to_vec();
        assert!(check(&full, &options()));
        let mut segment = full.clone();
        // Cut the pointer count to 7 (message is index 7: now beyond it, so empty), data to 0.
        let root = u64::from_le_bytes(segment[..8].try_into().unwrap());
        let root = (root & 0xffff_ffff) | (7 << 48);
        segment[..8].copy_from_slice(&root.to_le_bytes());
        assert!(check(&segment, &options()));
    }

    #[test]
    fn mutated_messages_are_read_directly_only_where_the_crate_agrees() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || xorshift(&mut seed);
        let mut direct = 0;
        for original in [sample(false), sample(true)] {
            for _ in 0..20_000 {
                let mut segment = original.clone();
                for _ in 0..1 + next() % 3 {
                    let at = (next() as usize) % segment.len();
                    segment[at] = match next() % 4 {
                        0 => next() as u8,
                        1 => segment[at] ^ (1 << (next() % 8)),
                        2 => 0,
                        _ => segment[at].wrapping_add(1),
                    };
                }
                let cut = if next() % 8 == 0 { (next() as usize % (segment.len() / 8 + 1)) * 8 } else { segment.len() };
                if check(&segment[..cut], &options()) {
                    direct += 1;
                }
            }
        }
        assert!(direct > 1000, "only {direct} mutated messages were read directly");
    }
}
