-- Removes connections from rooms; a room's count falls only if the connection was a member.
-- One call carries a batch of one gateway's memberships.
-- KEYS: 1 gateway rooms hash, then per membership i (from 0): 2+2i room set,
--       3+2i connection rooms set
-- ARGV per membership i: 1+2i connection id, 2+2i room
local left = 0
for i = 0, (#KEYS - 1) / 2 - 1 do
  local connection_id = ARGV[1 + 2 * i]
  local room = ARGV[2 + 2 * i]
  if redis.call('SREM', KEYS[2 + 2 * i], connection_id) == 1 then
    if redis.call('HINCRBY', KEYS[1], room, -1) <= 0 then
      redis.call('HDEL', KEYS[1], room)
    end
    redis.call('SREM', KEYS[3 + 2 * i], room)
    left = left + 1
  end
end
return left
