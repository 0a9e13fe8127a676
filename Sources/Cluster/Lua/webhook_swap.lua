-- Replaces an endpoint only if it is still `old` (health changes lose to a change made meanwhile).
-- KEYS: endpoints. ARGV: id, old JSON, new JSON, channel. Returns 1 if it was replaced.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
