-- The delivery log kept a while: finished records created before ARGV[1], at most ARGV[2] of them.
-- KEYS: created, records, index. ARGV: before, limit, the `by` prefix. Returns how many went.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
local n = 0
for _, id in ipairs(ids) do
  local r = redis.call('HGET', KEYS[2], id)
  if not r or string.match(r, '"status":"(%a+)"') ~= 'pending' then
    redis.call('ZREM', KEYS[1], id)
    if r then
      redis.call('HDEL', KEYS[2], id)
      local wh = string.match(r, '^{"webhook":"([^"]*)"')
      if wh then redis.call('ZREM', ARGV[3] .. wh, id) end
      local key = string.match(r, '"key":"([^"]*)"')
      if key then redis.call('HDEL', KEYS[3], key) end
    end
    n = n + 1
  end
end
return n
