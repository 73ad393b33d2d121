-- Adds a connection to a room; the room's count rises only if it was not a member yet.
-- KEYS: 1 gateways set, 2 room set, 3 gateway rooms hash, 4 connection rooms set
-- ARGV: 1 gateway id, 2 connection id, 3 room
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('SADD', KEYS[2], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
  redis.call('SADD', KEYS[4], ARGV[3])
  return 1
end
return 0
