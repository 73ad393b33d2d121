-- Adds connections to rooms; a room's count rises only for a connection not yet a member.
-- One call carries a whole batch of one gateway's joins.
-- KEYS: 1 gateways set, 2 gateway rooms hash, then per join i (from 0):
--       3+2i the room's member set, 4+2i the connection's rooms set
-- ARGV: 1 gateway id, then per join i: 2+2i connection id, 3+2i room
redis.call('SADD', KEYS[1], ARGV[1])
local joined = 0
local joins = (#KEYS - 2) / 2
for i = 0, joins - 1 do
  local room = ARGV[3 + 2 * i]
  if redis.call('SADD', KEYS[3 + 2 * i], ARGV[2 + 2 * i]) == 1 then
    redis.call('HINCRBY', KEYS[2], room, 1)
    redis.call('SADD', KEYS[4 + 2 * i], room)
    joined = joined + 1
  end
end
return joined
