//! Exact statistics over a window's raw samples.
//!
//! Every figure is computed from the samples themselves, never from running sums: the mean
//! and the population standard deviation in two passes, the median and p95 by selection
//! (linear interpolation between the closest ranks, numpy's default), so a reply matches
//! what anyone computes from the same samples.

use protocol::metrics::Statistics;

/// Computes the statistics of `values`; reorders the slice.
pub(crate) fn statistics(values: &mut [f64]) -> Statistics {
    let count = values.len();
    if count == 0 {
        return Statistics::default();
    }
    let n = count as f64;
    let avg = values.iter().sum::<f64>() / n;
    let variance = values
        .iter()
        .map(|value| (value - avg) * (value - avg))
        .sum::<f64>()
        / n;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let median = quantile(values, 0.5);
    let p95 = quantile(values, 0.95);
    Statistics {
        count: count as u64,
        min: Some(min),
        max: Some(max),
        avg: Some(avg),
        median: Some(median),
        stddev: Some(variance.sqrt()),
        p95: Some(p95),
    }
}

/// The `q` quantile by linear interpolation between the closest ranks, in O(n) by
/// selection; `values` must be non-empty and is reordered.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    let position = q * (values.len() - 1) as f64;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "position is within 0..len, so its floor is a valid index"
    )]
    let lower = position.floor() as usize;
    let fraction = position - lower as f64;
    let (_, lower_value, above) = values.select_nth_unstable_by(lower, f64::total_cmp);
    let lower_value = *lower_value;
    if fraction == 0.0 || above.is_empty() {
        return lower_value;
    }
    let upper_value = above.iter().copied().fold(f64::INFINITY, f64::min);
    lower_value + (upper_value - lower_value) * fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
    }

    #[test]
    fn empty_windows_have_only_a_count() {
        assert_eq!(statistics(&mut []), Statistics::default());
    }

    #[test]
    fn figures_match_their_textbook_definitions() {
        let mut values = [7.0, 1.0, 3.0, 5.0, 9.0, 2.0];
        let stats = statistics(&mut values);
        assert_eq!(stats.count, 6);
        assert_eq!((stats.min, stats.max), (Some(1.0), Some(9.0)));
        assert!(close(stats.avg, 27.0 / 6.0));
        // sorted: 1 2 3 5 7 9 → median (3+5)/2
        assert!(close(stats.median, 4.0));
        // position 0.95·5 = 4.75 → 7 + 0.75·(9−7)
        assert!(close(stats.p95, 8.5));
        let mean = 4.5;
        let variance = [7.0, 1.0, 3.0, 5.0, 9.0, 2.0]
            .iter()
            .map(|v: &f64| (v - mean) * (v - mean))
            .sum::<f64>()
            / 6.0;
        assert!(close(stats.stddev, variance.sqrt()));
    }

    #[test]
    fn one_value_is_every_quantile() {
        let stats = statistics(&mut [42.0]);
        assert_eq!(stats.median, Some(42.0));
        assert_eq!(stats.p95, Some(42.0));
        assert_eq!(stats.stddev, Some(0.0));
    }

    #[test]
    fn quantiles_agree_with_a_full_sort_on_many_values() {
        let mut state = 12345u64;
        let mut values: Vec<f64> = (0..1001)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (state >> 11) as f64 / (1u64 << 53) as f64 * 100.0
            })
            .collect();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let stats = statistics(&mut values);
        assert_eq!(stats.median, Some(sorted[500]));
        assert_eq!(stats.p95, Some(sorted[950]));
    }
}
