-- KEYS: m, log, members, conns, wh. ARGV[1..5]: channel, a new epoch (if the log has none), the seq to
-- start from then, events kept (0: all), this node; and last, after each script's own: the webhook
-- endpoints that want a join, and a leave (space-separated, '' none). Runs after `log_prelude.lua`.
-- Defines `commitPresence(member, body, origin, hooks)` -> seq, ts, epoch, webhook entry id ('' none)
-- (the prelude's `commit` of a presence event; each entry also kept in `out`, after the epoch, its
-- webhook entry id in `wids`); `leaveBody(json, reason)`; `othersHold(identity, except node)`;
-- `release(node, identity, reason, origin)`.
local members, conns = KEYS[3], KEYS[4]
local channel, newEpoch, seedSeq, keep, node = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
-- The epoch, then every entry this call committed (what `reassert` and `nodeLost` return).
local out = {''}
-- A committed event some endpoint wants gets its outbox entry in `wh` (KEYS[5]), read at once into this
-- node's pending list of the group `hub`, as `append.lua`'s does: the node delivers it (`RedisWebhooks`).
local hooksJoined, hooksLeft = ARGV[#ARGV - 1], ARGV[#ARGV]
local wids = {}
local function commitPresence(member, body, origin, hooks)
  local epoch = logEpoch(newEpoch, seedSeq)
  local seq, ts, entry, wid = commit(epoch, nil, 'presence', member, body, origin, channel, keep, hooks, node)
  out[1] = epoch
  out[#out + 1] = entry
  wids[#wids + 1] = wid
  return seq, ts, epoch, wid
end
-- The leave of a stored member (`EventBody.presence` with one leave), and its id.
local function leaveBody(json, reason)
  local ok, o = pcall(cjson.decode, json)
  if not ok or type(o) ~= 'table' or type(o.id) ~= 'string' then return nil end
  local l = '{"id":' .. cjson.encode(o.id) .. ',"reason":' .. cjson.encode(reason)
  if type(o.name) == 'string' then l = l .. ',"name":' .. cjson.encode(o.name) end
  return '"joins":[],"leaves":[' .. l .. '}]', o.id
end
local function othersHold(identity, except)
  for _, f in ipairs(redis.call('HKEYS', conns)) do
    local sep = string.find(f, '|', 1, true)
    if sep and string.sub(f, sep + 1) == identity and string.sub(f, 1, sep - 1) ~= except then
      return true
    end
  end
  return false
end
-- Drops identity's field of `holder`; if no node holds it then, the member leaves with `reason`.
local function release(holder, identity, reason, origin)
  redis.call('HDEL', conns, holder .. '|' .. identity)
  if othersHold(identity, holder) then return end
  local json = redis.call('HGET', members, identity)
  if not json then return end
  redis.call('HDEL', members, identity)
  local body, id = leaveBody(json, reason)
  if body then commitPresence(id, body, origin, hooksLeft) end
end
