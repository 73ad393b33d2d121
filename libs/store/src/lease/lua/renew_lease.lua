-- Extends a lease if it is still the caller's acquisition.
-- KEYS: 1 lease key
-- ARGV: 1 "<holder>|<token>", 2 ttl in milliseconds
-- Returns 1 when renewed, 0 when the lease was lost.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
