//! The run's seed and the fixed hash behind it and behind partitions.

/// The step after which a (workload, source) is dumped under `seed`: spread
/// over [nominal/2, 3*nominal/2] (and before the last step) so repeated runs
/// with different seeds hit different points, while one seed reproduces.
pub fn dump_point(seed: u64, workload: &str, src: &str, nominal: u32, steps: u32) -> u32 {
    let lo = (nominal / 2).max(1);
    let hi = (nominal + nominal / 2).min(steps.saturating_sub(2)).max(lo);
    let key = format!("{workload}/{src}");
    lo + (mix(seed ^ fnv1a(key.as_bytes())) % u64::from(hi - lo + 1)) as u32
}

/// FNV-1a: a fixed hash that never changes between releases.
pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// splitmix64 finaliser: spreads nearby seeds apart.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_point_is_reproducible_and_bounded() {
        for seed in 0..200 {
            let p = dump_point(seed, "counter", "6.1", 10, 40);
            assert!((5..=15).contains(&p), "{p}");
            assert_eq!(p, dump_point(seed, "counter", "6.1", 10, 40));
        }
        let points: std::collections::BTreeSet<u32> =
            (0..200).map(|s| dump_point(s, "counter", "6.1", 10, 40)).collect();
        assert!(points.len() > 5, "seeds should move the dump point: {points:?}");
        // Never at or past the last step, even for short workloads.
        assert!((0..50).all(|s| dump_point(s, "w", "k", 4, 5) <= 3));
    }
}
