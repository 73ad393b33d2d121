//! A stream of messages from one subscription, whichever backend it came from.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};

use crate::Message;
use crate::memory;
use crate::nats::message_from_nats;

/// The messages of one subscription, in publish order per publisher.
///
/// Implements [`Stream`]; [`Subscription::next`] is the same without importing `StreamExt`.
/// Each subscription has its own bounded buffer: when the reader falls behind, new messages
/// for it are dropped and counted in [`Bus::dropped_messages`](crate::Bus::dropped_messages)
/// rather than slowing the publisher down. Dropping the subscription unsubscribes.
///
/// On the memory backend the stream never ends; on NATS it ends when the client is closed.
#[must_use = "dropping a Subscription unsubscribes"]
pub struct Subscription {
    subject: String,
    receiver: Receiver,
}

enum Receiver {
    Memory(memory::Receiver),
    Nats(async_nats::Subscriber),
}

impl Subscription {
    pub(crate) fn from_memory(subject: &str, receiver: memory::Receiver) -> Self {
        Self {
            subject: subject.to_owned(),
            receiver: Receiver::Memory(receiver),
        }
    }

    pub(crate) fn from_nats(subject: &str, subscriber: async_nats::Subscriber) -> Self {
        Self {
            subject: subject.to_owned(),
            receiver: Receiver::Nats(subscriber),
        }
    }

    /// Returns the subject or pattern this subscription was made with.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Waits for the next message; `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<Message> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        match &mut self.get_mut().receiver {
            Receiver::Memory(receiver) => receiver.poll_recv(cx),
            Receiver::Nats(subscriber) => subscriber
                .poll_next_unpin(cx)
                .map(|message| message.map(message_from_nats)),
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}
