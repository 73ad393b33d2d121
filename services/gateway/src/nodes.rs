//! Commands to node agents (seed 000): while a node is connected, its gateway serves
//! requests on `sb.node.<node_id>.cmd`, forwards each as `command {id, name, params}` and
//! answers with the node's `ack`, or with `command_timeout` after `command_timeout`.
//!
//! At most `max_node_commands` commands per node connection are in flight; a further one is
//! answered `unavailable` at once (counted as `rate_limited_total{limit="node_commands"}`),
//! so a burst of requests cannot pile up tasks and pending acks without bound.
//!
//! [`send_command`] is the requesting side (the HTTP commands API): the same request on the
//! bus, so a node connected to any gateway of the cluster is reached. A request may carry
//! [`HEADER_COMMAND_TIMEOUT_MS`] to wait less than `command_timeout`; replies the gateway
//! makes itself (no `ack` from the node) carry [`HEADER_REPLY_FROM`]` = gateway`, so a
//! requester can tell them from a node's own failed `ack`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::{Headers, Message, RequestError};
use protocol::envelope::{decode_bus, encode_bus};
use protocol::{Ack, CommandReply, CommandRequest, ErrorCode, ServerMessage};
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::frames::control;
use crate::session::conn::Conn;
use crate::state::Shared;

/// Bus header of a command request: how long the requester waits for the node's `ack`, in
/// milliseconds. The serving gateway waits for the shorter of it and `command_timeout`.
pub(crate) const HEADER_COMMAND_TIMEOUT_MS: &str = "Sb-Command-Timeout-Ms";

/// Bus header of a command reply the gateway made itself (`command_timeout`, `unavailable`,
/// `invalid_message`) rather than one carrying the node's `ack`.
pub(crate) const HEADER_REPLY_FROM: &str = "Sb-Command-Reply-From";

/// Value of [`HEADER_REPLY_FROM`].
const REPLY_FROM_GATEWAY: &str = "gateway";

/// How much longer than its own timeout a requester waits for a reply on the bus, so the
/// serving gateway's `command_timeout` reply arrives before the request itself times out.
const REPLY_MARGIN: Duration = Duration::from_secs(1);

/// What became of a command sent with [`send_command`].
#[derive(Debug)]
pub(crate) enum CommandOutcome {
    /// The node answered; its `ack` (which may say `ok: false`).
    Acked(CommandReply),
    /// No gateway serves the node's command subject.
    NotConnected,
    /// The node did not answer within the timeout (or its gateway did not reply).
    TimedOut,
    /// The node's gateway refused the command: `max_node_commands` in flight.
    Busy,
    /// The bus did not take the request, or the reply was not understood.
    Unavailable,
}

impl CommandOutcome {
    /// The label of `switchboard_gateway_node_commands_total{outcome}`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Acked(reply) if reply.ok => "ok",
            Self::Acked(_) => "failed",
            Self::NotConnected => "node_not_connected",
            Self::TimedOut => "command_timeout",
            Self::Busy => "busy",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Sends `command` to `node_id` wherever in the cluster it is connected (a request on
/// `sb.node.<node_id>.cmd`) and waits up to `timeout` for its `ack`. `node_id` must have
/// passed `protocol::room::validate_node_id`.
pub(crate) async fn send_command(
    shared: &Shared,
    node_id: &str,
    command: &CommandRequest,
    timeout: Duration,
) -> CommandOutcome {
    let payload = match encode_bus(command) {
        Ok(payload) => payload,
        Err(error) => {
            warn!(error = %error, "command request cannot be encoded");
            return CommandOutcome::Unavailable;
        }
    };
    let mut headers = Headers::new();
    headers.insert(HEADER_COMMAND_TIMEOUT_MS, timeout.as_millis().to_string());
    let subject = shared.subjects.node_command(node_id);
    let reply = match shared
        .bus
        .request(&subject, headers, payload.into(), timeout + REPLY_MARGIN)
        .await
    {
        Ok(reply) => reply,
        Err(RequestError::NoResponders) => return CommandOutcome::NotConnected,
        Err(RequestError::Timeout) => return CommandOutcome::TimedOut,
        Err(error) => {
            debug!(node_id, error = %error, "command request failed");
            return CommandOutcome::Unavailable;
        }
    };
    let Ok(decoded) = decode_bus::<CommandReply>(&reply.payload) else {
        warn!(node_id, "command reply cannot be decoded");
        return CommandOutcome::Unavailable;
    };
    if reply.headers.get(HEADER_REPLY_FROM) != Some(REPLY_FROM_GATEWAY) {
        return CommandOutcome::Acked(decoded);
    }
    match decoded.error.as_deref() {
        Some(code) if code == ErrorCode::CommandTimeout.as_str() => CommandOutcome::TimedOut,
        Some(code) if code == ErrorCode::Unavailable.as_str() => CommandOutcome::Busy,
        _ => CommandOutcome::Unavailable,
    }
}

/// The command side of one node connection.
pub(crate) struct NodeLink {
    pub node_id: String,
    pending: Mutex<HashMap<String, oneshot::Sender<Ack>>>,
    cancel: CancellationToken,
    /// One permit per command in flight (`max_node_commands`).
    slots: Arc<Semaphore>,
}

impl NodeLink {
    /// Hands a node's `ack` to the waiting command; returns false for an unknown id.
    pub fn resolve(&self, ack: Ack) -> bool {
        let waiting = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ack.id);
        match waiting {
            Some(reply_tx) => reply_tx.send(ack).is_ok(),
            None => false,
        }
    }

    /// Stops serving commands for this connection.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

/// Subscribes to the node's command subject and starts serving it.
///
/// # Errors
/// Returns the bus error when the subscription cannot be made.
pub(crate) async fn serve_commands(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    node_id: &str,
) -> Result<Arc<NodeLink>, bus::SubscribeError> {
    let subject = shared.subjects.node_command(node_id);
    let mut subscription = shared
        .bus
        .queue_subscribe(&subject, protocol::subject::NODE_COMMAND_QUEUE_GROUP)
        .await?;
    if let Err(error) = shared.bus.flush().await {
        debug!(error = %error, "bus flush after node subscribe failed");
    }
    let link = Arc::new(NodeLink {
        node_id: node_id.to_owned(),
        pending: Mutex::new(HashMap::new()),
        cancel: shared.drain.sessions_shutdown.child_token(),
        slots: Arc::new(Semaphore::new(shared.config.max_node_commands)),
    });
    let (task_shared, task_conn, task_link) = (shared.clone(), conn.clone(), link.clone());
    shared.drain.tasks.spawn(async move {
        loop {
            let request = tokio::select! {
                () = task_link.cancel.cancelled() => break,
                next = subscription.next() => match next {
                    Some(request) => request,
                    None => break,
                },
            };
            let Ok(permit) = task_link.slots.clone().try_acquire_owned() else {
                refuse_command(&task_shared, &task_link, &request).await;
                continue;
            };
            let (shared, conn, link) = (task_shared.clone(), task_conn.clone(), task_link.clone());
            task_shared.drain.tasks.spawn(async move {
                answer_command(&shared, &conn, &link, request).await;
                drop(permit);
            });
        }
    });
    Ok(link)
}

/// Answers a command beyond `max_node_commands` with `unavailable` without forwarding it.
async fn refuse_command(shared: &Shared, link: &NodeLink, request: &Message) {
    shared
        .metrics
        .rate_limited
        .with_label_values(&["node_commands"])
        .inc();
    let id = decode_bus::<CommandRequest>(&request.payload)
        .ok()
        .and_then(|command| command.id)
        .unwrap_or_default();
    let reply = CommandReply {
        id,
        ok: false,
        result: None,
        error: Some(ErrorCode::Unavailable.as_str().to_owned()),
    };
    send_reply(shared, link, request, &reply, true).await;
}

/// Replies to a command request; `from_gateway` marks a reply that carries no `ack`.
async fn send_reply(
    shared: &Shared,
    link: &NodeLink,
    request: &Message,
    reply: &CommandReply,
    from_gateway: bool,
) {
    let payload = match encode_bus(reply) {
        Ok(payload) => payload,
        Err(error) => {
            warn!(error = %error, "command reply cannot be encoded");
            return;
        }
    };
    let mut headers = Headers::new();
    if from_gateway {
        headers.insert(HEADER_REPLY_FROM, REPLY_FROM_GATEWAY);
    }
    if let Err(error) = shared.bus.respond(request, headers, payload.into()).await {
        debug!(node_id = %link.node_id, error = %error, "command reply not delivered");
    }
}

async fn answer_command(shared: &Shared, conn: &Conn, link: &NodeLink, request: Message) {
    let (reply, from_gateway) = match decode_bus::<CommandRequest>(&request.payload) {
        Ok(command) => {
            let wait = ack_wait(shared.config.command_timeout, &request.headers);
            forward_and_wait(conn, link, command, wait).await
        }
        Err(_) => (
            CommandReply {
                id: String::new(),
                ok: false,
                result: None,
                error: Some(ErrorCode::InvalidMessage.as_str().to_owned()),
            },
            true,
        ),
    };
    send_reply(shared, link, &request, &reply, from_gateway).await;
}

/// How long to wait for the node's `ack`: the requester's [`HEADER_COMMAND_TIMEOUT_MS`] when
/// it is shorter than `command_timeout`.
fn ack_wait(command_timeout: Duration, headers: &Headers) -> Duration {
    headers
        .get(HEADER_COMMAND_TIMEOUT_MS)
        .and_then(|value| value.parse::<u64>().ok())
        .map_or(command_timeout, |millis| {
            Duration::from_millis(millis).min(command_timeout)
        })
}

/// Forwards the command to the node and waits up to `wait` for its `ack`; the flag says
/// whether the reply is the gateway's own (no `ack` came).
async fn forward_and_wait(
    conn: &Conn,
    link: &NodeLink,
    command: CommandRequest,
    wait: Duration,
) -> (CommandReply, bool) {
    let id = command
        .id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let (ack_tx, ack_rx) = oneshot::channel();
    link.pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), ack_tx);
    let frame = ServerMessage::Command {
        id: id.clone(),
        name: command.name,
        params: command.params,
    };
    if let Some(outgoing) = control(conn.codec, &frame) {
        conn.push(outgoing);
    }
    match tokio::time::timeout(wait, ack_rx).await {
        Ok(Ok(ack)) => (
            CommandReply {
                id,
                ok: ack.ok,
                result: ack.result,
                error: ack.error,
            },
            false,
        ),
        _ => {
            link.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            (
                CommandReply {
                    id,
                    ok: false,
                    result: None,
                    error: Some(ErrorCode::CommandTimeout.as_str().to_owned()),
                },
                true,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requesters_timeout_only_shortens_the_wait() {
        let limit = Duration::from_secs(10);
        let mut headers = Headers::new();
        assert_eq!(ack_wait(limit, &headers), limit);
        headers.insert(HEADER_COMMAND_TIMEOUT_MS, "250");
        assert_eq!(ack_wait(limit, &headers), Duration::from_millis(250));
        let mut longer = Headers::new();
        longer.insert(HEADER_COMMAND_TIMEOUT_MS, "60000");
        assert_eq!(ack_wait(limit, &longer), limit);
        let mut garbage = Headers::new();
        garbage.insert(HEADER_COMMAND_TIMEOUT_MS, "soon");
        assert_eq!(ack_wait(limit, &garbage), limit);
    }
}
