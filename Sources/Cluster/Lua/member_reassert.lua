-- This node says what it holds of a session, after its link to Redis was down or after it was
-- declared lost: ARGV after the prelude: n, then per member identity, member id, connections, JSON.
-- Each is set as this node's field; one the cluster no longer has is a member again (its join
-- committed, with its colour as the node has it, `max_participants` not checked: it was admitted);
-- a field of this node that is not listed goes, and its member leaves if no node holds it (a leave
-- that failed while Redis was away). Returns {epoch ('' if none), every entry committed, {their webhook entry ids}}.
local n, held = tonumber(ARGV[6]), {}
for i = 0, n - 1 do
  local identity, id, c, json = ARGV[7 + i * 4], ARGV[8 + i * 4], ARGV[9 + i * 4], ARGV[10 + i * 4]
  held[identity] = true
  redis.call('HSET', conns, node .. '|' .. identity, c)
  if not redis.call('HGET', members, identity) then
    redis.call('HSET', members, identity, json)
    commitPresence(id, '"joins":[' .. json .. '],"leaves":[]', node, hooksJoined)
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
return out
