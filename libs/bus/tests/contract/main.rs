//! The bus contract: one suite of behaviours, run against every backend.
//!
//! Each behaviour in `suite` is written once, as an async fn taking a [`fixture::Fixture`],
//! and `contract!` runs it as `memory::<behaviour>` against [`bus::Bus::memory`] and as
//! `nats::<behaviour>` against a real `nats-server -js` started for that test on a free port.
//! `nats_only` holds what only a networked backend has (reconnects, connect errors);
//! `cluster` runs failovers on a three-node NATS cluster.

// The package is `switchboard-bus`; dependents import it as `bus`, and so do these tests.
extern crate switchboard_bus as bus;

mod cluster;
mod fixture;
mod nats_only;
mod suite;

macro_rules! contract {
    ($($behaviour:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    crate::suite::$behaviour(crate::fixture::Fixture::memory()).await;
                }
            )*
        }

        mod nats {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    crate::suite::$behaviour(crate::fixture::Fixture::nats().await).await;
                }
            )*
        }
    };
}

contract!(
    published_message_reaches_exact_subscriber_only,
    star_matches_one_token_and_greater_than_matches_the_rest,
    headers_round_trip,
    queue_group_delivers_each_message_to_exactly_one_member,
    request_is_answered_by_responder,
    request_nobody_answers_times_out,
    request_to_subject_without_subscribers_fails_fast_with_no_responders,
    responding_to_a_message_without_reply_subject_is_an_error,
    thousand_messages_arrive_in_publish_order,
    slow_consumer_does_not_block_publisher_or_other_subscribers,
    dropping_a_subscription_stops_delivery_and_removes_interest,
    malformed_subjects_queue_groups_and_headers_are_rejected,
);
