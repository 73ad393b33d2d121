-- Claims a tick of a stream for the current holder of a lease.
-- KEYS: 1 lease key, 2 ticks hash (stream -> last claimed tick)
-- ARGV: 1 "<holder>|<token>", 2 stream, 3 tick
-- Returns {1, tick} when claimed, {0, last} when a tick >= this one was claimed before,
-- {-1, 0} when the lease is not held by the caller.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {-1, 0}
end
local last = redis.call('HGET', KEYS[2], ARGV[2])
if last and tonumber(last) >= tonumber(ARGV[3]) then
  return {0, tonumber(last)}
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return {1, tonumber(ARGV[3])}
