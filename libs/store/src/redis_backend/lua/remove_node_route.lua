-- Deletes a node route only if it still points at the given gateway.
-- KEYS: 1 node key, 2 gateway nodes set
-- ARGV: 1 gateway id, 2 node id
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
