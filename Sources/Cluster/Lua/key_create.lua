-- Stores a new API key's record unless its id is taken, and tells every node (RedisAPIKeys).
-- KEYS: records (chub:{keys}). ARGV: id, record JSON, channel (chub:keys).
-- Returns 1 stored and published, 0 the id is taken.
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
