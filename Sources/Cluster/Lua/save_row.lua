-- A session's row: KEYS[1] `{S}:info`; ARGV: the row's JSON, 1 if the session is new. A new one
-- is refused (0) if the code is taken; an ended row is never made live again by a late update;
-- what is stored is published on `chub:dir` for every node's directory.
local cur = redis.call('GET', KEYS[1])
if ARGV[2] == '1' and cur then return 0 end
local row = ARGV[1]
if cur and string.find(cur, '"ended":', 1, true) and not string.find(row, '"ended":', 1, true) then
  row = cur
end
redis.call('SET', KEYS[1], row)
redis.call('PUBLISH', 'chub:dir', row)
return 1
