-- Deletes a lease if it is still the caller's acquisition.
-- KEYS: 1 lease key
-- ARGV: 1 "<holder>|<token>"
-- Returns 1 when released, 0 when the lease was already lost.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
