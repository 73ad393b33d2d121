-- Registers a live member of a group until now + ttl, on the Redis clock so that every
-- replica agrees on expiry regardless of its own clock.
-- KEYS[1] members sorted set (member -> expiry ms); ARGV[1] member id; ARGV[2] ttl ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
-- The set outlives its longest registration; a group nobody refreshes disappears.
local keep = ttl * 10
if redis.call('PTTL', KEYS[1]) < keep then
  redis.call('PEXPIRE', KEYS[1], keep)
end
return 1
