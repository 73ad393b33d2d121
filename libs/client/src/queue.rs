//! The offline send queue: messages sent while disconnected, flushed on connect.

use std::collections::VecDeque;

use protocol::ClientMessage;

/// A bounded FIFO of client messages. When full, pushing drops the oldest message: the
/// newest state is the one worth delivering (a fresh `node_state` supersedes a stale one).
#[derive(Debug)]
pub(crate) struct OfflineQueue {
    messages: VecDeque<ClientMessage>,
    capacity: usize,
}

impl OfflineQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            messages: VecDeque::with_capacity(capacity.min(64)),
            capacity,
        }
    }

    /// Appends `message`; returns how many messages were dropped to make room (0 or 1, or 1
    /// for the message itself when the capacity is 0).
    pub(crate) fn push(&mut self, message: ClientMessage) -> u64 {
        if self.capacity == 0 {
            return 1;
        }
        let mut dropped = 0;
        while self.messages.len() >= self.capacity {
            self.messages.pop_front();
            dropped += 1;
        }
        self.messages.push_back(message);
        dropped
    }

    /// Puts back a message whose send failed, ahead of the rest; returns 1 if it did not fit.
    pub(crate) fn push_front(&mut self, message: ClientMessage) -> u64 {
        if self.messages.len() >= self.capacity {
            return 1;
        }
        self.messages.push_front(message);
        0
    }

    pub(crate) fn pop(&mut self) -> Option<ClientMessage> {
        self.messages.pop_front()
    }

    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(id: &str) -> ClientMessage {
        ClientMessage::Ack(protocol::Ack {
            id: id.into(),
            ok: true,
            result: None,
            error: None,
        })
    }

    fn id_of(message: ClientMessage) -> String {
        match message {
            ClientMessage::Ack(ack) => ack.id,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn full_queue_drops_the_oldest_and_counts_it() {
        let mut queue = OfflineQueue::new(2);
        assert_eq!(queue.push(ack("a")), 0);
        assert_eq!(queue.push(ack("b")), 0);
        assert_eq!(queue.push(ack("c")), 1);
        assert_eq!(queue.len(), 2);
        assert_eq!(id_of(queue.pop().unwrap()), "b");
        assert_eq!(id_of(queue.pop().unwrap()), "c");
        assert!(queue.pop().is_none());
    }

    #[test]
    fn zero_capacity_drops_everything() {
        let mut queue = OfflineQueue::new(0);
        assert_eq!(queue.push(ack("a")), 1);
        assert_eq!(queue.push_front(ack("b")), 1);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn a_failed_send_goes_back_to_the_front() {
        let mut queue = OfflineQueue::new(3);
        queue.push(ack("b"));
        assert_eq!(queue.push_front(ack("a")), 0);
        assert_eq!(id_of(queue.pop().unwrap()), "a");
    }
}
