-- A session's row: KEYS[1] `{S}:info`; ARGV: the row's JSON, 1 if the session is new. A new one
-- is refused (0) if the code is taken; an ended row is never made live again by a late update;
-- what is stored is published on `chub:dir` for every node's directory. A new session some webhook
-- endpoint wants (ARGV[3]: their ids, ARGV[4]: this node) gets its `session.started` outbox entry
-- (seq 0) in KEYS[2] `{S}:wh`, as `append` does; the answer is then that entry's id.
local cur = redis.call('GET', KEYS[1])
if ARGV[2] == '1' and cur then return 0 end
local row = ARGV[1]
if cur and string.find(cur, '"ended":', 1, true) and not string.find(row, '"ended":', 1, true) then
  row = cur
end
redis.call('SET', KEYS[1], row)
redis.call('PUBLISH', 'chub:dir', row)
if ARGV[2] == '1' and ARGV[3] and ARGV[3] ~= '' then
  if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('XGROUP', 'CREATE', KEYS[2], 'hub', '$', 'MKSTREAM') end
  local wid = redis.call('XADD', KEYS[2], '*', 'seq', 0, 'hooks', ARGV[3])
  redis.call('XREADGROUP', 'GROUP', 'hub', ARGV[4], 'COUNT', 1, 'STREAMS', KEYS[2], '>')
  return wid
end
return 1
