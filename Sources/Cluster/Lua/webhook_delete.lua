-- Deletes an endpoint and tells every node. KEYS: endpoints, pending. ARGV: id, channel.
-- Returns 1 if there was one.
local n = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return n
