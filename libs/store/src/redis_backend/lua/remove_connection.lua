-- Removes a connection record, its user index entry and every room membership it holds.
-- KEYS: 1 gateway conns hash, 2 user hash, 3 connection rooms set, 4 gateway rooms hash
-- ARGV: 1 connection id, 2 gateway id, 3 room set key prefix (`<p>gw:<gid>:room:`)
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
for _, room in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if redis.call('SREM', ARGV[3] .. room, ARGV[1]) == 1 then
    if redis.call('HINCRBY', KEYS[4], room, -1) <= 0 then
      redis.call('HDEL', KEYS[4], room)
    end
  end
end
redis.call('DEL', KEYS[3])
return 1
