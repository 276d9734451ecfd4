//! Cap'n Proto's packed encoding, unpacked from a frame that is whole in memory.
//!
//! The capnp crate's `serialize_packed` reads through `BufRead`, refilling and re-checking its
//! buffer byte by byte: a quarter of the compiled decoder's instructions per message (measured
//! with callgrind, docs/benchmarks.md). A frame is one slice, so each word needs one bounds
//! check. The rules are the crate's (and C++'s, which pycapnp uses): a read ends at EOF only
//! on a word boundary before any input, and a run of zero or literal words may not cross the
//! end of a read, so both decoders refuse the same frames.

use capnp::{Error, ErrorKind, Result};

pub struct PackedSlice<'a> {
    input: &'a [u8],
}

impl<'a> PackedSlice<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        PackedSlice { input }
    }
}

fn premature() -> Error {
    Error::from_kind(ErrorKind::PrematureEndOfPackedInput)
}

fn run_too_long() -> Error {
    Error::from_kind(ErrorKind::PackedInputDidNotEndCleanlyOnASegmentBoundary)
}

impl capnp::io::Read for PackedSlice<'_> {
    fn read(&mut self, out: &mut [u8]) -> Result<usize> {
        assert!(out.len().is_multiple_of(8), "packed reads are whole words");
        if out.is_empty() || self.input.is_empty() {
            return Ok(0);
        }
        let mut words = out.chunks_exact_mut(8);
        while let Some(word) = words.next() {
            let (&tag, rest) = self.input.split_first().ok_or_else(premature)?;
            match tag {
                0x00 => {
                    word.fill(0);
                    let (&count, rest) = rest.split_first().ok_or_else(premature)?;
                    if usize::from(count) > words.len() {
                        return Err(run_too_long());
                    }
                    for _ in 0..count {
                        words.next().expect("counted above").fill(0);
                    }
                    self.input = rest;
                }
                0xff => {
                    word.copy_from_slice(rest.get(..8).ok_or_else(premature)?);
                    let (&count, rest) = rest[8..].split_first().ok_or_else(premature)?;
                    if usize::from(count) > words.len() {
                        return Err(run_too_long());
                    }
                    // The crate reads a literal run's tail straight from its source.
                    let run = rest
                        .get(..usize::from(count) * 8)
                        .ok_or_else(|| Error::from_kind(ErrorKind::FailedToFillTheWholeBuffer))?;
                    for source in run.chunks_exact(8) {
                        words.next().expect("counted above").copy_from_slice(source);
                    }
                    self.input = &rest[run.len()..];
                }
                _ => {
                    let present = tag.count_ones() as usize;
                    let bytes = rest.get(..present).ok_or_else(premature)?;
                    // One step per byte present (a pointer word has few), not per bit.
                    let (mut value, mut bits) = (0u64, tag);
                    for &byte in bytes {
                        value |= u64::from(byte) << (bits.trailing_zeros() * 8);
                        bits &= bits - 1;
                    }
                    word.copy_from_slice(&value.to_le_bytes());
                    self.input = &rest[present..];
                }
            }
        }
        Ok(out.len())
    }
}

#[cfg(test)]
mod tests {
    use super::PackedSlice;
    use capnp::message::{Builder, ReaderOptions, ReaderSegments};
    use capnp::{serialize, serialize_packed, Word};

    /// Ok(segments) or Err(kind), from the crate's packed reader or from ours.
    fn outcome(input: &[u8], ours: bool) -> Result<Vec<Vec<u8>>, String> {
        let mut buffer = Word::allocate_zeroed_vec(4096);
        let bytes = Word::words_to_bytes_mut(&mut buffer);
        let options = ReaderOptions::new();
        let message = if ours {
            serialize::read_message_no_alloc(PackedSlice::new(input), bytes, options)
        } else {
            serialize_packed::read_message_no_alloc(input, bytes, options)
        };
        let segments = message
            .map_err(|e| format!("{:?}", e.kind))?
            .into_segments();
        Ok((0..)
            .map_while(|i| segments.get_segment(i))
            .map(<[u8]>::to_vec)
            .collect())
    }

    fn sample_messages() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for n in [0usize, 1, 7, 8, 9, 100, 2100] {
            let mut builder = Builder::new_default();
            let mut msg = builder.init_root::<crate::logger_capnp::logger_msg::Builder>();
            msg.set_message(&"x=y \"q\" ".repeat(n)[..]);
            msg.set_hostname("host");
            msg.set_level(crate::logger_capnp::Level::Warning);
            let mut packed = Vec::new();
            serialize_packed::write_message(&mut packed, &builder).unwrap();
            out.push(packed);
        }
        out
    }

    #[test]
    fn unpacks_what_the_crate_packs() {
        for packed in sample_messages() {
            let got = outcome(&packed, true);
            assert!(got.is_ok(), "{got:?}");
            assert_eq!(got, outcome(&packed, false));
        }
    }

    #[test]
    fn agrees_with_the_crate_on_cut_and_mutated_input() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = move || crate::testing::xorshift(&mut state);
        for packed in sample_messages() {
            for cut in 0..packed.len().min(300) {
                assert_eq!(
                    outcome(&packed[..cut], true),
                    outcome(&packed[..cut], false),
                    "cut {cut}"
                );
            }
            for _ in 0..3000 {
                let mut bytes = packed.clone();
                for _ in 0..1 + random() % 4 {
                    let at = (random() as usize) % bytes.len();
                    bytes[at] = match random() % 4 {
                        0 => 0,
                        1 => 0xff,
                        _ => random() as u8,
                    };
                }
                assert_eq!(
                    outcome(&bytes, true),
                    outcome(&bytes, false),
                    "{bytes:02x?}"
                );
            }
        }
    }
}
