-- Returns {total_connections, total_messages, gateways}: each gateway is
-- {info JSON, connection count, {room, count, room, count, ...}}, live gateways only.
-- Cost: O(gateways + rooms); connections are counted with HLEN, never walked.
-- KEYS: 1 gateways set, 2 total_connections counter, 3 total_messages counter
-- ARGV: 1 key prefix (`<p>`)
-- Keys built here follow src/redis_backend/keys.rs.
local gateways = {}
for _, gid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local gateway_prefix = ARGV[1] .. 'gw:' .. gid .. ':'
  local info = redis.call('GET', gateway_prefix .. 'alive')
  if info then
    gateways[#gateways + 1] = {
      info,
      redis.call('HLEN', gateway_prefix .. 'conns'),
      redis.call('HGETALL', gateway_prefix .. 'rooms'),
    }
  end
end
return {
  redis.call('GET', KEYS[2]),
  redis.call('GET', KEYS[3]),
  gateways,
}
