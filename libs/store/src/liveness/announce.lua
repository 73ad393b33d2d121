-- Announces a live instance of a service until now + ttl, on the Redis clock, and forgets
-- instances whose announcement expired more than forget_after ago.
-- KEYS[1] service hash (instance -> "<last seen ms>:<expires at ms>");
-- ARGV[1] instance id; ARGV[2] ttl ms; ARGV[3] forget_after ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local forget = tonumber(ARGV[3])
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local expires = tonumber(string.match(entries[i + 1], ':(%d+)$'))
  if expires == nil or expires + forget <= now then
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
redis.call('HSET', KEYS[1], ARGV[1], now .. ':' .. (now + ttl))
redis.call('PEXPIRE', KEYS[1], ttl + forget)
return 1
