-- Takes a lease if nobody holds it and hands out the next fencing token.
-- KEYS: 1 lease key ("<holder>|<token>", PX ttl), 2 fencing counter (no TTL: tokens never repeat)
-- ARGV: 1 holder, 2 ttl in milliseconds
-- Returns the new fencing token, or 0 when the lease is held.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
