//! Named random streams.
//!
//! Every source of randomness in a simulation (demand noise, measurement noise, dropped
//! scrapes, the effect of the deploy at step `t`, ...) draws from its own ChaCha8 stream,
//! keyed by the seed and the source's name, and consumes a fixed number of draws per step
//! whatever the action plan does. That is what makes twins exact: two runs of one seed
//! under different plans see the same demand, the same noise and the same failures, so
//! their difference is the effect of the plans alone. Adding a new source never shifts the
//! draws of the existing ones.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// 64-bit FNV-1a of a name: the stream number of a randomness source.
const fn stream_id(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The generator of source `name` under `seed`.
pub(crate) fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream_id(name));
    rng
}

/// The generator of event `index` (a step, a deploy, a channel) of source `name`: for
/// draws tied to something that happens in some runs and not in others.
pub(crate) fn stream_at(seed: u64, name: &str, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(stream_id(name));
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = stream(7, "demand").random_iter().take(4).collect();
        let b: Vec<u64> = stream(7, "demand").random_iter().take(4).collect();
        let c: Vec<u64> = stream(7, "noise").random_iter().take(4).collect();
        let d: Vec<u64> = stream(8, "demand").random_iter().take(4).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        let e: u64 = stream_at(7, "deploy", 3).random();
        let f: u64 = stream_at(7, "deploy", 4).random();
        assert_ne!(e, f);
    }
}
