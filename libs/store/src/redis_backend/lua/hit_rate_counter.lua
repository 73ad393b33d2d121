-- Counts one hit in a fixed window; the window's counter expires after ARGV[1] ms.
-- KEYS: 1 window counter
-- ARGV: 1 expiry in milliseconds
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
