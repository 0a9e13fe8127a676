-- Stores an endpoint and tells every node. KEYS: endpoints. ARGV: id, JSON, channel.
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
