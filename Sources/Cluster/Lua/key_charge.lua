-- Charges one request of an API key in its minute, hour and month, for the whole cluster: refused
-- (nothing counted) when any window is at its limit, else counted in all three (RedisAPIKeys).
-- KEYS: the minute, hour and month counters (chub:{key:ID}:min<n>, :h<n>, :m<n>).
-- ARGV: the three limits, then the three counters' lifetimes in seconds (set when a counter is new).
-- Returns {code, minute, hour, month}: code 0 counted (the counts after), 1/2/3 refused by the
-- minute/hour/month limit (the counts as they are).
local c = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])
local m, h, mo = tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0
if mo >= tonumber(ARGV[3]) then return {3, m, h, mo} end
if h >= tonumber(ARGV[2]) then return {2, m, h, mo} end
if m >= tonumber(ARGV[1]) then return {1, m, h, mo} end
for i = 1, 3 do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[3 + i]) end
end
return {0, m + 1, h + 1, mo + 1}
