-- A dead node's members (the survivor that buried it, `NodeWatch`): ARGV after the prelude: the
-- dead node. Its fields go; each identity no node holds then leaves with reason `node_lost`, under
-- origin `lost:<node>`. Idempotent. Returns {epoch ('' if none), every entry committed, {their webhook entry ids}}.
local dead = ARGV[6]
local prefix = dead .. '|'
for _, f in ipairs(redis.call('HKEYS', conns)) do
  if string.sub(f, 1, #prefix) == prefix then
    release(dead, string.sub(f, #prefix + 1), 'node_lost', 'lost:' .. dead)
  end
end
out[#out + 1] = wids
return out
