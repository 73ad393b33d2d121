//! Which replica owns which metric: rendezvous (highest-random-weight) hashing over the live
//! replicas. Every replica computes the same owner from the same member list, and when a
//! replica joins or leaves only the metrics it gains or loses move.
//!
//! The hash is FNV-1a followed by the SplitMix64 finaliser: stable across processes and
//! versions (unlike `std`'s randomly seeded hasher), cheap, and well mixed.

/// Returns the owner of `metric` among `members` (`None` when there are none).
pub(crate) fn owner<'a>(metric: &str, members: &'a [String]) -> Option<&'a str> {
    members
        .iter()
        .max_by_key(|member| (weight(member, metric), member.as_str()))
        .map(String::as_str)
}

fn weight(member: &str, metric: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in member
        .bytes()
        .chain(std::iter::once(0xff))
        .chain(metric.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    // SplitMix64 finaliser.
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn every_metric_has_one_owner_and_the_split_is_even() {
        let two = members(&["agg-a", "agg-b"]);
        let owned_by_a = (0..1000)
            .filter(|i| owner(&format!("metric.{i}"), &two) == Some("agg-a"))
            .count();
        assert!((400..600).contains(&owned_by_a), "{owned_by_a}");
        assert_eq!(owner("x", &[]), None);
    }

    #[test]
    fn only_the_leaving_replicas_metrics_move() {
        let three = members(&["a", "b", "c"]);
        let two = members(&["a", "b"]);
        for i in 0..500 {
            let metric = format!("m{i}");
            let before = owner(&metric, &three).unwrap();
            let after = owner(&metric, &two).unwrap();
            if before != "c" {
                assert_eq!(before, after, "{metric} moved although its owner stayed");
            }
        }
    }

    #[test]
    fn member_order_does_not_matter() {
        let forward = members(&["a", "b", "c"]);
        let backward = members(&["c", "b", "a"]);
        for i in 0..100 {
            let metric = format!("m{i}");
            assert_eq!(owner(&metric, &forward), owner(&metric, &backward));
        }
    }
}
