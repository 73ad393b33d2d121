//! The NATS backend: a thin mapping onto `async-nats`, keeping its types out of the API.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::header::{HeaderName, HeaderValue};
use async_nats::{
    ConnectErrorKind, Event, HeaderMap, PublishErrorKind, RequestErrorKind, ServerAddr,
    SubscribeErrorKind,
};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::{
    ConnectError, Headers, Message, PublishError, RequestError, SubscribeError, Subscription,
};

/// Settings for [`Bus::connect_nats`](crate::Bus::connect_nats).
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Connection name shown by the server's monitoring (`connz`); set it to the service name.
    pub name: Option<String>,
    /// How long the initial TCP connect plus handshake may take. Default 5 s.
    pub connect_timeout: Duration,
    /// How long [`Bus::flush`](crate::Bus::flush) waits for the server, and the timeout of
    /// requests the client issues itself ([`Bus::request`](crate::Bus::request) always takes
    /// an explicit one). Default 10 s.
    pub request_timeout: Duration,
    /// Buffer size of each subscription, in messages; when it is full, further messages for
    /// that subscription are dropped and counted (the slow-consumer policy). Default 65536,
    /// the client's own default; lower it to bound memory per subscription.
    pub subscription_capacity: usize,
    /// How many servers of a cluster keep a copy of each stream the bus creates or updates
    /// ([`Bus::ensure_stream`](crate::Bus::ensure_stream)); 1 on a single server, 3 on a
    /// three-node cluster so a stream survives the loss of a node. At most 5. Default 1.
    pub stream_replicas: usize,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            name: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            subscription_capacity: crate::DEFAULT_SUBSCRIPTION_CAPACITY,
            stream_replicas: 1,
        }
    }
}

/// First pause between two rounds of initial connect attempts; doubles up to
/// [`MAX_CONNECT_PAUSE`].
const INITIAL_CONNECT_PAUSE: Duration = Duration::from_millis(50);
const MAX_CONNECT_PAUSE: Duration = Duration::from_secs(1);

/// The NATS server a [`Bus`](crate::Bus) is connected to right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedServer {
    /// The server's name (`server_name`, or its generated id when unnamed).
    pub name: String,
    /// The client address the server announced, `host:port`.
    pub address: String,
    /// The server's client port.
    pub port: u16,
}

/// Splits a comma-separated list of server URLs; names the first entry that does not parse.
fn server_addrs(urls: &str) -> Result<Vec<ServerAddr>, ConnectError> {
    urls.split(',')
        .map(str::trim)
        .map(|url| {
            url.parse::<ServerAddr>()
                .map_err(|error| ConnectError::InvalidUrl {
                    url: url.to_owned(),
                    source: Box::new(error),
                })
        })
        .collect()
}

/// A connected NATS client; clones share the connection.
#[derive(Clone)]
pub(crate) struct Connection {
    client: async_nats::Client,
    events: Arc<EventLog>,
    /// How long [`Connection::flush`] waits for the server; the configured request timeout.
    flush_timeout: Duration,
}

impl Connection {
    /// Connects to one of the servers in `urls` (a comma-separated list).
    ///
    /// The client tries every server in turn; when none answers, it tries them all again,
    /// with a short pause in between, until `options.connect_timeout` has passed — so a
    /// service started next to a NATS cluster that is still coming up waits for it instead
    /// of failing at once. Credentials and TLS errors fail at once. Once connected, the
    /// client reconnects to any server of the list (or one the cluster announced) for as
    /// long as the connection lives.
    pub(crate) async fn connect(urls: &str, options: NatsOptions) -> Result<Self, ConnectError> {
        let servers = server_addrs(urls)?;
        let events = Arc::new(EventLog {
            urls: urls.to_owned(),
            connected_before: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        });
        let events_for_client = Arc::clone(&events);
        let mut connect_options = async_nats::ConnectOptions::new()
            .connection_timeout(options.connect_timeout)
            .request_timeout(Some(options.request_timeout))
            .subscription_capacity(options.subscription_capacity.max(1))
            // Keep reconnecting for as long as the process lives; readiness reports the gap.
            .max_reconnects(None)
            .event_callback(move |event| {
                let events = Arc::clone(&events_for_client);
                async move { events.record(&event) }
            });
        if let Some(name) = options.name {
            connect_options = connect_options.name(name);
        }

        let deadline = Instant::now() + options.connect_timeout;
        let mut pause = INITIAL_CONNECT_PAUSE;
        let client = loop {
            let attempt = connect_options.clone().connect(servers.as_slice());
            let error = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(client)) => break client,
                Ok(Err(error)) => error,
                Err(_) => {
                    return Err(ConnectError::Timeout {
                        url: urls.to_owned(),
                        timeout: options.connect_timeout,
                    });
                }
            };
            let retryable = matches!(
                error.kind(),
                ConnectErrorKind::Io | ConnectErrorKind::Dns | ConnectErrorKind::TimedOut
            );
            if !retryable || Instant::now() + pause >= deadline {
                return Err(connect_error(urls, options.connect_timeout, error));
            }
            tracing::debug!(servers = urls, error = %error, "no nats server answered yet; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_CONNECT_PAUSE);
        };
        Ok(Self {
            client,
            events,
            flush_timeout: options.request_timeout,
        })
    }

    pub(crate) async fn publish(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        let subject_owned = subject.to_owned();
        let result = if headers.is_empty() {
            self.client.publish(subject_owned, payload).await
        } else {
            let headers =
                header_map(&headers).map_err(|name| PublishError::InvalidHeader { name })?;
            self.client
                .publish_with_headers(subject_owned, headers, payload)
                .await
        };
        result.map_err(|error| publish_error(subject, error))
    }

    pub(crate) async fn subscribe(
        &self,
        subject: &str,
        queue_group: Option<&str>,
    ) -> Result<Subscription, SubscribeError> {
        let result = match queue_group {
            None => self.client.subscribe(subject.to_owned()).await,
            Some(group) => {
                self.client
                    .queue_subscribe(subject.to_owned(), group.to_owned())
                    .await
            }
        };
        let subscriber = result.map_err(|error| match error.kind() {
            SubscribeErrorKind::InvalidSubject => SubscribeError::InvalidSubject {
                subject: subject.to_owned(),
            },
            SubscribeErrorKind::InvalidQueueName => SubscribeError::InvalidQueueGroup {
                queue_group: queue_group.unwrap_or_default().to_owned(),
            },
            SubscribeErrorKind::Other => SubscribeError::Connection {
                source: Box::new(error),
            },
        })?;
        Ok(Subscription::from_nats(subject, subscriber))
    }

    pub(crate) async fn request(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Message, RequestError> {
        let headers = header_map(&headers).map_err(|name| RequestError::InvalidHeader { name })?;
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(payload)
            .timeout(Some(timeout));
        let reply = self
            .client
            .send_request(subject.to_owned(), request)
            .await
            .map_err(|error| match error.kind() {
                RequestErrorKind::NoResponders => RequestError::NoResponders,
                RequestErrorKind::TimedOut => RequestError::Timeout,
                RequestErrorKind::InvalidSubject => RequestError::InvalidSubject {
                    subject: subject.to_owned(),
                },
                RequestErrorKind::MaxPayloadExceeded => RequestError::PayloadTooLarge {
                    source: Box::new(error),
                },
                RequestErrorKind::Other => RequestError::Connection {
                    source: Box::new(error),
                },
            })?;
        Ok(message_from_nats(reply))
    }

    /// Waits until the server has processed everything sent on this connection so far.
    ///
    /// `async_nats::Client::flush` only writes the socket buffer, which does not prove that a
    /// subscribe is live on the server. A message sent to a fresh inbox of our own comes back
    /// only after the server has handled every earlier operation of this connection, since it
    /// processes one connection's operations in order. (A `>` subscriber elsewhere sees that
    /// empty message on an `_INBOX.` subject, as it sees request replies.)
    pub(crate) async fn flush(&self) -> Result<(), PublishError> {
        let inbox = self.client.new_inbox();
        let mut echo = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|error| PublishError::Connection {
                source: Box::new(error),
            })?;
        self.client
            .publish(inbox.clone(), Bytes::new())
            .await
            .map_err(|error| publish_error(&inbox, error))?;
        match tokio::time::timeout(self.flush_timeout, echo.next()).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(PublishError::Connection {
                source: Box::new(FlushFailure::Closed),
            }),
            Err(_) => Err(PublishError::Connection {
                source: Box::new(FlushFailure::Timeout(self.flush_timeout)),
            }),
        }
    }

    /// Returns the client, for the JetStream context (`jetstream.rs`).
    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Returns the server this connection is attached to, as it announced itself; `None`
    /// before the first connection.
    pub(crate) fn connected_server(&self) -> Option<ConnectedServer> {
        let info = self.client.server_info();
        (info.port != 0).then(|| ConnectedServer {
            name: info.server_name,
            address: format!("{}:{}", info.host, info.port),
            port: info.port,
        })
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    pub(crate) fn dropped_messages(&self) -> u64 {
        self.events.dropped.load(Ordering::Relaxed)
    }
}

/// Converts a received NATS message; repeated header values are kept in order per name.
pub(crate) fn message_from_nats(message: async_nats::Message) -> Message {
    let mut headers = Headers::new();
    for (name, values) in message.headers.iter().flat_map(HeaderMap::iter) {
        for value in values {
            headers.append(name.to_string(), value.as_str());
        }
    }
    Message {
        subject: message.subject.to_string(),
        reply: message.reply.map(|reply| reply.to_string()),
        headers,
        payload: message.payload,
    }
}

/// Builds a NATS header map, or returns the name of the first header NATS would refuse.
///
/// Validated up front because the client's infallible `insert` panics on a bad name.
pub(crate) fn header_map(headers: &Headers) -> Result<HeaderMap, String> {
    if let Some(name) = headers.first_invalid_name() {
        return Err(name.to_owned());
    }
    let mut map = HeaderMap::new();
    for (name, value) in headers.iter() {
        let header_name = HeaderName::from_str(name).map_err(|_| name.to_owned())?;
        let header_value = HeaderValue::from_str(value).map_err(|_| name.to_owned())?;
        map.append(header_name, header_value);
    }
    Ok(map)
}

fn publish_error(subject: &str, error: async_nats::PublishError) -> PublishError {
    match error.kind() {
        PublishErrorKind::InvalidSubject => PublishError::InvalidSubject {
            subject: subject.to_owned(),
        },
        PublishErrorKind::MaxPayloadExceeded => PublishError::PayloadTooLarge {
            source: Box::new(error),
        },
        PublishErrorKind::Send => PublishError::Connection {
            source: Box::new(error),
        },
    }
}

/// Why [`Connection::flush`] got no confirmation; kept as the source of a `Connection` error.
#[derive(Debug, thiserror::Error)]
enum FlushFailure {
    #[error("nats did not confirm the flush within {0:?}")]
    Timeout(Duration),
    #[error("nats connection closed")]
    Closed,
}

/// Logs the client's connection events and counts its slow-consumer drops.
struct EventLog {
    /// The configured server list, for log lines.
    urls: String,
    /// Tells the first connect from reconnects.
    connected_before: AtomicBool,
    /// Messages the client dropped because a subscription's buffer was full, one per
    /// slow-consumer event. A lower bound: the client discards events when its event queue
    /// (128 entries) is full.
    dropped: AtomicU64,
}

impl EventLog {
    fn record(&self, event: &Event) {
        let server = self.urls.as_str();
        match event {
            Event::Connected if self.connected_before.swap(true, Ordering::Relaxed) => {
                tracing::info!(server, "bus reconnected");
            }
            Event::Connected => tracing::info!(server, "bus connected"),
            Event::Disconnected => tracing::warn!(server, "bus connection lost"),
            Event::LameDuckMode => tracing::warn!(server, "nats server entered lame duck mode"),
            Event::Draining => tracing::info!(server, "bus connection draining"),
            Event::Closed => tracing::info!(server, "bus connection closed"),
            Event::SlowConsumer(sid) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                // One event per dropped message: too many for warn; the counter is the signal.
                tracing::debug!(server, sid, "bus subscription buffer full, message dropped");
            }
            Event::ServerError(error) => {
                tracing::warn!(server, error = %error, "nats server error")
            }
            Event::ClientError(error) => {
                tracing::warn!(server, error = %error, "nats client error")
            }
        }
    }
}

fn connect_error(url: &str, timeout: Duration, error: async_nats::ConnectError) -> ConnectError {
    match error.kind() {
        ConnectErrorKind::ServerParse => ConnectError::InvalidUrl {
            url: url.to_owned(),
            source: Box::new(error),
        },
        ConnectErrorKind::TimedOut => ConnectError::Timeout {
            url: url.to_owned(),
            timeout,
        },
        ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
            ConnectError::Authentication {
                source: Box::new(error),
            }
        }
        ConnectErrorKind::Tls => ConnectError::Tls {
            source: Box::new(error),
        },
        ConnectErrorKind::Dns | ConnectErrorKind::Io | ConnectErrorKind::MaxReconnects => {
            ConnectError::Unreachable {
                url: url.to_owned(),
                source: Box::new(error),
            }
        }
    }
}
