import Bytes

/// The Lua scripts that make Redis the session log: each runs atomically, so one script call both
/// assigns the next seq, stores the event and publishes it. Every key a script touches carries the
/// stream's hash tag (`{CODE}`), so under Redis Cluster all of a session lives in one slot.
///
/// Keys of a stream S: `{S}:m` (hash: `seq` the last seq, `epoch`, `floor` the last seq retention
/// deleted, `ts` the last commit time), `{S}:log` (hash: seq -> entry), `{S}:ids` (sorted set:
/// `<length of member>:<member><client id>` -> seq, the newest `idsKept`; the length makes the pair
/// unambiguous whatever either part holds), `{S}:members` and `{S}:conns` (who is present, on which
/// nodes: kept by `MemberScripts`), `{S}:info` (the session's row), and the channel `{S}:ch`.
enum Scripts {
    /// KEYS: m, log, ids, members. ARGV: type, member, client id, body, origin node, channel, a new
    /// epoch (used if the stream has none), the seq to start from then, events kept (0: all), seq to
    /// replace (0: none), its new body, ids kept, why it is replaced (`redacted` or `deleted`: the flag
    /// its edits' tombstones carry). Returns {seq, ts, duplicate, epoch}.
    static let append = """
        local m, log, ids, members = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
        local typ, member, cid, body, origin = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
        local epoch = redis.call('HGET', m, 'epoch')
        if not epoch then
          epoch = ARGV[7]
          redis.call('HSET', m, 'epoch', epoch, 'seq', ARGV[8], 'floor', ARGV[8], 'ts', 0)
        end
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
              local nl = string.find(e, '\\n', 1, true)
              if nl then
                local mlen = tonumber(string.match(string.sub(e, 1, nl - 1), '(%d+)$'))
                same = mlen == #member and string.sub(e, nl + 1, nl + mlen) == member
              end
            end
            if same then return {tonumber(prior), ts, 1, epoch} end
          end
        end
        local seq = redis.call('HINCRBY', m, 'seq', 1)
        local t = redis.call('TIME')
        local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local last = tonumber(redis.call('HGET', m, 'ts') or '0')
        if ts < last then ts = last end
        local entry = seq .. ' ' .. ts .. ' ' .. typ .. ' ' .. origin .. ' ' .. #member .. '\\n' .. member .. body
        redis.call('HSET', log, seq, entry)
        redis.call('HSET', m, 'ts', ts)
        if cid ~= '' then
          redis.call('ZADD', ids, seq, idkey)
          local kept = tonumber(ARGV[12])
          if redis.call('ZCARD', ids) > kept then redis.call('ZREMRANGEBYRANK', ids, 0, -kept - 1) end
        end
        local keep = tonumber(ARGV[9])
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
        if ARGV[10] ~= '0' then
          local rs = tonumber(ARGV[10])
          local old = redis.call('HGET', log, rs)
          if old then
            local nl = string.find(old, '\\n', 1, true)
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
              local nl = string.find(e, '\\n', 1, true)
              local from = nl + tonumber(string.match(string.sub(e, 1, nl - 1), '(%d+)$')) + 1
              local cut = string.find(e, ',"text":', from, true)
              if cut and string.find(e, marker, from, true) then
                redis.call('HSET', log, s, string.sub(e, 1, cut - 1) .. ',"' .. why .. '":true')
              end
            end
          end
        end
        redis.call('PUBLISH', ARGV[6], 'd' .. epoch .. ' ' .. entry)
        return {seq, ts, 0, epoch}
        """

    /// Several events of one stream, all or none, only if its last seq is still ARGV[1] ('': any).
    /// KEYS: m, log. ARGV: expected, origin, channel, new epoch, n, then type, member, body per event.
    /// Returns {ts, epoch, seq...}; a changed last seq is the error `CONFLICT <last seq>`.
    static let batch = """
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
          local entry = last .. ' ' .. ts .. ' ' .. typ .. ' ' .. ARGV[2] .. ' ' .. #member .. '\\n' .. member .. body
          redis.call('HSET', log, last, entry)
          redis.call('PUBLISH', ARGV[3], 'd' .. epoch .. ' ' .. entry)
          out[#out + 1] = last
        end
        redis.call('HSET', m, 'seq', last, 'ts', ts)
        return out
        """

    /// A run's events, all or none, each checked against the run's state (the rules of `Run.check`,
    /// word for word in what it answers), an event id seen before answered as a duplicate.
    /// KEYS: m (also `status`, `owner`, `running`: the JSON array of running steps in start order),
    /// log, ids (hash: event id -> seq). ARGV: run id, origin, channel, a new epoch (used if the run
    /// has none), then the seed used with it: seq, status, owner, running steps (JSON); then n, and
    /// per event: type, id, step, outcome, owner, body. Returns {0, why} for an illegal event, else
    /// {1, ts, epoch, then seq and duplicate (1/0) per event}. Each stored event is published on the
    /// channel as `r<epoch> <run> <entry>` (`RunPublication`).
    static let runAppend = #"""
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
        for _, p in ipairs(plan) do
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
        return out
        """#

    /// Retention of one session's log: deletes from the oldest while an event is past `keep` (the
    /// newest N stay; 0: any number) or older than `age` milliseconds (0: any age), at most `limit`.
    /// KEYS: m, log. ARGV: keep, age, limit. Returns how many it deleted.
    static let trim = """
        local m, log = KEYS[1], KEYS[2]
        local last = tonumber(redis.call('HGET', m, 'seq') or '0')
        if last == 0 then return 0 end
        local floor = tonumber(redis.call('HGET', m, 'floor') or '0')
        local keep, age, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local n = 0
        while floor < last and n < limit do
          local s = floor + 1
          local drop = keep > 0 and s <= last - keep
          if not drop and age > 0 then
            local e = redis.call('HGET', log, s)
            drop = true
            if e then
              local ets = tonumber(string.match(e, '^%d+ (%d+) '))
              drop = ets ~= nil and ets < now - age
            end
          end
          if not drop then break end
          redis.call('HDEL', log, s)
          floor = s
          n = n + 1
        end
        redis.call('HSET', m, 'floor', floor)
        return n
        """

    /// A session's row: KEYS[1] `{S}:info`; ARGV: the row's JSON, 1 if the session is new. A new one
    /// is refused (0) if the code is taken; an ended row is never made live again by a late update;
    /// what is stored is published on `chub:dir` for every node's directory.
    static let saveRow = """
        local cur = redis.call('GET', KEYS[1])
        if ARGV[2] == '1' and cur then return 0 end
        local row = ARGV[1]
        if cur and string.find(cur, '"ended":', 1, true) and not string.find(row, '"ended":', 1, true) then
          row = cur
        end
        redis.call('SET', KEYS[1], row)
        redis.call('PUBLISH', 'chub:dir', row)
        return 1
        """

    static let appendSHA = sha1Hex(append)
    static let batchSHA = sha1Hex(batch)
    static let runAppendSHA = sha1Hex(runAppend)

    static func sha1Hex(_ s: String) -> String {
        let hex = Array("0123456789abcdef".utf8)
        return String(
            decoding: Crypto.sha1(Array(s.utf8)).flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 15)]] }, as: UTF8.self)
    }
}
