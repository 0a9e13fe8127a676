-- This node's member of an identity leaves it. ARGV after the prelude: identity, member id, the
-- leave event's body (`EventBody.presence`). Returns
-- {1, json} if another node still holds the identity (no event); {2} if it is no member any more
-- (a survivor buried it); else {0, seq, ts, epoch, webhook entry} with the leave committed.
local identity = ARGV[6]
redis.call('HDEL', conns, node .. '|' .. identity)
local json = redis.call('HGET', members, identity)
if not json then return {2} end
if othersHold(identity, node) then return {1, json} end
redis.call('HDEL', members, identity)
local seq, ts, epoch, wid = commitPresence(ARGV[7], ARGV[8], node, hooksLeft)
return {0, seq, ts, epoch, wid}
