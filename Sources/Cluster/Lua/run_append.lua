-- A run's events, all or none, each checked against the run's state (the rules of `Run.check`,
-- word for word in what it answers), an event id seen before answered as a duplicate.
-- KEYS: m (also `status`, `owner`, `running`: the JSON array of running steps in start order),
-- log, ids (hash: event id -> seq). ARGV: run id, origin, channel, a new epoch (used if the run
-- has none), then the seed used with it: seq, status, owner, running steps (JSON); then n, and
-- per event: type, id, step, outcome, owner, body. Returns {0, why} for an illegal event, else
-- {1, ts, epoch, then seq and duplicate (1/0) per event}. Each stored event is published on the
-- channel as `r<epoch> <run> <entry>` (`RunPublication`). After the events, optionally: KEYS[4]
-- `{run:ID}:wh`, and ARGV the webhook endpoints per event (`|`-separated lists of space-separated
-- ids) and this node: a stored event some endpoint wants gets its outbox entry there (as `append`),
-- and the answer ends with one entry id per event ('' for none).
local m, log, ids = KEYS[1], KEYS[2], KEYS[3]
local run, origin, channel = ARGV[1], ARGV[2], ARGV[3]
local epoch = redis.call('HGET', m, 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', m, 'epoch', epoch, 'seq', ARGV[5], 'floor', ARGV[5], 'ts', 0,
    'status', ARGV[6], 'owner', ARGV[7], 'running', ARGV[8])
end
local st = redis.call('HMGET', m, 'seq', 'status', 'owner', 'running')
local last = tonumber(st[1])
local status, owner = st[2] or 'pending', st[3] or ''
local ok, running = pcall(cjson.decode, st[4] or '[]')
if not ok or type(running) ~= 'table' then running = {} end
local function find(step)
  for i, s in ipairs(running) do if s == step then return i end end
  return nil
end
local function check(k, step, outcome)
  if status == 'succeeded' or status == 'failed' or status == 'cancelled' then
    return 'run ' .. run .. ' is already completed (' .. status .. '); no ' .. k .. ' after that'
  end
  if k == 'started' then
    if status == 'pending' then return nil end
    return 'run ' .. run .. ' has already started'
  end
  if k == 'resumed' then
    if status == 'paused' then return nil end
    return 'run ' .. run .. ' is not paused (' .. status .. ')'
  end
  if k == 'completed' or k == 'log' or k == 'progress' or k == 'step_completed' or k == 'step_failed' then
    if status ~= 'running' and status ~= 'paused' then
      return 'run ' .. run .. ' has not started; send started first'
    end
  else
    if status == 'paused' then return 'run ' .. run .. ' is paused; no ' .. k .. ' until it is resumed' end
    if status ~= 'running' then return 'run ' .. run .. ' has not started; send started first' end
  end
  if k == 'step_started' and find(step) then return 'step ' .. step .. ' is already running' end
  if (k == 'step_completed' or k == 'step_failed') and not find(step) then
    local verb = 'failed'
    if k == 'step_completed' then verb = 'completed' end
    return 'step ' .. step .. ' ' .. verb .. ' but never started'
  end
  if k == 'completed' and outcome == 'succeeded' then
    if status == 'paused' then return 'a paused run cannot succeed; resume it first' end
    if #running > 0 then return 'run cannot succeed while step ' .. running[1] .. ' is still running' end
  end
  return nil
end
local n = tonumber(ARGV[9])
local plan, fresh = {}, {}
for i = 0, n - 1 do
  local k, id, step, outcome, o = ARGV[10 + i * 6], ARGV[11 + i * 6], ARGV[12 + i * 6],
    ARGV[13 + i * 6], ARGV[14 + i * 6]
  local prior = nil
  if id ~= '' then prior = fresh[id] or redis.call('HGET', ids, id) end
  if prior then
    plan[#plan + 1] = {tonumber(prior), 1}
  else
    local why = check(k, step, outcome)
    if why then return {0, why} end
    if k == 'started' then status = 'running'; owner = o
    elseif k == 'step_started' then running[#running + 1] = step
    elseif k == 'step_completed' or k == 'step_failed' then table.remove(running, find(step))
    elseif k == 'completed' then status = outcome; running = {}
    elseif k == 'paused' then status = 'paused'
    elseif k == 'resumed' then status = 'running' end
    last = last + 1
    if id ~= '' then fresh[id] = last end
    plan[#plan + 1] = {last, 0, i}
  end
end
local t = redis.call('TIME')
local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lts = tonumber(redis.call('HGET', m, 'ts') or '0')
if ts < lts then ts = lts end
local out = {1, ts, epoch}
local hooks, whs = {}, {}
local hooksArg = ARGV[10 + n * 6]
if hooksArg and hooksArg ~= '' and KEYS[4] then
  local i = 0
  for h in string.gmatch(hooksArg .. '|', '([^|]*)|') do hooks[i] = h; i = i + 1 end
end
for _, p in ipairs(plan) do
  local h = p[2] == 0 and hooks[p[3]] or ''
  if h ~= '' then
    if redis.call('EXISTS', KEYS[4]) == 0 then
      redis.call('XGROUP', 'CREATE', KEYS[4], 'hub', '$', 'MKSTREAM')
    end
    whs[#whs + 1] = redis.call('XADD', KEYS[4], '*', 'seq', p[1], 'hooks', h)
    redis.call('XREADGROUP', 'GROUP', 'hub', ARGV[11 + n * 6], 'COUNT', 1, 'STREAMS', KEYS[4], '>')
  else
    whs[#whs + 1] = ''
  end
  if p[2] == 0 then
    local i = p[3]
    local entry = p[1] .. ' ' .. ts .. ' run_event ' .. origin .. ' 9\npublisher' .. ARGV[15 + i * 6]
    redis.call('HSET', log, p[1], entry)
    local id = ARGV[11 + i * 6]
    if id ~= '' then redis.call('HSET', ids, id, p[1]) end
    redis.call('PUBLISH', channel, 'r' .. epoch .. ' ' .. run .. ' ' .. entry)
  end
  out[#out + 1] = p[1]
  out[#out + 1] = p[2]
end
local enc = '[]'
if #running > 0 then enc = cjson.encode(running) end
redis.call('HSET', m, 'seq', last, 'ts', ts, 'status', status, 'owner', owner, 'running', enc)
if hooksArg and hooksArg ~= '' then
  for _, w in ipairs(whs) do out[#out + 1] = w end
end
return out
