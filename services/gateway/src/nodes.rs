//! Commands to node agents (seed 000): while a node is connected, its gateway serves
//! requests on `sb.node.<node_id>.cmd`, forwards each as `command {id, name, params}` and
//! answers with the node's `ack`, or with `command_timeout` after `command_timeout`.
//!
//! At most `max_node_commands` commands per node connection are in flight; a further one is
//! answered `unavailable` at once (counted as `rate_limited_total{limit="node_commands"}`),
//! so a burst of requests cannot pile up tasks and pending acks without bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bus::{Headers, Message};
use protocol::envelope::{decode_bus, encode_bus};
use protocol::{Ack, CommandReply, CommandRequest, ErrorCode, ServerMessage};
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::frames::control;
use crate::session::conn::Conn;
use crate::state::Shared;

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
    send_reply(shared, link, request, &reply).await;
}

async fn send_reply(shared: &Shared, link: &NodeLink, request: &Message, reply: &CommandReply) {
    let payload = match encode_bus(reply) {
        Ok(payload) => payload,
        Err(error) => {
            warn!(error = %error, "command reply cannot be encoded");
            return;
        }
    };
    if let Err(error) = shared
        .bus
        .respond(request, Headers::new(), payload.into())
        .await
    {
        debug!(node_id = %link.node_id, error = %error, "command reply not delivered");
    }
}

async fn answer_command(shared: &Shared, conn: &Conn, link: &NodeLink, request: Message) {
    let reply = match decode_bus::<CommandRequest>(&request.payload) {
        Ok(command) => forward_and_wait(shared, conn, link, command).await,
        Err(_) => CommandReply {
            id: String::new(),
            ok: false,
            result: None,
            error: Some(ErrorCode::InvalidMessage.as_str().to_owned()),
        },
    };
    send_reply(shared, link, &request, &reply).await;
}

async fn forward_and_wait(
    shared: &Shared,
    conn: &Conn,
    link: &NodeLink,
    command: CommandRequest,
) -> CommandReply {
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
    match tokio::time::timeout(shared.config.command_timeout, ack_rx).await {
        Ok(Ok(ack)) => CommandReply {
            id,
            ok: ack.ok,
            result: ack.result,
            error: ack.error,
        },
        _ => {
            link.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            CommandReply {
                id,
                ok: false,
                result: None,
                error: Some(ErrorCode::CommandTimeout.as_str().to_owned()),
            }
        }
    }
}
