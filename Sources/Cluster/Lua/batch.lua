-- Several events of one stream, all or none, only if its last seq is still ARGV[1] ('': any).
-- KEYS: m, log. ARGV: expected, origin, channel, new epoch, n, then type, member, body per event.
-- Returns {ts, epoch, seq...}; a changed last seq is the error `CONFLICT <last seq>`.
-- A channel argument starting with '!' is a Redis Cluster's sharded channel: SPUBLISH on its shard.
local function publish(channel, message)
  if string.sub(channel, 1, 1) == '!' then
    redis.call('SPUBLISH', string.sub(channel, 2), message)
  else
    redis.call('PUBLISH', channel, message)
  end
end
local m, log = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', m, 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', m, 'epoch', epoch, 'seq', 0, 'floor', 0, 'ts', 0)
end
local last = tonumber(redis.call('HGET', m, 'seq'))
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= last then return redis.error_reply('CONFLICT ' .. last) end
local t = redis.call('TIME')
local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lts = tonumber(redis.call('HGET', m, 'ts') or '0')
if ts < lts then ts = lts end
local out = {ts, epoch}
for i = 0, tonumber(ARGV[5]) - 1 do
  local typ, member, body = ARGV[6 + i * 3], ARGV[7 + i * 3], ARGV[8 + i * 3]
  last = last + 1
  local entry = last .. ' ' .. ts .. ' ' .. typ .. ' ' .. ARGV[2] .. ' ' .. #member .. '\n' .. member .. body
  redis.call('HSET', log, last, entry)
  publish(ARGV[3], 'd' .. epoch .. ' ' .. entry)
  out[#out + 1] = last
end
redis.call('HSET', m, 'seq', last, 'ts', ts)
return out
