-- Counts one failed join of a client address for the cluster (RedisAPIKeys.countFailedJoin); the
-- window starts with the address's first failure, as on one node.
-- KEYS: the address's counter (chub:fail:<address>). ARGV: the window in milliseconds.
-- Returns the count after this failure.
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
