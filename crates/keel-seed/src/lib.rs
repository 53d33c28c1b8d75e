//! The random numbers behind keel's seeded draws and shuffles (a quiz attempt's questions
//! and choices, an interview's questions): SplitMix64, Lemire's unbiased bounded integers
//! and Fisher-Yates, written out here so that a seed stored with an attempt or a session
//! replays the same questions in the same order forever. One crate, shared by `keel-quiz`
//! and `keel-interview`, so the two cannot drift apart; it depends on nothing.
//!
//! Why not `rand`: its `StdRng` may change algorithm between versions, and even with a
//! fixed generator (`rand_chacha`) its `gen_range`/`shuffle` have changed how they consume
//! the stream between 0.8 and 0.9. An attempt stored today must show the same order after
//! any dependency upgrade, so every step from seed to order is in this file and pinned by
//! test vectors. Statistical quality needs are modest (a few dozen items), and SplitMix64
//! passes BigCrush.

#![forbid(unsafe_code)]

/// SplitMix64 (Steele, Lea and Flood, 2014; the reference `splitmix64.c` by Vigna).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix64 {
    /// A generator whose first output is `mix(seed + GAMMA)`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// A uniform integer in `0..n` (`n > 0`; 0 for `n == 0`), by Lemire's multiply-and-
    /// reject method ("Fast random integer generation in an interval", 2019): take the high
    /// 64 bits of `x * n`, rejecting the few `x` whose low bits fall below `2^64 mod n`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        let mut low = m as u64; // truncation wanted: the low 64 bits
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// Fisher-Yates (Durstenfeld): for `i` from the last index down to 1, swap item `i` with
    /// item `below(i + 1)`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// SplitMix64's output function (Stafford's "Mix13"), also used to derive sub-stream seeds.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An independent generator for one purpose (`domain`) and one item (`id`) of an attempt:
/// seeded with `mix(seed ^ mix(domain ^ mix(id)))`, so that the order of one question's
/// choices does not depend on which other questions were drawn.
pub fn stream(seed: u64, domain: u64, id: u64) -> SplitMix64 {
    SplitMix64::new(mix(seed ^ mix(domain ^ mix(id))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_vectors() {
        // Outputs of Vigna's splitmix64.c seeded with 1234567 (the vectors other ports test).
        let mut r = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ]
        );
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = SplitMix64::new(7);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            let x = r.below(7) as usize;
            assert!(x < 7);
            seen[x] += 1;
        }
        // Each bucket expects 1000; 800 is > 6 standard deviations away.
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn shuffle_is_pinned() {
        // If this changes, every stored attempt would replay differently: never update it
        // without a migration that keeps old seeds on the old algorithm.
        let mut items: Vec<u32> = (0..10).collect();
        SplitMix64::new(42).shuffle(&mut items);
        assert_eq!(items, PINNED_SHUFFLE_SEED_42);
    }

    const PINNED_SHUFFLE_SEED_42: [u32; 10] = [8, 3, 6, 5, 4, 0, 9, 2, 1, 7];
}
