-- The record of one (stream entry, endpoint), made once: a second call (a node that took the
-- entry over) gets the record already there. KEYS: index, next, records, created, pending, by.
-- ARGV: index key, record JSON, created at, endpoint. Returns {id, existing record or ''}.
local id = redis.call('HGET', KEYS[1], ARGV[1])
if id then return {tonumber(id), redis.call('HGET', KEYS[3], id) or ''} end
id = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], id)
redis.call('HSET', KEYS[3], id, ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], id)
redis.call('ZADD', KEYS[6], id, id)
redis.call('HINCRBY', KEYS[5], ARGV[4], 1)
return {id, ''}
