-- A member of an identity joins on this node. ARGV after the prelude: identity, member id, the
-- member's JSON before and after its colour, the session's `max_participants`, the count of
-- palette colours, then the palette. Returns {1, json} if the identity is a member already (this
-- node's field added, no event); {2} if the session is full; else {0, colour, seq, ts, epoch, webhook entry}: the
-- colour is the first of the palette no member has (cycling when all are taken), and the join event
-- is committed.
local identity, id, before, after = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local max, colours = tonumber(ARGV[10]), tonumber(ARGV[11])
local cur = redis.call('HGET', members, identity)
if cur then
  redis.call('HINCRBY', conns, node .. '|' .. identity, 1)
  return {1, cur}
end
local count = redis.call('HLEN', members)
if count >= max then return {2} end
local used = {}
for _, v in ipairs(redis.call('HVALS', members)) do
  local ok, o = pcall(cjson.decode, v)
  if ok and type(o) == 'table' and type(o.color) == 'string' then used[o.color] = true end
end
local colour = ARGV[12 + count % colours]
for i = 12, 11 + colours do
  if not used[ARGV[i]] then colour = ARGV[i]; break end
end
local json = before .. colour .. after
redis.call('HSET', members, identity, json)
redis.call('HINCRBY', conns, node .. '|' .. identity, 1)
local seq, ts, epoch, wid = commitPresence(id, '"joins":[' .. json .. '],"leaves":[]', node, hooksJoined)
return {0, colour, seq, ts, epoch, wid}
