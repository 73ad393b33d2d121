//! The in-memory engine: the embedded product engine and the test double in one.
//!
//! It follows NATS core semantics so one contract suite passes on both backends: `*`/`>`
//! subjects, queue groups (one member of each group per message, groups keyed by name across
//! all matching subjects as in the NATS sublist), request/reply through `_INBOX.` subjects,
//! and the slow-consumer policy: every subscription has a bounded buffer, and a message that
//! does not fit is dropped for that subscriber and counted, so a publisher never waits.
//!
//! Publishing takes one read lock, finds concrete subjects with one hash lookup and scans only
//! the (short) list of wildcard patterns. The message is put in one `Arc` shared by every
//! receiver; each receiver unwraps or clones it when it takes it off its buffer, which keeps
//! the copying off the publisher's path.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use protocol::pattern;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::{Headers, Message, RequestError};

/// Prefix of generated reply subjects; the same as NATS's, so a `>` subscriber sees the same
/// traffic on both backends.
const INBOX_PREFIX: &str = "_INBOX.";

/// The shared state of one in-memory bus; every [`crate::Bus`] clone points at the same one.
pub(crate) struct Engine {
    table: RwLock<Table>,
    /// Buffer size of each subscription, in messages.
    capacity: usize,
    next_member_id: AtomicU64,
    next_inbox_id: AtomicU64,
    dropped: AtomicU64,
}

/// Who is subscribed to what.
#[derive(Default)]
struct Table {
    /// Interest in concrete subjects: one hash lookup per publish.
    exact: HashMap<String, Interest>,
    /// Interest in wildcard patterns, scanned on every publish. Services hold a handful of
    /// these (`room.>`-style), so a list beats a trie here. Never holds an empty `Interest`.
    wildcard: Vec<(String, Interest)>,
}

/// The subscriptions on one subject or pattern. Never empty while in the table.
#[derive(Default)]
struct Interest {
    plain: Vec<Member>,
    groups: Vec<QueueGroup>,
}

struct QueueGroup {
    name: String,
    members: Vec<Member>,
    /// Round-robin cursor over the members.
    next: AtomicUsize,
}

/// The sending end of one subscription's buffer.
struct Member {
    id: u64,
    tx: mpsc::Sender<Arc<Message>>,
}

#[derive(PartialEq)]
enum Delivery {
    Sent,
    Dropped,
    Closed,
}

impl Engine {
    /// Returns an engine whose subscriptions buffer `capacity` messages each (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            table: RwLock::default(),
            // tokio's bounded channel rejects a zero capacity.
            capacity: capacity.max(1),
            next_member_id: AtomicU64::new(0),
            next_inbox_id: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Returns how many messages were dropped because a subscriber's buffer was full.
    pub(crate) fn dropped_messages(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Delivers a message to every matching subscriber. The caller has checked the subject.
    pub(crate) fn publish(
        &self,
        subject: &str,
        reply: Option<String>,
        headers: Headers,
        payload: Bytes,
    ) {
        let message = Message {
            subject: subject.to_owned(),
            reply,
            headers,
            payload,
        };
        self.deliver_to_subscribers(Arc::new(message));
    }

    /// Publishes a request with a fresh inbox as its reply subject and waits for one reply.
    pub(crate) async fn request(
        self: &Arc<Self>,
        subject: &str,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Message, RequestError> {
        let inbox_id = self.next_inbox_id.fetch_add(1, Ordering::Relaxed);
        let inbox = format!("{INBOX_PREFIX}{inbox_id}");
        // Subscribed before publishing, so a responder cannot answer into the void.
        let mut replies = self.subscribe(&inbox, None);
        let request = Message {
            subject: subject.to_owned(),
            reply: Some(inbox),
            headers,
            payload,
        };
        if !self.deliver_to_subscribers(Arc::new(request)) {
            return Err(RequestError::NoResponders);
        }
        match tokio::time::timeout(timeout, replies.recv()).await {
            Ok(Some(reply)) => Ok(reply),
            // `replies` keeps its sender registered, so the buffer cannot close while we wait.
            Ok(None) | Err(_) => Err(RequestError::Timeout),
        }
    }

    /// Subscribes to `subject` (which may hold wildcards), optionally as a queue group member.
    /// The caller has checked the subject and queue group.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        subject: &str,
        queue_group: Option<&str>,
    ) -> Receiver {
        let id = self.next_member_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.capacity);
        self.write_table()
            .interest_mut(subject)
            .add(Member { id, tx }, queue_group);
        Receiver {
            rx,
            _registration: Registration {
                engine: Arc::clone(self),
                id,
                subject: subject.to_owned(),
                queue_group: queue_group.map(str::to_owned),
            },
        }
    }

    /// Hands `message` to every matching plain subscriber and to one member of each matching
    /// queue group. Returns whether anything was subscribed (not whether it fitted).
    fn deliver_to_subscribers(&self, message: Arc<Message>) -> bool {
        let table = self.read_table();
        let subject = message.subject.as_str();
        let exact = table.exact.get(subject);
        let matching = || {
            let wildcard = table
                .wildcard
                .iter()
                .filter(move |(pattern, _)| pattern::matches(pattern, subject))
                .map(|(_, interest)| interest);
            exact.into_iter().chain(wildcard)
        };

        let mut had_interest = false;
        for (index, interest) in matching().enumerate() {
            had_interest = true;
            for member in &interest.plain {
                self.deliver(member, &message);
            }
            for group in &interest.groups {
                // NATS groups queue subscribers by name across every matching subject, so a
                // group seen on an earlier match was already served.
                let served_earlier = matching()
                    .take(index)
                    .any(|earlier| earlier.group(&group.name).is_some());
                if !served_earlier {
                    let same_group_later = matching()
                        .skip(index + 1)
                        .filter_map(|later| later.group(&group.name));
                    self.deliver_to_one_member(group, same_group_later, &message);
                }
            }
        }
        had_interest
    }

    fn deliver_to_one_member<'a>(
        &self,
        group: &'a QueueGroup,
        same_group_later: impl Iterator<Item = &'a QueueGroup> + Clone,
        message: &Arc<Message>,
    ) {
        let members = || {
            let later_members = same_group_later.clone().flat_map(|later| &later.members);
            group.members.iter().chain(later_members)
        };
        let member_count = members().count();
        let start = group.next.fetch_add(1, Ordering::Relaxed) % member_count;
        // A member whose receiver is gone but not yet unregistered is skipped; a full one
        // drops the message (the slow-consumer policy), as NATS does.
        for member in members().cycle().skip(start).take(member_count) {
            if self.deliver(member, message) != Delivery::Closed {
                return;
            }
        }
    }

    fn deliver(&self, member: &Member, message: &Arc<Message>) -> Delivery {
        match member.tx.try_send(Arc::clone(message)) {
            Ok(()) => Delivery::Sent,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Delivery::Dropped
            }
            Err(TrySendError::Closed(_)) => Delivery::Closed,
        }
    }

    // No code panics while holding the table lock, so poisoning cannot leave it half-updated.
    /// Ends every subscription on exactly `subject` (pattern as subscribed): their
    /// receivers see the end of the stream, as after a closed NATS connection. Returns how
    /// many ended.
    #[cfg(feature = "test-util")]
    pub(crate) fn end_subscriptions(&self, subject: &str) -> usize {
        let mut table = self.write_table();
        let interest = if pattern::has_wildcard(subject) {
            table
                .wildcard
                .iter()
                .position(|(p, _)| p == subject)
                .map(|index| table.wildcard.swap_remove(index).1)
        } else {
            table.exact.remove(subject)
        };
        interest.map_or(0, |interest| {
            interest.plain.len()
                + interest
                    .groups
                    .iter()
                    .map(|group| group.members.len())
                    .sum::<usize>()
        })
    }

    fn read_table(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_table(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    fn interest_mut(&mut self, subject: &str) -> &mut Interest {
        if !pattern::has_wildcard(subject) {
            return self.exact.entry(subject.to_owned()).or_default();
        }
        let index = match self.wildcard.iter().position(|(p, _)| p == subject) {
            Some(index) => index,
            None => {
                self.wildcard
                    .push((subject.to_owned(), Interest::default()));
                self.wildcard.len() - 1
            }
        };
        &mut self.wildcard[index].1
    }

    fn remove(&mut self, subject: &str, queue_group: Option<&str>, id: u64) {
        if !pattern::has_wildcard(subject) {
            if let Some(interest) = self.exact.get_mut(subject) {
                interest.remove(id, queue_group);
                if interest.is_empty() {
                    self.exact.remove(subject);
                }
            }
        } else if let Some(index) = self.wildcard.iter().position(|(p, _)| p == subject) {
            let interest = &mut self.wildcard[index].1;
            interest.remove(id, queue_group);
            if interest.is_empty() {
                self.wildcard.swap_remove(index);
            }
        }
    }
}

impl Interest {
    fn group(&self, name: &str) -> Option<&QueueGroup> {
        self.groups.iter().find(|group| group.name == name)
    }

    fn add(&mut self, member: Member, queue_group: Option<&str>) {
        let Some(name) = queue_group else {
            self.plain.push(member);
            return;
        };
        match self.groups.iter_mut().find(|group| group.name == name) {
            Some(group) => group.members.push(member),
            None => self.groups.push(QueueGroup {
                name: name.to_owned(),
                members: vec![member],
                next: AtomicUsize::new(0),
            }),
        }
    }

    fn remove(&mut self, id: u64, queue_group: Option<&str>) {
        match queue_group {
            None => self.plain.retain(|member| member.id != id),
            Some(name) => {
                for group in self.groups.iter_mut().filter(|group| group.name == name) {
                    group.members.retain(|member| member.id != id);
                }
                self.groups.retain(|group| !group.members.is_empty());
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.groups.is_empty()
    }
}

/// The receiving end of one in-memory subscription; unregisters itself when dropped.
pub(crate) struct Receiver {
    rx: mpsc::Receiver<Arc<Message>>,
    _registration: Registration,
}

impl Receiver {
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.rx
            .poll_recv(cx)
            .map(|message| message.map(Arc::unwrap_or_clone))
    }

    async fn recv(&mut self) -> Option<Message> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}

/// Removes its subscription from the table on drop, so dropped subscriptions leave nothing.
struct Registration {
    engine: Arc<Engine>,
    id: u64,
    subject: String,
    queue_group: Option<String>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.engine
            .write_table()
            .remove(&self.subject, self.queue_group.as_deref(), self.id);
    }
}

#[cfg(test)]
mod tests;
