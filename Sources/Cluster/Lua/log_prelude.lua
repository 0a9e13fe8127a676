-- The commit step of a stream's log, shared by `append.lua`, `batch.lua` and the member scripts
-- (`member_prelude.lua`): each of them is this prelude followed by its own part (`Scripts`).
-- KEYS: m, log first in every script that uses it. ARGV: none of its own. Defines:
-- `publish(channel, message)`: a channel starting with '!' is a Redis Cluster's sharded channel
--   (SPUBLISH on its shard);
-- `logEpoch(newEpoch, seed)` -> epoch: the stream's epoch. A stream without one starts under `newEpoch`
--   at seq `seed`; one whose last seq is below `seed` (the node has seen a seq this log no longer has:
--   a failover to a replica that had not received it) lost data, so it goes on under `newEpoch` above
--   what the node saw, as a lost log does;
-- `logTime()` -> ts: Redis's clock in ms, never below the stream's last commit time;
-- `commit(epoch, ts, type, member, body, origin, channel, keep, hooks, node)` -> seq, ts, entry,
--   webhook entry id ('' none): numbers the event (the next seq), stores its entry at ts (nil: `logTime()`),
--   deletes what retention no longer keeps (keep: events kept, 0 all; at most 64 a call), publishes
--   `d<epoch> <entry>` on the channel, and, if some webhook endpoint wants it (hooks: space-separated
--   ids, '' none), writes its outbox entry in KEYS[5] (`{S}:wh`), read at once into the pending list
--   of `node` in the consumer group `hub`: that node delivers it (`RedisWebhooks`).
local function publish(channel, message)
  if string.sub(channel, 1, 1) == '!' then
    redis.call('SPUBLISH', string.sub(channel, 2), message)
  else
    redis.call('PUBLISH', channel, message)
  end
end
local function logEpoch(newEpoch, seed)
  local m = KEYS[1]
  local epoch = redis.call('HGET', m, 'epoch')
  if not epoch then
    epoch = newEpoch
    redis.call('HSET', m, 'epoch', epoch, 'seq', seed, 'floor', seed, 'ts', 0)
  elseif tonumber(redis.call('HGET', m, 'seq')) < tonumber(seed) then
    epoch = newEpoch
    redis.call('HSET', m, 'epoch', epoch, 'seq', seed, 'floor', seed)
  end
  return epoch
end
local function logTime()
  local t = redis.call('TIME')
  local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = tonumber(redis.call('HGET', KEYS[1], 'ts') or '0')
  if ts < last then ts = last end
  return ts
end
local function commit(epoch, ts, typ, member, body, origin, channel, keep, hooks, node)
  local m, log = KEYS[1], KEYS[2]
  local seq = redis.call('HINCRBY', m, 'seq', 1)
  ts = ts or logTime()
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
  local wid = ''
  if hooks ~= '' then
    local wh = KEYS[5]
    if redis.call('EXISTS', wh) == 0 then redis.call('XGROUP', 'CREATE', wh, 'hub', '$', 'MKSTREAM') end
    wid = redis.call('XADD', wh, '*', 'seq', seq, 'hooks', hooks)
    redis.call('XREADGROUP', 'GROUP', 'hub', node, 'COUNT', 1, 'STREAMS', wh, '>')
  end
  return seq, ts, entry, wid
end
