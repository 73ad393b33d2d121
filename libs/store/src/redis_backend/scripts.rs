//! The Lua scripts that make multi-key updates atomic. Each file names its KEYS and ARGV.
//!
//! `redis::Script` sends `EVALSHA` and falls back to loading the script on `NOSCRIPT`, so the
//! scripts survive a Redis restart (which empties the script cache).

use redis::Script;

/// Every script the Redis backend runs, hashed once at connect time.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) add_connections: Script,
    pub(crate) remove_connection: Script,
    pub(crate) join_rooms: Script,
    pub(crate) leave_room: Script,
    pub(crate) purge_gateway: Script,
    pub(crate) user_connections: Script,
    pub(crate) node_route: Script,
    pub(crate) remove_node_route: Script,
    pub(crate) live_gateways: Script,
    pub(crate) cluster_stats: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            add_connections: Script::new(include_str!("lua/add_connection.lua")),
            remove_connection: Script::new(include_str!("lua/remove_connection.lua")),
            join_rooms: Script::new(include_str!("lua/join_room.lua")),
            leave_room: Script::new(include_str!("lua/leave_room.lua")),
            purge_gateway: Script::new(include_str!("lua/purge_gateway.lua")),
            user_connections: Script::new(include_str!("lua/user_connections.lua")),
            node_route: Script::new(include_str!("lua/node_route.lua")),
            remove_node_route: Script::new(include_str!("lua/remove_node_route.lua")),
            live_gateways: Script::new(include_str!("lua/live_gateways.lua")),
            cluster_stats: Script::new(include_str!("lua/cluster_stats.lua")),
        }
    }
}
