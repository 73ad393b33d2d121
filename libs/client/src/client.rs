//! [`Client`]: the application's handle on one managed connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use protocol::{Ack, ClientMessage, NodeState};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::builder::{ClientBuilder, Settings};
use crate::driver::Driver;
use crate::error::{ClosedError, ConnectError};
use crate::event::Events;
use crate::state::{ConnectionState, DisconnectReason};

/// Requests from handles to the driver. The channel is bounded; a caller waits while it is
/// full, which only happens when the driver is busy writing (each write is time-bounded).
const COMMAND_CAPACITY: usize = 256;

/// What a handle asks the driver to do.
#[derive(Debug)]
pub(crate) enum Command {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
    Send(ClientMessage),
    Close,
}

/// Counters shared by the driver and every handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub attempts: AtomicU64,
    pub connects: AtomicU64,
    pub watchdog_timeouts: AtomicU64,
    pub offline_dropped: AtomicU64,
    pub offline_queued: AtomicU64,
    pub events_dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }
}

/// A snapshot of a client's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientStats {
    /// Connection attempts made (TCP connect + upgrade), successful or not.
    pub attempts: u64,
    /// Connections the server greeted (`connection_established`).
    pub connects: u64,
    /// Connections declared dead by the heartbeat watchdog.
    pub watchdog_timeouts: u64,
    /// Messages dropped from the full offline queue (oldest first).
    pub offline_dropped: u64,
    /// Messages waiting in the offline queue now.
    pub offline_queued: u64,
    /// Events dropped because the application did not read [`Events`] fast enough.
    pub events_dropped: u64,
}

/// A managed connection to a Switchboard gateway. Cheap to clone; clones share the
/// connection. When every clone is dropped, the connection is closed (1000).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    command_tx: mpsc::Sender<Command>,
    state_rx: watch::Receiver<ConnectionState>,
    counters: Arc<Counters>,
    /// The driver's ends until `connect` takes them.
    unstarted: Mutex<Option<(mpsc::Receiver<Command>, watch::Sender<ConnectionState>)>>,
}

impl Client {
    /// Starts building a client for `url` (`ws://host:port/api/ws/connect`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    pub(crate) fn new(settings: Settings) -> Self {
        let (command_tx, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (state_tx, state_rx) = watch::channel(ConnectionState::Disconnected {
            reason: DisconnectReason::NotStarted,
        });
        Self {
            inner: Arc::new(Inner {
                settings,
                command_tx,
                state_rx,
                counters: Arc::new(Counters::default()),
                unstarted: Mutex::new(Some((command_rx, state_tx))),
            }),
        }
    }

    #[cfg(test)]
    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Spawns the connection driver on the current Tokio runtime and returns the event
    /// stream. Calls made before `connect` (subscribe, publish…) are kept and applied once
    /// connected.
    ///
    /// # Errors
    /// [`ConnectError::AlreadyStarted`] on a second call, [`ConnectError::NoRuntime`] outside
    /// a Tokio runtime.
    pub fn connect(&self) -> Result<Events, ConnectError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConnectError::NoRuntime)?;
        let (command_rx, state_tx) = self
            .inner
            .unstarted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .ok_or(ConnectError::AlreadyStarted)?;
        // Connecting from here on, so no one sees a started client as `NotStarted`.
        state_tx.send_replace(ConnectionState::Connecting);
        let (events_tx, events_rx) = mpsc::channel(self.inner.settings.event_buffer);
        let driver = Driver::new(
            self.inner.settings.clone(),
            command_rx,
            state_tx,
            events_tx,
            self.inner.counters.clone(),
        );
        // The driver ends by itself once closed, refused, given up or orphaned (every handle
        // dropped closes the command channel), so it needs no owner to stop it.
        runtime.spawn(driver.run());
        Ok(Events { events_rx })
    }

    /// Returns the current connection state.
    pub fn state(&self) -> ConnectionState {
        self.inner.state_rx.borrow().clone()
    }

    /// Returns a receiver that sees every state change.
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state_rx.clone()
    }

    /// Waits until the client is connected.
    ///
    /// # Errors
    /// The [`DisconnectReason`] if the client stops for good first.
    pub async fn wait_connected(&self) -> Result<(), DisconnectReason> {
        let mut state_rx = self.inner.state_rx.clone();
        let reached = state_rx
            .wait_for(|state| {
                state.is_connected()
                    || matches!(state, ConnectionState::Disconnected { reason }
                        if *reason != DisconnectReason::NotStarted)
            })
            .await
            .map(|state| state.clone());
        match reached {
            Ok(ConnectionState::Disconnected { reason }) => Err(reason),
            Ok(_) => Ok(()),
            Err(_) => Err(DisconnectReason::Closed),
        }
    }

    /// Returns a snapshot of the client's counters.
    pub fn stats(&self) -> ClientStats {
        let counters = &self.inner.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ClientStats {
            attempts: read(&counters.attempts),
            connects: read(&counters.connects),
            watchdog_timeouts: read(&counters.watchdog_timeouts),
            offline_dropped: read(&counters.offline_dropped),
            offline_queued: read(&counters.offline_queued),
            events_dropped: read(&counters.events_dropped),
        }
    }

    /// Joins `rooms` now (when connected) and after every reconnect. The server confirms with
    /// [`crate::ClientEvent::Subscribed`] and refuses single rooms with an error event.
    ///
    /// # Errors
    /// [`ClosedError`] once the client has stopped.
    pub async fn subscribe<I, S>(&self, rooms: I) -> Result<(), ClosedError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let rooms = rooms.into_iter().map(Into::into).collect();
        self.command(Command::Subscribe(rooms)).await
    }

    /// Leaves `rooms`; they are no longer joined after reconnects.
    ///
    /// # Errors
    /// [`ClosedError`] once the client has stopped.
    pub async fn unsubscribe<I, S>(&self, rooms: I) -> Result<(), ClosedError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let rooms = rooms.into_iter().map(Into::into).collect();
        self.command(Command::Unsubscribe(rooms)).await
    }

    /// Publishes `event` with `data` to `room` (the token must allow it).
    ///
    /// # Errors
    /// [`ClosedError`] once the client has stopped.
    pub async fn publish(
        &self,
        room: impl Into<String>,
        event: impl Into<String>,
        data: Value,
    ) -> Result<(), ClosedError> {
        self.send(ClientMessage::Publish {
            room: room.into(),
            event: event.into(),
            data,
        })
        .await
    }

    /// Sends a node state report (node tokens only; `node_id` must match the token's).
    ///
    /// # Errors
    /// [`ClosedError`] once the client has stopped.
    pub async fn send_node_state(&self, state: NodeState) -> Result<(), ClosedError> {
        self.send(ClientMessage::NodeState(state)).await
    }

    /// Answers a [`crate::ClientEvent::Command`].
    ///
    /// # Errors
    /// [`ClosedError`] once the client has stopped.
    pub async fn ack(&self, ack: Ack) -> Result<(), ClosedError> {
        self.send(ClientMessage::Ack(ack)).await
    }

    /// Sends any client message. Subscriptions are tracked for resubscription; other
    /// messages go out now when connected, else wait in the offline queue.
    ///
    /// # Errors
    /// [`ClosedError`] once the client has stopped.
    pub async fn send(&self, message: ClientMessage) -> Result<(), ClosedError> {
        let command = match message {
            ClientMessage::Subscribe { rooms, .. } => Command::Subscribe(rooms),
            ClientMessage::Unsubscribe { rooms } => Command::Unsubscribe(rooms),
            other => Command::Send(other),
        };
        self.command(command).await
    }

    /// Closes the connection cleanly (close frame 1000) and waits until the client is
    /// `Disconnected`. Messages still in the offline queue are discarded. Closing a closed
    /// client does nothing.
    pub async fn close(&self) {
        let unstarted = self
            .inner
            .unstarted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some((_command_rx, state_tx)) = unstarted {
            state_tx.send_replace(ConnectionState::Disconnected {
                reason: DisconnectReason::Closed,
            });
            return;
        }
        if self.inner.command_tx.send(Command::Close).await.is_err() {
            return;
        }
        let mut state_rx = self.inner.state_rx.clone();
        let _ = state_rx
            .wait_for(|state| {
                matches!(state, ConnectionState::Disconnected { reason }
                    if *reason != DisconnectReason::NotStarted)
            })
            .await;
    }

    async fn command(&self, command: Command) -> Result<(), ClosedError> {
        self.inner
            .command_tx
            .send(command)
            .await
            .map_err(|_| ClosedError)
    }
}
