//! NATS subject names (ARCHITECTURE.md § Subjects) — the contract for extra services.
//!
//! Every subject is built here; services never spell one out. The prefix (`sb` by default)
//! is configurable so several deployments can share one NATS.

use crate::room::RoomName;

/// Default subject prefix.
pub const DEFAULT_PREFIX: &str = "sb";

/// Queue group gateways use on `sb.node.<node_id>.cmd`, so one command reaches one connection
/// of the node even when it is connected twice.
pub const NODE_COMMAND_QUEUE_GROUP: &str = "sb-gateway-node-cmd";

/// Builds and parses subjects under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
    room_prefix: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Subjects {
    /// Creates the subject map under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            room_prefix: format!("{prefix}.room."),
        }
    }

    /// Returns the prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `sb.room.<room>`: room message envelopes, any service → gateways.
    pub fn room(&self, room: &RoomName) -> String {
        format!("{}{}", self.room_prefix, room.as_str())
    }

    /// `sb.room.>`: every room.
    pub fn all_rooms(&self) -> String {
        format!("{}>", self.room_prefix)
    }

    /// Returns the room of a `sb.room.<room>` subject, if it is one.
    pub fn room_of<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject.strip_prefix(self.room_prefix.as_str())
    }

    /// `sb.user.<sub>`: personal messages to every connection of user `sub`, any service →
    /// the gateways holding that user. `sub` is encoded by
    /// [`encode_subject_token`](crate::direct::encode_subject_token) (`.` and other
    /// characters a subject token cannot hold become `%HH`).
    pub fn user(&self, sub: &str) -> String {
        format!(
            "{}.user.{}",
            self.prefix,
            crate::direct::encode_subject_token(sub)
        )
    }

    /// `sb.user.*`: every user's personal messages (one subscription per gateway, when it
    /// routes them itself).
    pub fn all_users(&self) -> String {
        format!("{}.user.*", self.prefix)
    }

    /// Returns the (decoded) `sub` of a `sb.user.<sub>` subject, if it is one.
    pub fn user_of(&self, subject: &str) -> Option<String> {
        let token = subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".user.")?;
        crate::direct::decode_subject_token(token)
    }

    /// `sb.conn.<connection_id>`: a message to one connection, any service → the gateway
    /// holding it. The id must satisfy
    /// [`is_valid_connection_id`](crate::direct::is_valid_connection_id).
    pub fn connection(&self, connection_id: &str) -> String {
        format!("{}.conn.{connection_id}", self.prefix)
    }

    /// `sb.conn.*`: every connection's messages (one subscription per gateway).
    pub fn all_connections(&self) -> String {
        format!("{}.conn.*", self.prefix)
    }

    /// Returns the connection id of a `sb.conn.<connection_id>` subject, if it is one.
    pub fn connection_of<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".conn.")
    }

    /// `sb.broadcast`: messages to every connection of every gateway.
    pub fn broadcast(&self) -> String {
        format!("{}.broadcast", self.prefix)
    }

    /// `sb.node.<node_id>.cmd`: commands to a node, request/reply.
    pub fn node_command(&self, node_id: &str) -> String {
        format!("{}.node.{node_id}.cmd", self.prefix)
    }

    /// `sb.ingest.node.<node_id>`: node state reports, gateway → publisher.
    pub fn ingest_node(&self, node_id: &str) -> String {
        format!("{}.ingest.node.{node_id}", self.prefix)
    }

    /// `sb.ingest.node.*`: every node's state reports.
    pub fn ingest_all_nodes(&self) -> String {
        format!("{}.ingest.node.*", self.prefix)
    }

    /// `sb.ingest.metric`: metric samples → aggregator.
    pub fn ingest_metric(&self) -> String {
        format!("{}.ingest.metric", self.prefix)
    }

    /// `sb.ingest.batch.generated`: generated ML batches (JetStream).
    pub fn batch_generated(&self) -> String {
        format!("{}.ingest.batch.generated", self.prefix)
    }

    /// `sb.ingest.batch.validated`: validated ML batches (JetStream).
    pub fn batch_validated(&self) -> String {
        format!("{}.ingest.batch.validated", self.prefix)
    }

    /// `sb.gateway.nodes.<gateway_id>`: a gateway's node connection figures
    /// ([`NodeLinksReport`](crate::nodes::NodeLinksReport)), gateways → publisher.
    pub fn gateway_node_links(&self, gateway_id: &str) -> String {
        format!("{}.gateway.nodes.{gateway_id}", self.prefix)
    }

    /// `sb.gateway.nodes.*`: every gateway's node connection figures.
    pub fn all_gateway_node_links(&self) -> String {
        format!("{}.gateway.nodes.*", self.prefix)
    }

    /// `sb.api.<service>.<method>`: request/reply queries.
    pub fn api(&self, service: &str, method: &str) -> String {
        format!("{}.api.{service}.{method}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_architecture_table() {
        let subjects = Subjects::default();
        let room = RoomName::parse("nodes").unwrap();
        assert_eq!(subjects.room(&room), "sb.room.nodes");
        assert_eq!(subjects.room_of("sb.room.nodes.a"), Some("nodes.a"));
        assert_eq!(subjects.room_of("sb.ingest.metric"), None);
        assert_eq!(subjects.node_command("n1"), "sb.node.n1.cmd");
        assert_eq!(subjects.user("alice"), "sb.user.alice");
        assert_eq!(subjects.user("a.b@x.io"), "sb.user.a%2Eb@x%2Eio");
        assert_eq!(subjects.connection("c-1"), "sb.conn.c-1");
        assert_eq!(subjects.all_users(), "sb.user.*");
        assert_eq!(
            subjects.user_of("sb.user.a%2Eb@x%2Eio").as_deref(),
            Some("a.b@x.io")
        );
        assert_eq!(subjects.user_of("sb.conn.a"), None);
        assert_eq!(subjects.all_connections(), "sb.conn.*");
        assert_eq!(subjects.connection_of("sb.conn.c-1"), Some("c-1"));
        assert_eq!(subjects.connection_of("sb.user.c-1"), None);
        assert_eq!(subjects.broadcast(), "sb.broadcast");
        assert_eq!(subjects.ingest_node("n1"), "sb.ingest.node.n1");
        assert_eq!(subjects.gateway_node_links("gw-1"), "sb.gateway.nodes.gw-1");
        assert_eq!(subjects.all_gateway_node_links(), "sb.gateway.nodes.*");
        assert_eq!(subjects.batch_validated(), "sb.ingest.batch.validated");
        assert_eq!(
            subjects.api("aggregator", "history"),
            "sb.api.aggregator.history"
        );
    }

    #[test]
    fn prefix_is_configurable() {
        let subjects = Subjects::new("acme");
        assert_eq!(subjects.all_rooms(), "acme.room.>");
    }
}
