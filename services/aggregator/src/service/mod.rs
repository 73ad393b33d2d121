//! The aggregator replica: bind, the unit of work ([`Aggregator::process_next`] and
//! [`Aggregator::tick`]), and serve. What leaves the replica (store writes, alerts) is in
//! `output`.

mod output;

use std::sync::Arc;
use std::time::Duration;

use ::service::supervise::{Supervisor, TaskFailure};
use bus::{Bus, Message, Subscription};
use protocol::metrics::{MetricPayload, MetricSummary};
use protocol::streams::{components, rooms};
use protocol::{RoomName, Subjects};
use store::Store;
use store::history::{HistoryWrite, RAW_RETENTION_MS, ROLLUP_RETENTION_MS};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::admin::{self, AdminState};
use crate::api::{self, QueryContext};
use crate::config::{AggregatorConfig, Config};
use crate::detect::Candidate;
use crate::engine::Engine;
use crate::error::{RunError, StartError};
use crate::metrics::{Metrics, Probe};
use crate::rules::RuleSet;

/// The store group aggregator replicas register in (`sb:members:aggregator`).
pub const MEMBER_GROUP: &str = "aggregator";

/// Writes kept for a retry while the store is unreachable; beyond this the oldest are
/// dropped and counted (samples also stay in memory for the hour, and summaries are
/// rewritten anyway).
const MAX_RETAINED_WRITES: usize = 100_000;
/// Longest pause between write attempts while the store keeps failing.
const MAX_WRITE_BACKOFF: Duration = Duration::from_secs(30);
/// Failed loads after which an adoption proceeds from the standby buffer alone.
const ADOPTION_ATTEMPTS: u32 = 5;
/// Bound on the final flush and deregistration at shutdown.
const SHUTDOWN_STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the query and admin tasks get to finish at shutdown before they are cut off.
const SHUTDOWN_TASKS_GRACE: Duration = Duration::from_secs(10);

/// One aggregator replica, bound and ready to serve.
pub struct Aggregator {
    config: AggregatorConfig,
    replica_id: String,
    subjects: Subjects,
    alerts_subject: String,
    bus: Bus,
    store: Store,
    engine: Engine,
    samples: Subscription,
    queries: Option<Subscription>,
    admin: Option<TcpListener>,
    metrics: Arc<Metrics>,
    probe: Probe,
    alerts: Vec<Candidate>,
    retained: Vec<HistoryWrite>,
    write_backoff: Duration,
    next_write_at: Option<Instant>,
    next_membership_at: Instant,
    failed_adoption_loads: u32,
    /// The rules in force without a stored set (file or defaults).
    configured_rules: RuleSet,
    /// The rules in force.
    rules: RuleSet,
    /// The stored rules document last applied (`None`: nothing stored).
    applied_rules_document: Option<String>,
    next_rules_at: Instant,
    rules_changed: Arc<Notify>,
}

fn now_ms() -> u64 {
    protocol::time::now_unix_ms()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Aggregator {
    /// Validates the configuration, subscribes to samples and queries, binds the admin
    /// listener, registers this replica and learns the metrics the store knows.
    ///
    /// A store that does not answer is not fatal: the replica then works alone until it
    /// does (and is retried every tick).
    ///
    /// # Errors
    /// [`StartError::Config`], [`StartError::Subscribe`], [`StartError::AdminBind`].
    pub async fn bind(config: Config, bus: Bus, store: Store) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let aggregator = config.aggregator;
        let replica_id = aggregator
            .replica_id
            .clone()
            .unwrap_or_else(|| format!("agg-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        let subjects = Subjects::new(&config.bus.subject_prefix);
        let alerts_room = RoomName::parse(rooms::ALERTS).expect("the alerts room name is valid");
        let samples_subject = subjects.ingest_metric();
        let samples =
            bus.subscribe(&samples_subject)
                .await
                .map_err(|source| StartError::Subscribe {
                    subject: samples_subject,
                    source,
                })?;
        let queries_subject = api::subject_pattern(&subjects);
        let queries = bus
            .queue_subscribe(&queries_subject, protocol::metrics::api::QUEUE_GROUP)
            .await
            .map_err(|source| StartError::Subscribe {
                subject: queries_subject,
                source,
            })?;
        if let Err(error) = bus.flush().await {
            warn!(error = %error, "bus flush after subscribing failed");
        }
        let admin = match config.telemetry.admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::AdminBind { addr, source })?,
            ),
            None => None,
        };
        let engine = Engine::new(replica_id.clone(), &aggregator, now_ms());
        let configured_rules = RuleSet::configured(&aggregator);
        let mut replica = Self {
            alerts_subject: subjects.room(&alerts_room),
            config: aggregator,
            replica_id,
            subjects,
            bus,
            store,
            engine,
            samples,
            queries: Some(queries),
            admin,
            metrics: Arc::new(Metrics::new()),
            probe: Probe::default(),
            alerts: Vec::new(),
            retained: Vec::new(),
            write_backoff: Duration::ZERO,
            next_write_at: None,
            next_membership_at: Instant::now(),
            failed_adoption_loads: 0,
            rules: configured_rules.clone(),
            configured_rules,
            applied_rules_document: None,
            next_rules_at: Instant::now(),
            rules_changed: Arc::new(Notify::new()),
        };
        replica.refresh_rules().await;
        replica.refresh_membership().await;
        replica.learn_stored_metrics().await;
        replica.update_probe();
        Ok(replica)
    }

    /// Returns this replica's id among the aggregators.
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// Returns the bound admin address, if an admin server is configured.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Returns the threshold rules in force and their source (`store`, `file`, `defaults`).
    pub fn rules(&self) -> protocol::metrics::rules::RulesReply {
        self.rules.reply()
    }

    /// Returns a handle that shows what this replica owns and has processed.
    pub fn probe(&self) -> Probe {
        self.probe.clone()
    }

    /// Waits for the next message on `sb.ingest.metric` and processes it (windows, alerts;
    /// writes wait for the next [`Aggregator::tick`]). Returns `false` once the
    /// subscription has ended.
    pub async fn process_next(&mut self) -> bool {
        match self.samples.next().await {
            Some(message) => {
                self.process_message(&message).await;
                true
            }
            None => false,
        }
    }

    /// Processes one `sb.ingest.metric` message: one sample or a list of them.
    pub async fn process_message(&mut self, message: &Message) {
        self.process_payload(&message.payload).await;
    }

    /// Processes one MessagePack metric payload, publishing the alerts it raises (each
    /// awaited, so a slow bus slows ingestion instead of queueing alerts).
    pub async fn process_payload(&mut self, payload: &[u8]) {
        let samples = match MetricPayload::decode_bus(payload) {
            Ok(payload) => payload.into_samples(),
            Err(error) => {
                self.metrics.invalid_payloads.inc();
                debug!(error = %error, "metric payload rejected");
                return;
            }
        };
        let now_ms = now_ms();
        for sample in samples {
            self.engine.ingest(sample, now_ms, &mut self.alerts);
        }
        self.probe.set_processed(self.engine.counters().processed);
        self.publish_alerts().await;
    }

    /// The periodic unit of work: refreshes membership when due, adopts metrics whose
    /// settle time has passed, slides the windows and writes to the store what changed.
    pub async fn tick(&mut self) {
        if Instant::now() >= self.next_membership_at {
            self.refresh_membership().await;
        }
        if Instant::now() >= self.next_rules_at {
            self.refresh_rules().await;
        }
        self.adopt_due_metrics().await;
        let writes = self.engine.flush(now_ms());
        self.write(writes, false).await;
        self.metrics
            .report(self.engine.counters(), self.engine.standby_dropped());
        self.update_probe();
    }

    /// Serves until `shutdown`: samples and ticks in one loop (so ingestion waits while the
    /// store is written: back-pressure instead of a queue), queries and the admin server in
    /// their own tasks. On shutdown: stop reading samples, write everything pending, leave the
    /// membership (the others take over after their settle time, which covers this last
    /// flush), stop the query and admin tasks, flush the bus.
    ///
    /// The query and admin tasks are supervised: one that fails or panics stops the
    /// aggregator the same way and its error is returned.
    ///
    /// # Errors
    /// [`RunError::SubscriptionEnded`] / [`RunError::QueriesEnded`] when the bus closes the
    /// sample / query subscription, [`RunError::Task`] when a task panics.
    pub async fn serve(mut self, shutdown: CancellationToken) -> Result<(), RunError> {
        let mut tasks: Supervisor<RunError> = Supervisor::new();
        let background = CancellationToken::new();
        if let Some(queries) = self.queries.take() {
            let context = Arc::new(QueryContext {
                store: self.store.clone(),
                bus: self.bus.clone(),
                metrics: self.metrics.clone(),
                max_skew_ms: millis(self.config.max_clock_skew),
                configured_rules: self.configured_rules.clone(),
                rules_changed: self.rules_changed.clone(),
            });
            tasks.spawn(
                "query api",
                api::serve(
                    context,
                    queries,
                    self.config.max_concurrent_queries,
                    background.clone(),
                ),
            );
        }
        if let Some(listener) = self.admin.take() {
            let state = Arc::new(AdminState {
                metrics: self.metrics.clone(),
                bus: self.bus.clone(),
                store: self.store.clone(),
            });
            tasks.spawn_plain(
                "admin server",
                admin::serve(listener, state, background.clone()),
            );
        }
        info!(
            replica_id = %self.replica_id,
            bus = self.bus.backend_name(),
            store = self.store.backend_name(),
            "aggregator running"
        );
        let rules_changed = self.rules_changed.clone();
        let mut ticker = tokio::time::interval(self.config.flush_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let outcome = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break Ok(()),
                _ = ticker.tick() => self.tick().await,
                () = rules_changed.notified() => self.refresh_rules().await,
                message = self.samples.next() => match message {
                    Some(message) => self.process_message(&message).await,
                    None => break Err(RunError::SubscriptionEnded),
                },
                Some(failure) = tasks.first_failure(), if !tasks.is_empty() => {
                    tracing::error!(task = failure.task(), error = %::service::error_chain(&failure), "task failed; stopping");
                    break Err(match failure {
                        TaskFailure::Failed { error, .. } => error,
                        TaskFailure::Panicked { task, error } => {
                            RunError::Task(TaskFailure::Panicked { task, error })
                        }
                    });
                }
            }
        };
        self.drain().await;
        background.cancel();
        let late = tasks.drain(SHUTDOWN_TASKS_GRACE).await;
        let outcome = match (outcome, late) {
            (Ok(()), Some(TaskFailure::Failed { error, .. })) => Err(error),
            (Ok(()), Some(TaskFailure::Panicked { task, error })) => {
                Err(RunError::Task(TaskFailure::Panicked { task, error }))
            }
            (outcome, _) => outcome,
        };
        if let Err(error) = self.bus.flush().await {
            warn!(error = %error, "bus flush at shutdown failed");
        }
        info!(replica_id = %self.replica_id, "aggregator stopped");
        outcome
    }

    async fn drain(&mut self) {
        let writes = self.engine.flush(now_ms());
        self.write(writes, true).await;
        match tokio::time::timeout(
            SHUTDOWN_STORE_TIMEOUT,
            self.store.remove_member(MEMBER_GROUP, &self.replica_id),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                warn!(error = %error, "membership not removed; it expires with liveness_ttl")
            }
            Err(_elapsed) => warn!("store did not answer; membership expires with liveness_ttl"),
        }
        let withdrawn = tokio::time::timeout(
            SHUTDOWN_STORE_TIMEOUT,
            self.store
                .withdraw_instance(components::AGGREGATOR, &self.replica_id),
        )
        .await;
        if !matches!(withdrawn, Ok(Ok(()))) {
            warn!("liveness not withdrawn; it expires with liveness_ttl");
        }
    }

    /// Re-reads the stored rule set and applies it when it changed. A store that does not
    /// answer keeps the rules in force.
    async fn refresh_rules(&mut self) {
        self.next_rules_at = Instant::now() + self.config.rules_refresh_interval;
        let stored = match self.store.alert_rules().await {
            Ok(stored) => stored,
            Err(error) => {
                debug!(error = %error, "alert rules not re-read; keeping the rules in force");
                return;
            }
        };
        if stored == self.applied_rules_document {
            return;
        }
        let rules = RuleSet::resolve(stored.as_deref(), &self.configured_rules);
        self.applied_rules_document = stored;
        if rules != self.rules {
            info!(source = ?rules.source, rules = rules.rules.len(), "threshold rules applied");
            self.engine.set_rules(&rules.rules);
            self.rules = rules;
        }
    }

    async fn refresh_membership(&mut self) {
        self.next_membership_at = Instant::now() + self.config.liveness_ttl / 3;
        if let Err(error) = self
            .store
            .announce_instance(
                components::AGGREGATOR,
                &self.replica_id,
                self.config.liveness_ttl,
            )
            .await
        {
            debug!(error = %error, "aggregator liveness not announced");
        }
        let registered = self
            .store
            .register_member(MEMBER_GROUP, &self.replica_id, self.config.liveness_ttl)
            .await;
        let members = match registered {
            Ok(()) => self.store.live_members(MEMBER_GROUP).await,
            Err(error) => Err(error),
        };
        match members {
            Ok(members) => self.engine.apply_membership(members, now_ms()),
            Err(error) => {
                warn!(error = %error, "aggregator membership not refreshed; keeping the last view")
            }
        }
    }

    /// Learns every metric with a summary entry, so the ones this replica owns get their
    /// windows back from the store, and removes entries untouched for the retention.
    async fn learn_stored_metrics(&mut self) {
        let entries = match self.store.metric_summaries().await {
            Ok(entries) => entries,
            Err(error) => {
                warn!(error = %error, "stored metrics unknown; windows fill from new samples");
                return;
            }
        };
        let now_ms = now_ms();
        let mut known = Vec::new();
        let mut expired = Vec::new();
        for (metric, bytes) in entries {
            let fresh = protocol::envelope::decode_bus::<MetricSummary>(&bytes)
                .is_ok_and(|summary| summary.latest_ts_ms + ROLLUP_RETENTION_MS > now_ms);
            if fresh {
                known.push(metric);
            } else {
                expired.push(HistoryWrite::RemoveSummary { metric });
            }
        }
        info!(
            known = known.len(),
            expired = expired.len(),
            "stored metrics loaded"
        );
        self.engine.learn_metrics(known, now_ms);
        if !expired.is_empty() {
            self.write(expired, false).await;
        }
    }

    async fn adopt_due_metrics(&mut self) {
        let now_ms = now_ms();
        let due = self.engine.due_adoptions(now_ms);
        if due.is_empty() {
            return;
        }
        let names: Vec<String> = due.iter().map(|name| name.to_string()).collect();
        let loaded = self
            .store
            .raw_samples(
                &names,
                now_ms.saturating_sub(RAW_RETENTION_MS),
                now_ms + millis(self.config.max_clock_skew),
            )
            .await;
        let loaded = match loaded {
            Ok(loaded) => {
                self.failed_adoption_loads = 0;
                loaded
            }
            Err(error) => {
                self.failed_adoption_loads += 1;
                if self.failed_adoption_loads < ADOPTION_ATTEMPTS {
                    warn!(error = %error, metrics = due.len(), "metric history not loaded; adoption retried next tick");
                    return;
                }
                warn!(error = %error, metrics = due.len(), "metric history still not loaded; adopting without it");
                self.failed_adoption_loads = 0;
                vec![Vec::new(); due.len()]
            }
        };
        info!(metrics = due.len(), "adopting metrics");
        self.engine.complete_adoptions(
            due.into_iter().zip(loaded).collect(),
            now_ms,
            &mut self.alerts,
        );
        self.probe.set_processed(self.engine.counters().processed);
        self.publish_alerts().await;
    }

    fn update_probe(&self) {
        let owned = self.engine.owned_metrics();
        self.metrics
            .owned_metrics
            .set(i64::try_from(owned.len()).unwrap_or(i64::MAX));
        self.metrics
            .standby_samples
            .set(i64::try_from(self.engine.standby_len()).unwrap_or(i64::MAX));
        self.probe.tick_done(owned, self.engine.members().to_vec());
    }

    /// The subject map this replica uses.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }
}
