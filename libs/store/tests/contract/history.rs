//! Metric history, group membership and claims (the aggregator's use of the store).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use store::history::{HOUR_MS, HistoryWrite, MINUTE_MS, MinuteRollup, RawSample};
use store::{Store, StoreError};

use crate::harness::{SHORT_TTL, eventually};

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis(),
    )
    .expect("milliseconds fit u64")
}

fn sample(ts_ms: u64, value: f64) -> RawSample {
    RawSample { ts_ms, value }
}

pub async fn raw_samples_come_back_in_time_order_without_duplicates(
    store: &Store,
) -> Result<(), StoreError> {
    let now = now_ms();
    let older = now - 10 * MINUTE_MS;
    let first = vec![sample(now - 1_000, 3.0), sample(older, 1.0)];
    let second = vec![sample(now - 1_000, 3.0), sample(now - 500, -2.5)];
    for samples in [first, second] {
        store
            .write_history(&[HistoryWrite::AppendRaw {
                metric: "a.b".into(),
                samples,
            }])
            .await?;
    }
    let read = store
        .raw_samples(&["a.b".into(), "other".into()], now - HOUR_MS, now)
        .await?;
    assert_eq!(
        read[0],
        vec![
            sample(older, 1.0),
            sample(now - 1_000, 3.0),
            sample(now - 500, -2.5)
        ]
    );
    assert!(read[1].is_empty());
    let recent = store.raw_samples(&["a.b".into()], older, now).await?;
    assert_eq!(recent[0].len(), 2, "samples at `after` are excluded");
    Ok(())
}

pub async fn replacing_a_raw_minute_keeps_exactly_the_given_samples(
    store: &Store,
) -> Result<(), StoreError> {
    let now = now_ms();
    let minute_start = (now - 5 * MINUTE_MS) / MINUTE_MS * MINUTE_MS;
    let appended: Vec<RawSample> = (0..3).map(|i| sample(minute_start + i, 1.0)).collect();
    store
        .write_history(&[
            HistoryWrite::AppendRaw {
                metric: "m".into(),
                samples: appended,
            },
            HistoryWrite::ReplaceRawMinute {
                metric: "m".into(),
                minute_start_ms: minute_start,
                samples: vec![sample(minute_start + 7, 2.0), sample(minute_start + 9, 4.0)],
            },
        ])
        .await?;
    let read = store.raw_samples(&["m".into()], now - HOUR_MS, now).await?;
    assert_eq!(
        read[0],
        vec![sample(minute_start + 7, 2.0), sample(minute_start + 9, 4.0)]
    );
    Ok(())
}

pub async fn history_returns_rollups_before_the_raw_hour_and_samples_after(
    store: &Store,
) -> Result<(), StoreError> {
    let now = now_ms();
    let raw_after = now - HOUR_MS;
    let minutes_ago = |n: u64| (now - n * MINUTE_MS) / MINUTE_MS * MINUTE_MS;
    let mut writes = Vec::new();
    for n in [200, 150, 61, 30] {
        let rollup = MinuteRollup::from_values(minutes_ago(n), &[n as f64, 2.0 * n as f64])
            .expect("two values");
        writes.push(HistoryWrite::PutRollup {
            metric: "h".into(),
            rollup,
        });
    }
    writes.push(HistoryWrite::AppendRaw {
        metric: "h".into(),
        samples: vec![sample(now - 2 * MINUTE_MS, 5.0)],
    });
    store.write_history(&writes).await?;

    let history = store
        .metric_history("h", now - 3 * HOUR_MS, raw_after, now)
        .await?;
    let starts: Vec<u64> = history
        .rollups
        .iter()
        .map(|rollup| rollup.minute_start_ms)
        .collect();
    assert_eq!(starts, vec![minutes_ago(150), minutes_ago(61)]);
    let rollup = history.rollups[0];
    assert_eq!((rollup.count, rollup.min, rollup.max), (2, 150.0, 300.0));
    assert_eq!(rollup.avg, 225.0);
    assert!((rollup.stddev - 75.0).abs() < 1e-4);
    assert_eq!(history.samples, vec![sample(now - 2 * MINUTE_MS, 5.0)]);
    Ok(())
}

pub async fn summaries_are_listed_by_metric_and_can_be_removed(
    store: &Store,
) -> Result<(), StoreError> {
    store
        .write_history(&[
            HistoryWrite::PutSummary {
                metric: "z".into(),
                summary: vec![1, 2],
            },
            HistoryWrite::PutSummary {
                metric: "a".into(),
                summary: vec![3],
            },
            HistoryWrite::PutSummary {
                metric: "z".into(),
                summary: vec![9],
            },
        ])
        .await?;
    assert_eq!(
        store.metric_summaries().await?,
        vec![("a".to_owned(), vec![3]), ("z".to_owned(), vec![9])]
    );
    store
        .write_history(&[HistoryWrite::RemoveSummary { metric: "a".into() }])
        .await?;
    assert_eq!(store.metric_summaries().await?.len(), 1);
    Ok(())
}

pub async fn members_are_live_until_removed_or_expired(store: &Store) -> Result<(), StoreError> {
    store
        .register_member("workers", "b", Duration::from_secs(60))
        .await?;
    store.register_member("workers", "a", SHORT_TTL).await?;
    store
        .register_member("others", "c", Duration::from_secs(60))
        .await?;
    assert_eq!(store.live_members("workers").await?, vec!["a", "b"]);
    store.remove_member("workers", "b").await?;
    eventually("the short registration expires", async || {
        store
            .live_members("workers")
            .await
            .map(|members| members.is_empty())
    })
    .await;
    assert_eq!(store.live_members("others").await?, vec!["c"]);
    Ok(())
}

pub async fn a_claim_is_granted_once_until_it_expires(store: &Store) -> Result<(), StoreError> {
    assert!(store.claim_once("alert:x", SHORT_TTL).await?);
    assert!(!store.claim_once("alert:x", SHORT_TTL).await?);
    assert!(store.claim_once("alert:y", SHORT_TTL).await?);
    eventually("the claim expires", async || {
        store.claim_once("alert:x", SHORT_TTL).await
    })
    .await;
    Ok(())
}

/// Seven days of one metric at one sample per second: 10,080 one-minute roll-ups, the last
/// hour raw (3,600 samples) and a summary entry, measured with `MEMORY USAGE`.
#[tokio::test]
async fn seven_days_of_one_metric_take_less_than_500_kb_in_redis() {
    let backend = crate::harness::Backend::redis("history_bytes").await;
    let store = &backend.store;
    let now = now_ms();
    let first_minute = now / MINUTE_MS - 7 * 24 * 60;
    let mut writes = Vec::new();
    for minute in first_minute..now / MINUTE_MS {
        let start = minute * MINUTE_MS;
        let values: Vec<f64> = (0..60)
            .map(|i| (minute % 97) as f64 + i as f64 * 0.5)
            .collect();
        writes.push(HistoryWrite::PutRollup {
            metric: "node.cpu_percent".into(),
            rollup: MinuteRollup::from_values(start, &values).expect("sixty values"),
        });
    }
    // The raw hour as the aggregator writes it: appended every second, and each complete
    // minute rewritten at its exact size.
    let raw_from = now - store::history::RAW_RETENTION_MS;
    for second in 0..3_600u64 {
        let ts_ms = raw_from + second * 1_000 + 1;
        writes.push(HistoryWrite::AppendRaw {
            metric: "node.cpu_percent".into(),
            samples: vec![sample(ts_ms, 40.0 + (second % 17) as f64)],
        });
    }
    for minute in raw_from / MINUTE_MS..now / MINUTE_MS {
        let samples: Vec<RawSample> = (0..60)
            .map(|i| minute * MINUTE_MS + i * 1_000 + 1)
            .filter(|ts| *ts > raw_from)
            .map(|ts| sample(ts, 40.0 + (ts % 17) as f64))
            .collect();
        writes.push(HistoryWrite::ReplaceRawMinute {
            metric: "node.cpu_percent".into(),
            minute_start_ms: minute * MINUTE_MS,
            samples,
        });
    }
    writes.push(HistoryWrite::PutSummary {
        metric: "node.cpu_percent".into(),
        summary: vec![0; 400],
    });
    store.write_history(&writes).await.expect("redis answers");
    let rollups_only = store
        .metric_history("node.cpu_percent", now - 7 * 24 * HOUR_MS, raw_from, now)
        .await
        .expect("redis answers");
    // Minutes before the raw hour: 7 days less one hour.
    assert!(
        rollups_only.rollups.len() >= 10_019,
        "{}",
        rollups_only.rollups.len()
    );

    let bytes = store
        .metric_history_bytes("node.cpu_percent", now)
        .await
        .expect("redis answers");
    println!(
        "history storage for one metric (7 days of 1-minute roll-ups + 1 hour raw at 1 Hz): \
         {bytes} bytes ({:.1} KB)",
        bytes as f64 / 1000.0
    );
    assert!(bytes < 500_000, "{bytes} bytes per metric");
}
