-- Adds a connection record and its user index entry; counts it once in the cumulative total.
-- KEYS: 1 gateways set, 2 gateway conns hash, 3 user hash, 4 total_connections counter
-- ARGV: 1 gateway id, 2 connection id, 3 record JSON
redis.call('SADD', KEYS[1], ARGV[1])
local is_new = redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[1])
if is_new == 1 then
  redis.call('INCR', KEYS[4])
end
return is_new
