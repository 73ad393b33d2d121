-- Returns the record JSON of each connection of a user held by a live gateway. Index
-- entries whose record is gone (gateway removed or swept) are deleted on the way.
-- KEYS: 1 user hash
-- ARGV: 1 key prefix (`<p>`)
-- Keys built here follow src/redis_backend/keys.rs.
local prefix = ARGV[1]
local entries = redis.call('HGETALL', KEYS[1])
local alive = {}
local records = {}
for i = 1, #entries, 2 do
  local connection_id = entries[i]
  local gid = entries[i + 1]
  local gateway_prefix = prefix .. 'gw:' .. gid .. ':'
  local record = redis.call('HGET', gateway_prefix .. 'conns', connection_id)
  if not record then
    redis.call('HDEL', KEYS[1], connection_id)
  else
    if alive[gid] == nil then
      alive[gid] = redis.call('EXISTS', gateway_prefix .. 'alive') == 1
    end
    if alive[gid] then
      records[#records + 1] = record
    end
  end
end
return records
