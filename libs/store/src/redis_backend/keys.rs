//! Names of the Redis keys, written down once (the Lua scripts that must build keys from
//! ids they read follow the same layout and say so). The layout is documented in the
//! crate docs.

/// Builds key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `"<key_prefix>:"`, or empty for an empty key prefix.
    prefix: String,
}

impl Keys {
    pub(crate) fn new(key_prefix: &str) -> Self {
        let prefix = if key_prefix.is_empty() {
            String::new()
        } else {
            format!("{key_prefix}:")
        };
        Self { prefix }
    }

    /// The prefix every key starts with, as passed to the Lua scripts.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Set of ids of every gateway that has entries (live or not yet swept).
    pub(crate) fn gateways(&self) -> String {
        format!("{}gateways", self.prefix)
    }

    /// The gateway's `GatewayInfo` JSON, with a TTL.
    pub(crate) fn alive(&self, gateway_id: &str) -> String {
        format!("{}gw:{gateway_id}:alive", self.prefix)
    }

    /// Hash: connection id → `ConnectionRecord` JSON.
    pub(crate) fn conns(&self, gateway_id: &str) -> String {
        format!("{}gw:{gateway_id}:conns", self.prefix)
    }

    /// Hash: room → number of the gateway's connections in it.
    pub(crate) fn rooms(&self, gateway_id: &str) -> String {
        format!("{}gw:{gateway_id}:rooms", self.prefix)
    }

    /// Set of the gateway's connection ids in `room`.
    pub(crate) fn room(&self, gateway_id: &str, room: &str) -> String {
        format!("{}{room}", self.room_prefix(gateway_id))
    }

    /// Everything before the room name in [`Keys::room`].
    pub(crate) fn room_prefix(&self, gateway_id: &str) -> String {
        format!("{}gw:{gateway_id}:room:", self.prefix)
    }

    /// Set of the rooms one connection is in, so removing it touches only those rooms.
    pub(crate) fn conn_rooms(&self, gateway_id: &str, connection_id: &str) -> String {
        format!("{}gw:{gateway_id}:conn:{connection_id}:rooms", self.prefix)
    }

    /// Set of node ids routed to the gateway (some may since have moved elsewhere).
    pub(crate) fn nodes(&self, gateway_id: &str) -> String {
        format!("{}gw:{gateway_id}:nodes", self.prefix)
    }

    /// Hash: connection id → gateway id, for one user.
    pub(crate) fn user(&self, user_id: &str) -> String {
        format!("{}user:{user_id}", self.prefix)
    }

    /// The id of the gateway a node is connected to.
    pub(crate) fn node(&self, node_id: &str) -> String {
        format!("{}node:{node_id}", self.prefix)
    }

    /// Counter of one fixed rate window.
    pub(crate) fn rate(&self, key: &str, window_index: u64) -> String {
        format!("{}rate:{key}:{window_index}", self.prefix)
    }

    /// Connections ever opened.
    pub(crate) fn total_connections(&self) -> String {
        format!("{}stats:total_connections", self.prefix)
    }

    /// Messages ever delivered.
    pub(crate) fn total_messages(&self) -> String {
        format!("{}stats:total_messages", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let keys = Keys::new("sb");
        assert_eq!(keys.gateways(), "sb:gateways");
        assert_eq!(keys.alive("g1"), "sb:gw:g1:alive");
        assert_eq!(keys.conns("g1"), "sb:gw:g1:conns");
        assert_eq!(keys.rooms("g1"), "sb:gw:g1:rooms");
        assert_eq!(keys.room("g1", "metrics"), "sb:gw:g1:room:metrics");
        assert_eq!(keys.conn_rooms("g1", "c1"), "sb:gw:g1:conn:c1:rooms");
        assert_eq!(keys.nodes("g1"), "sb:gw:g1:nodes");
        assert_eq!(keys.user("u1"), "sb:user:u1");
        assert_eq!(keys.node("n1"), "sb:node:n1");
        assert_eq!(keys.rate("conn:1.2.3.4", 7), "sb:rate:conn:1.2.3.4:7");
        assert_eq!(keys.total_connections(), "sb:stats:total_connections");
        assert_eq!(keys.total_messages(), "sb:stats:total_messages");
    }

    #[test]
    fn empty_prefix_leaves_keys_unprefixed() {
        assert_eq!(Keys::new("").gateways(), "gateways");
    }
}
