-- Applies history writes in order (libs/store/src/history.rs). ARGV is a flat list:
--   A key bytes expire_at_ms                  APPEND, then PEXPIREAT
--   S key bytes expire_at_ms                  SET ... PXAT
--   W key bytes expire_at_ms offset size      if absent, SET `size` zero bytes PXAT; then SETRANGE
--   H key field bytes                         HSET
--   D key field                               HDEL
-- Keys are built by the caller under the store's prefix; the store needs a single Redis node.
-- Preallocating W keys at their full size keeps SETRANGE from over-allocating them.
local i = 1
local n = #ARGV
while i <= n do
  local op = ARGV[i]
  if op == 'A' then
    redis.call('APPEND', ARGV[i + 1], ARGV[i + 2])
    redis.call('PEXPIREAT', ARGV[i + 1], ARGV[i + 3])
    i = i + 4
  elseif op == 'S' then
    redis.call('SET', ARGV[i + 1], ARGV[i + 2], 'PXAT', ARGV[i + 3])
    i = i + 4
  elseif op == 'W' then
    local key = ARGV[i + 1]
    if redis.call('EXISTS', key) == 0 then
      redis.call('SET', key, string.rep('\0', tonumber(ARGV[i + 5])), 'PXAT', ARGV[i + 3])
    end
    redis.call('SETRANGE', key, ARGV[i + 4], ARGV[i + 2])
    i = i + 6
  elseif op == 'H' then
    redis.call('HSET', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'D' then
    redis.call('HDEL', ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  else
    return redis.error_reply('unknown history operation ' .. tostring(op))
  end
end
return n
