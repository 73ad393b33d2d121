-- Deletes every entry of one gateway. With ARGV[3] == '1' it first checks that the
-- gateway's liveness has expired, so a gateway that refreshed in the meantime is kept.
-- Returns 1 if the gateway was purged, 0 if it was alive.
-- KEYS: 1 gateways set, 2 alive key, 3 conns hash, 4 rooms hash, 5 nodes set
-- ARGV: 1 gateway id, 2 key prefix (`<p>`), 3 only-if-dead flag
-- Keys built here follow src/redis_backend/keys.rs.
local gid = ARGV[1]
local prefix = ARGV[2]
local gateway_prefix = prefix .. 'gw:' .. gid .. ':'
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end

local conns = redis.call('HGETALL', KEYS[3])
for i = 1, #conns, 2 do
  local connection_id = conns[i]
  local ok, record = pcall(cjson.decode, conns[i + 1])
  if ok and type(record) == 'table' and type(record.user_id) == 'string' then
    local user_key = prefix .. 'user:' .. record.user_id
    if redis.call('HGET', user_key, connection_id) == gid then
      redis.call('HDEL', user_key, connection_id)
    end
  end
  redis.call('DEL', gateway_prefix .. 'conn:' .. connection_id .. ':rooms')
end

for _, room in ipairs(redis.call('HKEYS', KEYS[4])) do
  local room_key = gateway_prefix .. 'room:' .. room
  for _, connection_id in ipairs(redis.call('SMEMBERS', room_key)) do
    redis.call('DEL', gateway_prefix .. 'conn:' .. connection_id .. ':rooms')
  end
  redis.call('DEL', room_key)
end

for _, node_id in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  local node_key = prefix .. 'node:' .. node_id
  if redis.call('GET', node_key) == gid then
    redis.call('DEL', node_key)
  end
end

redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('SREM', KEYS[1], gid)
return 1
