-- Returns the info JSON of every gateway whose liveness key exists.
-- KEYS: 1 gateways set
-- ARGV: 1 key prefix (`<p>`)
-- Keys built here follow src/redis_backend/keys.rs.
local infos = {}
for _, gid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local info = redis.call('GET', ARGV[1] .. 'gw:' .. gid .. ':alive')
  if info then
    infos[#infos + 1] = info
  end
end
return infos
