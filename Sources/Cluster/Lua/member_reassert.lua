-- This node says what it holds of a session, after its link to Redis was down, after it was declared
-- lost, or after its control subscription was made again. KEYS[6]: `{S}:removed` (hash: member id a host
-- removed -> when, expiring a day after the last removal: `RedisStorage+Removals`). ARGV after the prelude:
-- the session's `max_participants`, n, then per member identity, member id, connections, JSON (in the
-- order the node admitted them). Then the count of palette colours and the palette.
-- Each member, in that order: one a host removed is refused ('removed': this node's field goes, and its
-- leave, reason `removed`, is committed if no node holds it then); else it is set as this node's field,
-- and one the cluster no longer has is a member again if the session has room (`max_participants`,
-- counted as the join script does: so the members announced last are the ones refused, 'full'), its join
-- committed, with its colour as the node has it unless another member has that colour now (it joined
-- meanwhile): then with the first palette colour no member has (cycling when all are taken), which the
-- node adopts from the join event; a field of this node that is not set goes, and its member leaves if
-- no node holds it (a leave that failed while Redis was away). Returns {epoch ('' if none), every entry
-- committed, {their webhook entry ids}, {refused identity, 'full' or 'removed', ...}}.
local removed = KEYS[6]
local max, n, held, refused = tonumber(ARGV[6]), tonumber(ARGV[7]), {}, {}
local colours = tonumber(ARGV[8 + n * 4]) or 0
local function colourOf(v)
  local ok, o = pcall(cjson.decode, v)
  if ok and type(o) == 'table' and type(o.color) == 'string' then return o.color end
  return nil
end
local function recoloured(json)
  local cur = colourOf(json)
  if not cur or colours < 1 then return json end
  local used, count = {}, 0
  for _, v in ipairs(redis.call('HVALS', members)) do
    local c = colourOf(v)
    if c then used[c] = true end
    count = count + 1
  end
  if not used[cur] then return json end
  local pick = ARGV[9 + n * 4 + count % colours]
  for i = 1, colours do
    if not used[ARGV[8 + n * 4 + i]] then pick = ARGV[8 + n * 4 + i]; break end
  end
  local key = '"color":' .. cjson.encode(cur)
  local at = string.find(json, key, 1, true)
  if not at then return json end
  return string.sub(json, 1, at - 1) .. '"color":' .. cjson.encode(pick) .. string.sub(json, at + #key)
end
for i = 0, n - 1 do
  local identity, id, c, json = ARGV[8 + i * 4], ARGV[9 + i * 4], ARGV[10 + i * 4], ARGV[11 + i * 4]
  local known = redis.call('HGET', members, identity)
  if redis.call('HEXISTS', removed, id) == 1 then
    refused[#refused + 1] = identity
    refused[#refused + 1] = 'removed'
    release(node, identity, 'removed', node)
  elseif not known and redis.call('HLEN', members) >= max then
    refused[#refused + 1] = identity
    refused[#refused + 1] = 'full'
  else
    held[identity] = true
    redis.call('HSET', conns, node .. '|' .. identity, c)
    if not known then
      json = recoloured(json)
      redis.call('HSET', members, identity, json)
      commitPresence(id, '"joins":[' .. json .. '],"leaves":[]', node, hooksJoined)
    end
  end
end
local prefix = node .. '|'
for _, f in ipairs(redis.call('HKEYS', conns)) do
  if string.sub(f, 1, #prefix) == prefix then
    local identity = string.sub(f, #prefix + 1)
    if not held[identity] then release(node, identity, 'left', node) end
  end
end
out[#out + 1] = wids
out[#out + 1] = refused
return out
