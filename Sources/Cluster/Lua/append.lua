-- KEYS: m, log, ids, members, wh. ARGV: type, member, client id, body, origin node, channel, a new
-- epoch (used if the stream has none), the seq to start from then, events kept (0: all), seq to
-- replace (0: none), its new body, ids kept, why it is replaced (`redacted` or `deleted`: the flag
-- its edits' tombstones carry), the webhook endpoints that want it (space-separated, '' none), the
-- node (the consumer that delivers them). Returns {seq, ts, duplicate, epoch[, webhook entry]}: a
-- stored event some endpoint wants gets its outbox entry in `wh`, read at once into the node's
-- pending list of the consumer group `hub` (`RedisWebhooks`).
-- Runs after `log_prelude.lua` (`logEpoch`, `commit`: the epoch, numbering, retention, publication
-- and outbox entry).
local log, ids = KEYS[2], KEYS[3]
local typ, member, cid, body, origin = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local epoch = logEpoch(ARGV[7], ARGV[8])
local idkey = #member .. ':' .. member .. cid
if cid ~= '' then
  local prior = redis.call('ZSCORE', ids, idkey)
  if prior then
    -- A duplicate only if the stored event is this member's (an entry retention deleted
    -- cannot be checked: the key alone decides).
    local e = redis.call('HGET', log, prior)
    local same, ts = true, 0
    if e then
      ts = tonumber(string.match(e, '^%d+ (%d+) ')) or 0
      local nl = string.find(e, '\n', 1, true)
      if nl then
        local mlen = tonumber(string.match(string.sub(e, 1, nl - 1), '(%d+)$'))
        same = mlen == #member and string.sub(e, nl + 1, nl + mlen) == member
      end
    end
    if same then return {tonumber(prior), ts, 1, epoch} end
  end
end
local seq, ts, _, wid = commit(
  epoch, nil, typ, member, body, origin, ARGV[6], tonumber(ARGV[9]), ARGV[14] or '', ARGV[15])
if cid ~= '' then
  redis.call('ZADD', ids, seq, idkey)
  local kept = tonumber(ARGV[12])
  if redis.call('ZCARD', ids) > kept then redis.call('ZREMRANGEBYRANK', ids, 0, -kept - 1) end
end
if ARGV[10] ~= '0' then
  local rs = tonumber(ARGV[10])
  local old = redis.call('HGET', log, rs)
  if old then
    local nl = string.find(old, '\n', 1, true)
    local mlen = tonumber(string.match(string.sub(old, 1, nl - 1), '(%d+)$'))
    redis.call('HSET', log, rs, string.sub(old, 1, nl + mlen) .. ARGV[11])
  end
  -- Its edits carry its text: each is cut to what precedes "text" (EventBody.editTombstone),
  -- flagged with why (ARGV[13]: redacted or deleted; only those two words are ever sent).
  local marker = '"target":' .. rs .. ','
  local why = ARGV[13] == 'deleted' and 'deleted' or 'redacted'
  for s = rs + 1, math.min(seq - 1, rs + 5000) do
    local e = redis.call('HGET', log, s)
    if e and string.match(e, '^%d+ %d+ (%S+) ') == 'chat_edit' then
      local nl = string.find(e, '\n', 1, true)
      local from = nl + tonumber(string.match(string.sub(e, 1, nl - 1), '(%d+)$')) + 1
      local cut = string.find(e, ',"text":', from, true)
      if cut and string.find(e, marker, from, true) then
        redis.call('HSET', log, s, string.sub(e, 1, cut - 1) .. ',"' .. why .. '":true')
      end
    end
  end
end
if wid ~= '' then return {seq, ts, 0, epoch, wid} end
return {seq, ts, 0, epoch}
