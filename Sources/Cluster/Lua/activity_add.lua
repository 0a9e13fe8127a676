-- Adds one entry to the cluster's activity log, numbered, newest first, keeping the newest N
-- (RedisActivityLog).
-- KEYS: the list (chub:{activity}), the id counter (chub:{activity}:id). ARGV: the entry's JSON, N.
-- Returns the entry's id.
local id = redis.call('INCR', KEYS[2])
redis.call('LPUSH', KEYS[1], id .. ' ' .. ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return id
