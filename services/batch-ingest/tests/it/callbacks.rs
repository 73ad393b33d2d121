//! The HTTP callback path: one handler for both kinds, clear errors, duplicates by content.

use std::time::Duration;

use batch_ingest::test_util::{eventually, http_request};
use batch_ingest::{Delivery, DuplicateBy, Outcome, Path};
use mlnode_sim::batch_at;
use protocol::batch::{Batch, STREAM_NAME};
use serde_json::Value;

use crate::helpers::{Sim, WAIT, ingest, sim_config, stored_hashes};

#[tokio::test]
async fn callbacks_alone_store_every_batch_once() {
    let ingest = ingest(|_| {}).await;
    let mut config = sim_config(10, 40);
    config.callback_url = Some(ingest.callback_url());
    let sim = Sim::start(config).await;
    eventually(WAIT, "every batch is confirmed", || async {
        sim.handle.all_confirmed()
    })
    .await;
    let counters = sim.handle.counters();
    assert_eq!(
        (counters.acked_ws, counters.acked_http),
        (0, 40),
        "{counters:?}"
    );
    assert_eq!(stored_hashes(&ingest.bus).await, sim.expected_hashes());
    ingest.stop().await;
}

fn body(response: &str) -> Value {
    serde_json::from_str(response).unwrap_or_else(|_| panic!("json body: {response}"))
}

#[tokio::test]
async fn the_same_batch_twice_is_stored_once_and_both_get_200() {
    let ingest = ingest(|_| {}).await;
    let batch = batch_at(&sim_config(11, 1), 3);
    let path = batch.kind().callback_path();
    let (status, first) = http_request(ingest.addr, "POST", path, batch.to_json().as_bytes())
        .await
        .unwrap();
    assert_eq!(status, 200, "{first}");
    assert_eq!(body(&first)["status"], "stored");
    assert_eq!(body(&first)["hash"], batch.content_hash().to_hex());
    let (status, second) = http_request(ingest.addr, "POST", path, batch.to_json().as_bytes())
        .await
        .unwrap();
    assert_eq!(
        (status, body(&second)["status"].clone()),
        (200, "duplicate".into())
    );
    assert_eq!(
        ingest.bus.stream_state(STREAM_NAME).await.unwrap().messages,
        1
    );
    ingest.stop().await;
}

#[tokio::test]
async fn a_duplicate_older_than_the_window_is_caught_by_its_hash_record() {
    let ingest = ingest(|config| {
        config.batch_ingest.duplicate_window = Duration::from_millis(200);
        config.batch_ingest.stream_max_age = Duration::ZERO;
    })
    .await;
    let delivery = Delivery {
        batch: batch_at(&sim_config(12, 1), 0),
        path: Path::Http,
        node: None,
    };
    let first = ingest
        .pipeline
        .process_next_batch(delivery.clone())
        .await
        .unwrap();
    assert!(matches!(first, Outcome::Stored { sequence: 1 }));
    // Let the window pass: JetStream alone would now store the batch again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = ingest.pipeline.process_next_batch(delivery).await.unwrap();
    assert_eq!(
        again,
        Outcome::Duplicate {
            by: DuplicateBy::Record
        }
    );
    assert_eq!(
        ingest.bus.stream_state(STREAM_NAME).await.unwrap().messages,
        1
    );
    ingest.stop().await;
}

#[tokio::test]
async fn invalid_batches_get_clear_errors_and_nothing_is_stored() {
    let ingest = ingest(|config| config.batch_ingest.max_batch_bytes = 4096).await;
    let valid = batch_at(&sim_config(13, 1), 0).to_json();
    let mut missing: Value = serde_json::from_str(&valid).unwrap();
    missing.as_object_mut().unwrap().remove("nonces");
    let mut wrong: Value = serde_json::from_str(&valid).unwrap();
    wrong["block_height"] = "tall".into();
    let mut oversized: Value = serde_json::from_str(&valid).unwrap();
    oversized["public_key"] = "k".repeat(5000).into();
    let cases: [(&str, String, u16, &str, &str); 5] = [
        (
            "/v1/poc-batches/generated",
            "{\"public_key\": ".into(),
            400,
            "invalid_message",
            "malformed_json",
        ),
        (
            "/v1/poc-batches/generated",
            missing.to_string(),
            400,
            "invalid_message",
            "missing_field",
        ),
        (
            "/v1/poc-batches/generated",
            wrong.to_string(),
            400,
            "invalid_message",
            "wrong_type",
        ),
        (
            "/v1/poc-batches/validated",
            valid.clone(),
            400,
            "invalid_message",
            "missing_field",
        ),
        (
            "/v1/poc-batches/generated",
            oversized.to_string(),
            413,
            "message_too_large",
            "too_large",
        ),
    ];
    for (path, payload, status, code, reason) in cases {
        let (got, response) = http_request(ingest.addr, "POST", path, payload.as_bytes())
            .await
            .unwrap();
        let error = &body(&response)["error"];
        assert_eq!(
            (got, error["code"].as_str(), error["reason"].as_str()),
            (status, Some(code), Some(reason)),
            "{path} {response}"
        );
        assert!(!error["message"].as_str().unwrap_or_default().is_empty());
    }
    assert!(
        body(
            &http_request(
                ingest.addr,
                "POST",
                "/v1/poc-batches/generated",
                wrong.to_string().as_bytes()
            )
            .await
            .unwrap()
            .1
        )["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid type")
    );
    assert_eq!(
        ingest.bus.stream_state(STREAM_NAME).await.unwrap().messages,
        0
    );
    let (_, metrics) = http_request(ingest.addr, "GET", "/metrics", b"")
        .await
        .unwrap();
    assert!(
        metrics.contains("switchboard_batch_ingest_batches_invalid_total{path=\"http\",reason=\"missing_field\"} 2"),
        "{metrics}"
    );
    ingest.stop().await;
}

#[tokio::test]
async fn generated_and_validated_batches_go_to_their_subjects() {
    let ingest = ingest(|_| {}).await;
    let config = sim_config(14, 4);
    for index in 0..4 {
        let batch: Batch = batch_at(&config, index);
        let (status, _) = http_request(
            ingest.addr,
            "POST",
            batch.kind().callback_path(),
            batch.to_json().as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
    }
    let stored =
        batch_ingest::test_util::read_stored_batches(&ingest.bus, &Default::default()).await;
    let kinds: Vec<_> = stored.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["generated", "generated", "generated", "validated"]);
    assert_eq!(stored[3].batch, batch_at(&config, 3));
    ingest.stop().await;
}
