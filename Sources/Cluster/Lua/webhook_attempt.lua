-- An attempt's outcome (or a retry asked for): the record replaced, the endpoint's pending count
-- kept. KEYS: records, pending. ARGV: id, record JSON, endpoint. Returns 0 if the record is gone.
-- A record's own `status` is its first (the message body comes last).
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local was = string.match(old, '"status":"(%a+)"')
local now = string.match(ARGV[2], '"status":"(%a+)"')
if was == 'pending' and now ~= 'pending' then redis.call('HINCRBY', KEYS[2], ARGV[3], -1) end
if was ~= 'pending' and now == 'pending' then redis.call('HINCRBY', KEYS[2], ARGV[3], 1) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
