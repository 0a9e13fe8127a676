-- Revokes an API key once, and tells every node (RedisAPIKeys).
-- KEYS: records (chub:{keys}), revoked (chub:{keys}:revoked). ARGV: id, now (Unix ms), channel (chub:keys).
-- Returns 1 revoked now, 0 no such key or revoked before.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
