-- Adds connection records and their user index entries; counts each new one once in the
-- cumulative total. One call carries a whole batch (a burst of connects is one round trip).
-- KEYS: 1 gateways set, 2 total_connections counter, then per record i (from 0):
--       3+2i the record's gateway conns hash, 4+2i its user hash
-- ARGV: per record i: 1+3i gateway id, 2+3i connection id, 3+3i record JSON
local added = 0
local records = (#KEYS - 2) / 2
for i = 0, records - 1 do
  local gateway_id = ARGV[1 + 3 * i]
  local connection_id = ARGV[2 + 3 * i]
  redis.call('SADD', KEYS[1], gateway_id)
  if redis.call('HSET', KEYS[3 + 2 * i], connection_id, ARGV[3 + 3 * i]) == 1 then
    added = added + 1
  end
  redis.call('HSET', KEYS[4 + 2 * i], connection_id, gateway_id)
end
if added > 0 then
  redis.call('INCRBY', KEYS[2], added)
end
return added
