-- Retention of one session's log: deletes from the oldest while an event is past `keep` (the
-- newest N stay; 0: any number) or older than `age` milliseconds (0: any age), at most `limit`.
-- KEYS: m, log. ARGV: keep, age, limit. Returns how many it deleted.
local m, log = KEYS[1], KEYS[2]
local last = tonumber(redis.call('HGET', m, 'seq') or '0')
if last == 0 then return 0 end
local floor = tonumber(redis.call('HGET', m, 'floor') or '0')
local keep, age, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
while floor < last and n < limit do
  local s = floor + 1
  local drop = keep > 0 and s <= last - keep
  if not drop and age > 0 then
    local e = redis.call('HGET', log, s)
    drop = true
    if e then
      local ets = tonumber(string.match(e, '^%d+ (%d+) '))
      drop = ets ~= nil and ets < now - age
    end
  end
  if not drop then break end
  redis.call('HDEL', log, s)
  floor = s
  n = n + 1
end
redis.call('HSET', m, 'floor', floor)
return n
