//! The agent's task: reports on a timer, on change and on connect; runs commands; stops.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use protocol::Ack;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::{debug, info};

use super::handler::{CommandHandler, StateProvider, interval_from_params};
use super::{Shared, duration_ms};
use crate::client::Client;
use crate::event::{ClientEvent, Events};
use crate::state::ConnectionState;

/// Registered commands running at once; more get `ok: false, error: "busy"` rather than
/// piling up tasks behind a stuck handler.
const MAX_COMMANDS_IN_FLIGHT: usize = 32;

pub(super) struct AgentTask {
    pub shared: Arc<Shared>,
    pub client: Client,
    pub provider: Arc<dyn StateProvider>,
    pub handlers: HashMap<String, Arc<dyn CommandHandler>>,
}

/// A registered command's outcome, matched to its command by task id.
type Outcome = Result<Value, String>;

impl AgentTask {
    pub(super) async fn run(
        self,
        mut events: Events,
        mut change_rx: mpsc::Receiver<()>,
        mut stop_rx: oneshot::Receiver<()>,
    ) {
        // Reports on connect come from the `Connected` event; the timer covers the time after.
        let mut ticker = ticker_from_now(self.interval());
        let mut running: JoinSet<Outcome> = JoinSet::new();
        let mut running_ids: HashMap<tokio::task::Id, (String, String)> = HashMap::new();
        loop {
            tokio::select! {
                // A dropped `Agent` stops the agent just like `stop()`.
                _ = &mut stop_rx => break,
                _ = ticker.tick() => {
                    if self.client.state().is_connected() {
                        self.report().await;
                    }
                }
                Some(()) = change_rx.recv() => {
                    if self.client.state().is_connected() {
                        self.report().await;
                    }
                }
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    let (task_id, outcome) = match done {
                        Ok((task_id, outcome)) => (task_id, outcome),
                        Err(error) => (error.id(), Err("command handler failed".to_owned())),
                    };
                    if let Some((id, name)) = running_ids.remove(&task_id) {
                        self.answer(id, &name, outcome).await;
                    }
                }
                event = events.recv() => match event {
                    // The client stopped for good (token refused, attempts used up).
                    None => {
                        info!(node_id = %self.shared.node_id, state = ?self.client.state(), "agent stopped: client disconnected");
                        return;
                    }
                    Some(ClientEvent::StateChanged(ConnectionState::Connected { server_id, .. })) => {
                        self.shared.record().log("connected", json!({ "server_id": server_id }));
                        self.report().await;
                    }
                    Some(ClientEvent::Command { id, name, params }) => {
                        match name.as_str() {
                            "ping" => {
                                let result = json!({
                                    "pong": true,
                                    "node_id": self.shared.node_id,
                                    "timestamp": protocol::time::now_rfc3339(),
                                });
                                self.answer(id, &name, Ok(result)).await;
                            }
                            "set_interval" => {
                                let outcome = interval_from_params(&params).map(|interval| {
                                    self.shared.interval_ms.store(duration_ms(interval), Ordering::Relaxed);
                                    ticker = ticker_from_now(interval);
                                    json!({ "interval_seconds": interval.as_secs_f64() })
                                });
                                self.answer(id, &name, outcome).await;
                            }
                            "report_now" => {
                                let update_count = self.report().await;
                                self.answer(id, &name, Ok(json!({ "update_count": update_count }))).await;
                            }
                            _ => match self.handlers.get(&name) {
                                None => {
                                    let error = format!("unknown command {name:?}");
                                    self.answer(id, &name, Err(error)).await;
                                }
                                Some(_) if running.len() >= MAX_COMMANDS_IN_FLIGHT => {
                                    self.answer(id, &name, Err("busy".to_owned())).await;
                                }
                                Some(handler) => {
                                    let abort = running.spawn(handler.handle(params));
                                    running_ids.insert(abort.id(), (id, name));
                                }
                            },
                        }
                    }
                    Some(_) => {}
                },
            }
        }
        self.stop(running).await;
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.shared.interval_ms.load(Ordering::Relaxed))
    }

    /// Sends one report; returns its `update_count`.
    async fn report(&self) -> u64 {
        let current_data = self.provider.current_data();
        let state = self.shared.record().next_report(
            &self.shared.node_id,
            &self.shared.layer,
            current_data,
        );
        let update_count = state.update_count;
        if self.client.send_node_state(state).await.is_err() {
            debug!("node state not sent: client closed");
        }
        update_count
    }

    async fn answer(&self, id: String, name: &str, outcome: Outcome) {
        let ok = outcome.is_ok();
        self.shared
            .record()
            .log("command", json!({ "name": name, "id": id, "ok": ok }));
        let ack = match outcome {
            Ok(result) => Ack {
                id,
                ok: true,
                result: Some(result),
                error: None,
            },
            Err(error) => Ack {
                id,
                ok: false,
                result: None,
                error: Some(error),
            },
        };
        if self.client.ack(ack).await.is_err() {
            debug!(command = name, "ack not sent: client closed");
        }
    }

    /// Final state, then a clean close. Commands still running are cut off: their callers
    /// get the gateway's `command_timeout`.
    async fn stop(self, mut running: JoinSet<Outcome>) {
        running.abort_all();
        self.shared.record().log("stop", Value::Null);
        if self.client.state().is_connected() {
            self.report().await;
        }
        self.client.close().await;
        info!(node_id = %self.shared.node_id, "agent stopped");
    }
}

/// Returns a timer whose first tick is one `period` from now.
fn ticker_from_now(period: Duration) -> Interval {
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    // After a stall, report once and carry on from now; a burst of catch-up reports says nothing.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}
