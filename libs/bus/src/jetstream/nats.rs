//! JetStream through `async-nats`, its types kept inside this file.

use std::pin::Pin;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::{
    CreateStreamErrorKind, GetStreamByNameErrorKind, GetStreamErrorKind, PublishErrorKind,
};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, ConsumerErrorKind};
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{
    Acker, ConsumeError, DurablePublishError, PublishAck, StorageKind, StreamError, StreamMessage,
    StreamSpec, StreamState,
};
use crate::Headers;
use crate::nats::{header_map, message_from_nats};

fn stream_config(spec: &StreamSpec, replicas: usize) -> stream::Config {
    stream::Config {
        name: spec.name.clone(),
        subjects: spec.subjects.clone(),
        duplicate_window: spec.duplicate_window,
        max_age: spec.max_age,
        storage: match spec.storage {
            StorageKind::File => stream::StorageType::File,
            StorageKind::Memory => stream::StorageType::Memory,
        },
        num_replicas: replicas,
        ..Default::default()
    }
}

fn state_of(state: &stream::State) -> StreamState {
    StreamState {
        messages: state.messages,
        first_sequence: state.first_sequence,
        last_sequence: state.last_sequence,
    }
}

/// Creates the stream; when one of that name exists with another configuration, updates it.
pub(super) async fn ensure_stream(
    context: &Context,
    spec: &StreamSpec,
    replicas: usize,
) -> Result<StreamState, StreamError> {
    let config = stream_config(spec, replicas);
    let info = match context.create_stream(config.clone()).await {
        Ok(mut stream) => stream.info().await.map(|info| info.state.clone()),
        Err(error) => match error.kind() {
            CreateStreamErrorKind::JetStream(js)
                if js.error_code() == ErrorCode::STREAM_NAME_EXIST =>
            {
                let updated = context.update_stream(config).await.map_err(create_error)?;
                return Ok(state_of(&updated.state));
            }
            _ => return Err(create_error(error)),
        },
    };
    info.map(|state| state_of(&state))
        .map_err(|source| StreamError::Connection {
            source: Box::new(source),
        })
}

fn create_error(error: jetstream::context::CreateStreamError) -> StreamError {
    match error.kind() {
        CreateStreamErrorKind::EmptyStreamName | CreateStreamErrorKind::InvalidStreamName => {
            StreamError::InvalidSpec {
                reason: error.to_string(),
            }
        }
        CreateStreamErrorKind::JetStream(_)
        | CreateStreamErrorKind::DomainAndExternalSet
        | CreateStreamErrorKind::NotFound => StreamError::Rejected {
            source: Box::new(error),
        },
        CreateStreamErrorKind::JetStreamUnavailable
        | CreateStreamErrorKind::TimedOut
        | CreateStreamErrorKind::Response
        | CreateStreamErrorKind::ResponseParse => StreamError::Connection {
            source: Box::new(error),
        },
    }
}

fn get_error(stream: &str, error: jetstream::context::GetStreamError) -> StreamError {
    match error.kind() {
        GetStreamErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND => {
            StreamError::NotFound {
                stream: stream.to_owned(),
            }
        }
        GetStreamErrorKind::EmptyName | GetStreamErrorKind::InvalidStreamName => {
            StreamError::InvalidSpec {
                reason: error.to_string(),
            }
        }
        GetStreamErrorKind::JetStream(_) => StreamError::Rejected {
            source: Box::new(error),
        },
        GetStreamErrorKind::Request => StreamError::Connection {
            source: Box::new(error),
        },
    }
}

pub(super) async fn stream_state(
    context: &Context,
    name: &str,
) -> Result<StreamState, StreamError> {
    let stream = context
        .get_stream(name)
        .await
        .map_err(|error| get_error(name, error))?;
    Ok(state_of(&stream.cached_info().state))
}

/// Returns the name of the server leading the stream's replicas; `None` outside a cluster.
pub(super) async fn stream_leader(
    context: &Context,
    name: &str,
) -> Result<Option<String>, StreamError> {
    let stream = context
        .get_stream(name)
        .await
        .map_err(|error| get_error(name, error))?;
    Ok(stream
        .cached_info()
        .cluster
        .as_ref()
        .and_then(|cluster| cluster.leader.clone()))
}

/// Publishes and waits for the stream's ack (bounded by the context timeout).
pub(super) async fn publish(
    context: &Context,
    subject: &str,
    headers: Headers,
    payload: Bytes,
) -> Result<PublishAck, DurablePublishError> {
    let headers =
        header_map(&headers).map_err(|name| DurablePublishError::InvalidHeader { name })?;
    let message = PublishMessage::build().payload(payload).headers(headers);
    let sent = match context.send_publish(subject.to_owned(), message).await {
        Ok(pending) => pending.await,
        Err(error) => Err(error),
    };
    let ack = match sent {
        Ok(ack) => ack,
        Err(error) if error.kind() == PublishErrorKind::StreamNotFound => {
            return Err(no_responders(context, subject, error).await);
        }
        Err(error) => return Err(publish_error(subject, error)),
    };
    Ok(PublishAck {
        stream: ack.stream,
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}

/// How long [`no_responders`] waits for JetStream to say which stream stores a subject. The
/// answer comes from the cluster's metadata leader, which may be the server that just died;
/// the publish is then reported unconfirmed quickly instead of after the request timeout.
const STREAM_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Tells "no stream stores this subject" from "its stream has no leader right now".
///
/// JetStream answers a publish through the stream's leader; while a cluster elects a new
/// one (seconds, after the leader's node died) nobody answers, which the client reports as
/// "stream not found". Asking which stream stores the subject tells the two apart: a stream
/// that exists means the message was not stored yet and should be sent again with the same
/// id ([`DurablePublishError::Unconfirmed`]). When the lookup itself gets no answer (within
/// [`STREAM_LOOKUP_TIMEOUT`]) the cluster is in trouble, and retrying is the right advice too.
async fn no_responders(
    context: &Context,
    subject: &str,
    error: jetstream::context::PublishError,
) -> DurablePublishError {
    let lookup = tokio::time::timeout(STREAM_LOOKUP_TIMEOUT, context.stream_by_subject(subject));
    match lookup.await {
        Ok(Err(lookup)) if lookup.kind() == GetStreamByNameErrorKind::NotFound => {
            DurablePublishError::NoStream {
                subject: subject.to_owned(),
            }
        }
        Ok(Ok(stream)) => {
            tracing::debug!(stream, subject, "stream has no leader; publish unconfirmed");
            DurablePublishError::Unconfirmed {
                source: Box::new(error),
            }
        }
        Ok(Err(lookup)) => {
            tracing::debug!(subject, error = %lookup, "stream lookup failed; publish unconfirmed");
            DurablePublishError::Unconfirmed {
                source: Box::new(error),
            }
        }
        Err(_) => {
            tracing::debug!(subject, "stream lookup unanswered; publish unconfirmed");
            DurablePublishError::Unconfirmed {
                source: Box::new(error),
            }
        }
    }
}

fn publish_error(subject: &str, error: jetstream::context::PublishError) -> DurablePublishError {
    match error.kind() {
        PublishErrorKind::StreamNotFound => DurablePublishError::NoStream {
            subject: subject.to_owned(),
        },
        PublishErrorKind::MaxPayloadExceeded => DurablePublishError::PayloadTooLarge {
            source: Box::new(error),
        },
        PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence
        | PublishErrorKind::Other => DurablePublishError::Rejected {
            source: Box::new(error),
        },
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => DurablePublishError::Unconfirmed {
            source: Box::new(error),
        },
    }
}

/// A timeout or failed request is the cluster being unreachable or busy (a failover); the
/// rest is JetStream refusing the consumer.
fn consumer_error(error: jetstream::stream::ConsumerError) -> StreamError {
    match error.kind() {
        ConsumerErrorKind::TimedOut | ConsumerErrorKind::Request => StreamError::Connection {
            source: Box::new(error),
        },
        ConsumerErrorKind::InvalidConsumerType
        | ConsumerErrorKind::InvalidName
        | ConsumerErrorKind::JetStream(_)
        | ConsumerErrorKind::Other => StreamError::Rejected {
            source: Box::new(error),
        },
    }
}

type Messages = Pin<
    Box<
        dyn Stream<Item = Result<jetstream::Message, jetstream::consumer::pull::MessagesError>>
            + Send,
    >,
>;

/// A durable pull consumer with explicit acks, delivering the stream from its start.
pub(super) struct Consumer {
    messages: Messages,
}

impl Consumer {
    pub(super) async fn open(
        context: &Context,
        stream: &str,
        durable_name: &str,
    ) -> Result<Self, StreamError> {
        let handle = context
            .get_stream(stream)
            .await
            .map_err(|error| get_error(stream, error))?;
        let config = pull::Config {
            durable_name: Some(durable_name.to_owned()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        };
        let consumer = handle
            .get_or_create_consumer(durable_name, config)
            .await
            .map_err(consumer_error)?;
        let messages = consumer
            .messages()
            .await
            .map_err(|source| StreamError::Connection {
                source: Box::new(source),
            })?;
        Ok(Self {
            messages: Box::pin(messages),
        })
    }

    pub(super) async fn next(&mut self) -> Option<Result<StreamMessage, ConsumeError>> {
        let message = match self.messages.next().await? {
            Ok(message) => message,
            Err(error) => {
                return Some(Err(ConsumeError::Connection {
                    source: Box::new(error),
                }));
            }
        };
        let sequence = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(source) => return Some(Err(ConsumeError::Connection { source })),
        };
        let plain = message_from_nats(message.message.clone());
        Some(Ok(StreamMessage {
            subject: plain.subject,
            headers: plain.headers,
            payload: plain.payload,
            sequence,
            acker: Acker::Nats(Box::new(message)),
        }))
    }
}
