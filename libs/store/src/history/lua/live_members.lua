-- Returns the members whose registration has not expired (Redis clock) and drops the rest.
-- KEYS[1] members sorted set (member -> expiry ms).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
