-- KEYS: m, log, members, conns, wh. ARGV[1..5]: channel, a new epoch (if the log has none), the seq to
-- start from then, events kept (0: all), this node; and last, after each script's own: the webhook
-- endpoints that want a join, and a leave (space-separated, '' none). Defines `commit(type, member,
-- body, origin, hooks)` -> seq, ts, epoch, webhook entry id ('' none) (each entry also kept in `out`,
-- after the epoch, its webhook entry id in `wids`); `leaveBody(json, reason)`;
-- `othersHold(identity, except node)`; `release(node, identity, reason, origin)`.
-- A channel argument starting with '!' is a Redis Cluster's sharded channel: SPUBLISH on its shard.
local function publish(channel, message)
  if string.sub(channel, 1, 1) == '!' then
    redis.call('SPUBLISH', string.sub(channel, 2), message)
  else
    redis.call('PUBLISH', channel, message)
  end
end
local m, log, members, conns = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local channel, newEpoch, seedSeq, keep, node = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
-- The epoch, then every entry this call committed (what `reassert` and `nodeLost` return).
local out = {''}
-- A committed event some endpoint wants gets its outbox entry in `wh`, read at once into this node's
-- pending list of the group `hub`, as `append.lua` does: the node delivers it (`RedisWebhooks`).
local wh, hooksJoined, hooksLeft = KEYS[5], ARGV[#ARGV - 1], ARGV[#ARGV]
local wids = {}
local function outbox(seq, hooks)
  local wid = ''
  if hooks ~= '' then
    if redis.call('EXISTS', wh) == 0 then redis.call('XGROUP', 'CREATE', wh, 'hub', '$', 'MKSTREAM') end
    wid = redis.call('XADD', wh, '*', 'seq', seq, 'hooks', hooks)
    redis.call('XREADGROUP', 'GROUP', 'hub', node, 'COUNT', 1, 'STREAMS', wh, '>')
  end
  wids[#wids + 1] = wid
  return wid
end
local function commit(typ, member, body, origin, hooks)
  local epoch = redis.call('HGET', m, 'epoch')
  if not epoch then
    epoch = newEpoch
    redis.call('HSET', m, 'epoch', epoch, 'seq', seedSeq, 'floor', seedSeq, 'ts', 0)
  elseif tonumber(redis.call('HGET', m, 'seq')) < tonumber(seedSeq) then
    -- A seq this node saw is gone (a failover lost it): a new epoch, as in `append.lua`.
    epoch = newEpoch
    redis.call('HSET', m, 'epoch', epoch, 'seq', seedSeq, 'floor', seedSeq)
  end
  local seq = redis.call('HINCRBY', m, 'seq', 1)
  local t = redis.call('TIME')
  local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = tonumber(redis.call('HGET', m, 'ts') or '0')
  if ts < last then ts = last end
  local entry = seq .. ' ' .. ts .. ' ' .. typ .. ' ' .. origin .. ' ' .. #member .. '\n' .. member .. body
  redis.call('HSET', log, seq, entry)
  redis.call('HSET', m, 'ts', ts)
  if keep > 0 then
    local floor = tonumber(redis.call('HGET', m, 'floor'))
    local n = 0
    while floor < seq - keep and n < 64 do
      floor = floor + 1
      redis.call('HDEL', log, floor)
      n = n + 1
    end
    redis.call('HSET', m, 'floor', floor)
  end
  publish(channel, 'd' .. epoch .. ' ' .. entry)
  out[1] = epoch
  out[#out + 1] = entry
  return seq, ts, epoch, outbox(seq, hooks)
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
  if body then commit('presence', id, body, origin, hooksLeft) end
end
