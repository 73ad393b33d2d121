-- Returns the gateway a node is routed to, or nil if there is none or it is not alive.
-- KEYS: 1 node key
-- ARGV: 1 key prefix (`<p>`)
-- Keys built here follow src/redis_backend/keys.rs.
local gid = redis.call('GET', KEYS[1])
if not gid then
  return false
end
if redis.call('EXISTS', ARGV[1] .. 'gw:' .. gid .. ':alive') == 1 then
  return gid
end
return false
