-- Sums MEMORY USAGE over a metric's history keys plus its summary entry.
-- KEYS[1..n-1] candidate raw and roll-up keys (missing ones count 0); KEYS[n] summary hash;
-- ARGV[1] the metric (the summary field).
local total = 0
for i = 1, #KEYS - 1 do
  local usage = redis.call('MEMORY', 'USAGE', KEYS[i], 'SAMPLES', '0')
  if usage then
    total = total + usage
  end
end
local summary = redis.call('HSTRLEN', KEYS[#KEYS], ARGV[1])
return total + summary + string.len(ARGV[1])
