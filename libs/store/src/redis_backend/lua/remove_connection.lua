-- Removes connection records, their user index entries and every room membership they hold.
-- One call carries a batch (a resync removing what an outage left behind is one round trip).
-- KEYS per record i (from 0): 1+4i gateway conns hash, 2+4i user hash,
--       3+4i connection rooms set, 4+4i gateway rooms hash
-- ARGV per record i: 1+3i connection id, 2+3i gateway id,
--       3+3i room set key prefix (`<p>gw:<gid>:room:`)
for i = 0, #KEYS / 4 - 1 do
  local k = 4 * i
  local a = 3 * i
  local connection_id = ARGV[a + 1]
  redis.call('HDEL', KEYS[k + 1], connection_id)
  if redis.call('HGET', KEYS[k + 2], connection_id) == ARGV[a + 2] then
    redis.call('HDEL', KEYS[k + 2], connection_id)
  end
  for _, room in ipairs(redis.call('SMEMBERS', KEYS[k + 3])) do
    if redis.call('SREM', ARGV[a + 3] .. room, connection_id) == 1 then
      if redis.call('HINCRBY', KEYS[k + 4], room, -1) <= 0 then
        redis.call('HDEL', KEYS[k + 4], room)
      end
    end
  end
  redis.call('DEL', KEYS[k + 3])
end
return 1
