//! What the differential tests (direct.rs, packed.rs, proto.rs) share.

/// Marsaglia's xorshift64: the same sequence on every run, so a failure can be replayed.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
