-- The registry of run publisher sockets: which node's publisher socket speaks for a run (the one whose
-- events were accepted last), so that a run_control asked on any node reaches it (`RedisControl`).
-- KEYS[1] chub:pub:{RUN} (a string: the node's id, with a TTL the holder keeps renewing).
-- ARGV[1] the op: take (this node's socket published: the run is this node's), keep (renew the TTL if
-- the run is still this node's, or write it again if there is no record: it expired or Redis lost it
-- while this node could not renew it), drop (the socket closed: forget the run if it is still this node's).
-- ARGV[2] this node's id, ARGV[3] the TTL in milliseconds.
-- Returns 1 if the record is this node's after the call, else 0.
local op, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
if op == 'take' then
  redis.call('SET', KEYS[1], node, 'PX', ttl)
  return 1
end
local holder = redis.call('GET', KEYS[1])
if op == 'keep' and not holder then
  redis.call('SET', KEYS[1], node, 'PX', ttl)
  return 1
end
if holder ~= node then return 0 end
if op == 'keep' then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
redis.call('DEL', KEYS[1])
return 0
