-- Several events of one stream, all or none, only if its last seq is still ARGV[1] ('': any).
-- KEYS: m, log. ARGV: expected, origin, channel, new epoch, n, then type, member, body per event.
-- Returns {ts, epoch, seq...}; a changed last seq is the error `CONFLICT <last seq>`. Runs after
-- `log_prelude.lua`: every event is committed with one time (`commit`), none kept out by retention,
-- none with a webhook outbox entry.
local epoch = logEpoch(ARGV[4], 0)
local last = tonumber(redis.call('HGET', KEYS[1], 'seq'))
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= last then return redis.error_reply('CONFLICT ' .. last) end
local ts = logTime()
local out = {ts, epoch}
for i = 0, tonumber(ARGV[5]) - 1 do
  out[#out + 1] = commit(epoch, ts, ARGV[6 + i * 3], ARGV[7 + i * 3], ARGV[8 + i * 3], ARGV[2], ARGV[3], 0, '')
end
return out
