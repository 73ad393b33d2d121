-- Removes a connection from a room; the room's count falls only if it was a member.
-- KEYS: 1 room set, 2 gateway rooms hash, 3 connection rooms set
-- ARGV: 1 connection id, 2 room
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[2])
  end
  redis.call('SREM', KEYS[3], ARGV[2])
  return 1
end
return 0
