//! The store contract: one suite of scenarios, run against the in-memory backend
//! (`on_memory::…`) and against a real `redis-server` (`on_redis::…`), plus Redis-only
//! tests for outages and key hygiene.

// The rest of the workspace imports this crate as `store`; so do the tests.
extern crate switchboard_store as store;

mod connections;
mod counters;
mod gateways;
mod harness;
mod history;
mod outage;
mod redis_keys;
mod routes;
mod sentinel;
mod services;

/// Generates one test per scenario and backend. Each scenario is
/// `async fn(&Store) -> Result<(), StoreError>`; each Redis test gets its own server and a
/// key prefix named after the scenario.
macro_rules! contract_suite {
    ($($module:ident :: $scenario:ident),+ $(,)?) => {
        mod on_memory {
            $(
                #[tokio::test]
                async fn $scenario() -> Result<(), store::StoreError> {
                    let backend = crate::harness::Backend::memory();
                    crate::$module::$scenario(&backend.store).await
                }
            )+
        }

        mod on_redis {
            $(
                #[tokio::test]
                async fn $scenario() -> Result<(), store::StoreError> {
                    let backend = crate::harness::Backend::redis(stringify!($scenario)).await;
                    crate::$module::$scenario(&backend.store).await
                }
            )+
        }

        mod on_sentinel {
            /// One primary, replica and three sentinels for the whole suite (five processes
            /// per scenario would cost more than the scenarios); each scenario gets its own
            /// store and key prefix, and they run one after another.
            #[tokio::test]
            async fn every_scenario_passes_through_a_sentinel_url() {
                let cluster = store::test_util::SentinelCluster::start().await;
                $(
                    let store = crate::harness::sentinel_store(
                        &cluster,
                        stringify!($scenario),
                        store::RedisOptions::default(),
                    )
                    .await;
                    if let Err(error) = crate::$module::$scenario(&store).await {
                        panic!("{} failed through sentinel: {error:?}", stringify!($scenario));
                    }
                )+
            }
        }
    };
}

contract_suite! {
    gateways::registered_gateways_are_live_until_removed,
    gateways::liveness_expires_after_its_ttl,
    gateways::refreshing_keeps_a_gateway_live_past_its_first_ttl,
    gateways::dead_gateway_drops_out_of_stats_users_and_routes_within_its_ttl,
    gateways::expired_gateway_that_refreshes_before_a_sweep_keeps_its_entries,
    gateways::clean_removal_deletes_every_entry_of_the_gateway,
    gateways::sweep_deletes_dead_gateways_and_keeps_live_ones,
    gateways::refresh_reports_a_liveness_entry_lost_by_expiry_or_by_a_flush,
    gateways::gateway_connections_lists_one_gateways_records,
    gateways::gateway_memberships_lists_one_gateways_rooms,
    connections::stats_count_connections_and_rooms_of_live_gateways,
    connections::joining_twice_counts_once_and_leaving_twice_is_harmless,
    connections::room_without_subscribers_is_omitted_from_stats,
    connections::removing_a_connection_removes_its_room_memberships,
    connections::adding_the_same_connection_twice_counts_it_once,
    connections::a_batch_of_connections_is_added_and_counted_like_single_adds,
    connections::a_batch_of_joins_counts_like_single_joins,
    connections::batches_of_removals_and_leaves_act_like_single_ones,
    connections::user_connections_span_live_gateways,
    connections::stats_stay_exact_with_thousands_of_connections,
    routes::node_route_follows_the_latest_gateway,
    routes::stale_gateway_cannot_remove_a_newer_route,
    routes::node_route_is_none_for_unknown_nodes_and_unregistered_gateways,
    counters::rate_counter_counts_hits_within_a_window_per_key,
    counters::rate_counter_starts_again_in_the_next_window,
    counters::total_counters_are_cumulative,
    history::raw_samples_come_back_in_time_order_without_duplicates,
    history::replacing_a_raw_minute_keeps_exactly_the_given_samples,
    history::history_returns_rollups_before_the_raw_hour_and_samples_after,
    history::summaries_are_listed_by_metric_and_can_be_removed,
    history::members_are_live_until_removed_or_expired,
    history::a_claim_is_granted_once_until_it_expires,
    services::alert_rules_are_stored_replaced_and_deleted,
    services::announced_instances_are_live_until_withdrawn_or_silent,
    services::keep_announced_refreshes_until_stopped_then_withdraws,
}

// Declared after `contract_suite!` so the module can use the macro.
mod lease;
