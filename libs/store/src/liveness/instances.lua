-- Returns the Redis clock and the instances of a service whose announcement expired less
-- than forget_after ago (older ones are deleted).
-- KEYS[1] service hash (instance -> "<last seen ms>:<expires at ms>"); ARGV[1] forget_after ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local forget = tonumber(ARGV[1])
local entries = redis.call('HGETALL', KEYS[1])
local kept = {}
for i = 1, #entries, 2 do
  local expires = tonumber(string.match(entries[i + 1], ':(%d+)$'))
  if expires == nil or expires + forget <= now then
    redis.call('HDEL', KEYS[1], entries[i])
  else
    table.insert(kept, {entries[i], entries[i + 1]})
  end
end
return {now, kept}
