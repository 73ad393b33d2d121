//! The management API over NATS: `sb.api.batch_ingest.<method>` request/reply, queue group
//! `sb-batch-ingest-api`. Requests and replies are MessagePack maps
//! ([`NodeRequest`] → [`NodeReply`]); an empty request payload is an empty request.

use std::sync::Arc;

use bus::{Bus, Headers, Message, Subscription};
use bytes::Bytes;
use protocol::batch::{
    API_QUEUE_GROUP, API_SERVICE, ApiError, NodeInfo, NodeReply, NodeRequest, api_method,
};
use protocol::envelope::{decode_bus, encode_bus};
use protocol::{ErrorCode, Subjects};
use tokio_util::sync::CancellationToken;

use crate::error::RunError;
use crate::nodes::{NodeError, Nodes};

/// Subscribes to every method of the API.
///
/// # Errors
/// The bus's [`bus::SubscribeError`].
pub(crate) async fn subscribe(
    bus: &Bus,
    subjects: &Subjects,
) -> Result<Subscription, bus::SubscribeError> {
    bus.queue_subscribe(&subjects.api(API_SERVICE, "*"), API_QUEUE_GROUP)
        .await
}

/// Registers a node from a request; shared with the HTTP API.
pub(crate) fn register(nodes: &Nodes, request: &NodeRequest) -> Result<NodeInfo, NodeError> {
    let id = request
        .id
        .as_deref()
        .ok_or_else(|| NodeError::Invalid("id is required".into()))?;
    let url = request
        .url
        .as_deref()
        .ok_or_else(|| NodeError::Invalid("url is required".into()))?;
    nodes.register(id, url, request.active.unwrap_or(true))
}

/// Answers requests until `shutdown`.
///
/// # Errors
/// [`RunError::ApiEnded`] when the bus ends the subscription (the connection closed for
/// good): a replica that cannot be managed any more is restarted rather than kept.
pub(crate) async fn serve(
    mut requests: Subscription,
    bus: Bus,
    nodes: Arc<Nodes>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    loop {
        let request = tokio::select! {
            request = requests.next() => request,
            () = shutdown.cancelled() => return Ok(()),
        };
        let Some(request) = request else {
            return Err(RunError::ApiEnded);
        };
        let reply = answer(&nodes, &request);
        let payload = match encode_bus(&reply) {
            Ok(payload) => Bytes::from(payload),
            Err(error) => {
                tracing::warn!(error = %error, "management reply not encodable");
                continue;
            }
        };
        if let Err(error) = bus.respond(&request, Headers::new(), payload).await {
            tracing::debug!(error = %error, subject = %request.subject, "management reply not sent");
        }
    }
}

fn answer(nodes: &Nodes, request: &Message) -> NodeReply {
    let method = request.subject.rsplit('.').next().unwrap_or_default();
    let parsed: Result<NodeRequest, NodeError> = if request.payload.is_empty() {
        Ok(NodeRequest::default())
    } else {
        decode_bus(&request.payload).map_err(|error| NodeError::Invalid(error.to_string()))
    };
    let id_of = |request: &NodeRequest| {
        request
            .id
            .clone()
            .ok_or_else(|| NodeError::Invalid("id is required".into()))
    };
    let result = parsed.and_then(|parsed| match method {
        api_method::LIST_NODES => Ok(nodes.list()),
        api_method::REGISTER_NODE => register(nodes, &parsed).map(|node| vec![node]),
        api_method::REMOVE_NODE => nodes.remove(&id_of(&parsed)?).map(|node| vec![node]),
        api_method::START_NODE => nodes.start(&id_of(&parsed)?).map(|node| vec![node]),
        api_method::STOP_NODE => nodes.stop(&id_of(&parsed)?).map(|node| vec![node]),
        other => Err(NodeError::Invalid(format!("unknown method {other:?}"))),
    });
    match result {
        Ok(nodes) => NodeReply {
            ok: true,
            nodes,
            error: None,
        },
        Err(error) => NodeReply {
            ok: false,
            nodes: Vec::new(),
            error: Some(ApiError {
                code: match error {
                    NodeError::Invalid(_) => ErrorCode::InvalidMessage,
                    NodeError::NotFound(_) => ErrorCode::NodeNotConnected,
                },
                message: error.to_string(),
            }),
        },
    }
}
