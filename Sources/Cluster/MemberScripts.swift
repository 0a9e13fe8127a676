/// The Lua scripts that keep a session's members in Redis, one member per identity across the nodes
/// (`RedisStorage+Members`). Each runs in the session's slot and, when the cluster's membership changes,
/// appends the presence event as the append script does (`commit` below: the same entry, retention and
/// publication), so a join or leave and its event are one atomic step.
///
/// Keys of a session S besides those of `Scripts`: `{S}:members` (hash: identity -> the member's JSON,
/// its id and colour included) and `{S}:conns` (hash: `node|identity` -> connections that node holds;
/// a node's field exists while the member is on that node). A member leaves the session when its
/// identity has no field left on any node.
enum MemberScripts {
    /// KEYS: m, log, members, conns. ARGV[1..5]: channel, a new epoch (if the log has none), the seq to
    /// start from then, events kept (0: all), this node. Defines `commit(type, member, body, origin)` ->
    /// seq, ts, epoch (each entry also kept in `out`, after the epoch); `leaveBody(json, reason)`;
    /// `othersHold(identity, except node)`; `release(node, identity, reason, origin)`.
    static let prelude = #"""
        local m, log, members, conns = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
        local channel, newEpoch, seedSeq, keep, node = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
        -- The epoch, then every entry this call committed (what `reassert` and `nodeLost` return).
        local out = {''}
        local function commit(typ, member, body, origin)
          local epoch = redis.call('HGET', m, 'epoch')
          if not epoch then
            epoch = newEpoch
            redis.call('HSET', m, 'epoch', epoch, 'seq', seedSeq, 'floor', seedSeq, 'ts', 0)
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
          redis.call('PUBLISH', channel, 'd' .. epoch .. ' ' .. entry)
          out[1] = epoch
          out[#out + 1] = entry
          return seq, ts, epoch
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
          if body then commit('presence', id, body, origin) end
        end
        """#

    /// A member of an identity joins on this node. ARGV after the prelude: identity, member id, the
    /// member's JSON before and after its colour, the session's `max_participants`, the count of
    /// palette colours, then the palette. Returns {1, json} if the identity is a member already (this
    /// node's field added, no event); {2} if the session is full; else {0, colour, seq, ts, epoch}: the
    /// colour is the first of the palette no member has (cycling when all are taken), and the join event
    /// is committed.
    static let join =
        prelude + "\n" + #"""
            local identity, id, before, after = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
            local max, colours = tonumber(ARGV[10]), tonumber(ARGV[11])
            local cur = redis.call('HGET', members, identity)
            if cur then
              redis.call('HINCRBY', conns, node .. '|' .. identity, 1)
              return {1, cur}
            end
            local count = redis.call('HLEN', members)
            if count >= max then return {2} end
            local used = {}
            for _, v in ipairs(redis.call('HVALS', members)) do
              local ok, o = pcall(cjson.decode, v)
              if ok and type(o) == 'table' and type(o.color) == 'string' then used[o.color] = true end
            end
            local colour = ARGV[12 + count % colours]
            for i = 12, 11 + colours do
              if not used[ARGV[i]] then colour = ARGV[i]; break end
            end
            local json = before .. colour .. after
            redis.call('HSET', members, identity, json)
            redis.call('HINCRBY', conns, node .. '|' .. identity, 1)
            local seq, ts, epoch = commit('presence', id, '"joins":[' .. json .. '],"leaves":[]', node)
            return {0, colour, seq, ts, epoch}
            """#

    /// This node's member of an identity leaves it. ARGV after the prelude: identity, member id, the
    /// leave event's body (`EventBody.presence`). Returns
    /// {1, json} if another node still holds the identity (no event); {2} if it is no member any more
    /// (a survivor buried it); else {0, seq, ts, epoch} with the leave committed.
    static let leave =
        prelude + "\n" + #"""
            local identity = ARGV[6]
            redis.call('HDEL', conns, node .. '|' .. identity)
            local json = redis.call('HGET', members, identity)
            if not json then return {2} end
            if othersHold(identity, node) then return {1, json} end
            redis.call('HDEL', members, identity)
            local seq, ts, epoch = commit('presence', ARGV[7], ARGV[8], node)
            return {0, seq, ts, epoch}
            """#

    /// This node says what it holds of a session, after its link to Redis was down or after it was
    /// declared lost: ARGV after the prelude: n, then per member identity, member id, connections, JSON.
    /// Each is set as this node's field; one the cluster no longer has is a member again (its join
    /// committed, with its colour as the node has it, `max_participants` not checked: it was admitted);
    /// a field of this node that is not listed goes, and its member leaves if no node holds it (a leave
    /// that failed while Redis was away). Returns {epoch ('' if none), every entry committed}.
    static let reassert =
        prelude + "\n" + #"""
            local n, held = tonumber(ARGV[6]), {}
            for i = 0, n - 1 do
              local identity, id, c, json = ARGV[7 + i * 4], ARGV[8 + i * 4], ARGV[9 + i * 4], ARGV[10 + i * 4]
              held[identity] = true
              redis.call('HSET', conns, node .. '|' .. identity, c)
              if not redis.call('HGET', members, identity) then
                redis.call('HSET', members, identity, json)
                commit('presence', id, '"joins":[' .. json .. '],"leaves":[]', node)
              end
            end
            local prefix = node .. '|'
            for _, f in ipairs(redis.call('HKEYS', conns)) do
              if string.sub(f, 1, #prefix) == prefix then
                local identity = string.sub(f, #prefix + 1)
                if not held[identity] then release(node, identity, 'left', node) end
              end
            end
            return out
            """#

    /// A dead node's members (the survivor that buried it, `NodeWatch`): ARGV after the prelude: the
    /// dead node. Its fields go; each identity no node holds then leaves with reason `node_lost`, under
    /// origin `lost:<node>`. Idempotent. Returns {epoch ('' if none), every entry committed}.
    static let nodeLost =
        prelude + "\n" + #"""
            local dead = ARGV[6]
            local prefix = dead .. '|'
            for _, f in ipairs(redis.call('HKEYS', conns)) do
              if string.sub(f, 1, #prefix) == prefix then
                release(dead, string.sub(f, #prefix + 1), 'node_lost', 'lost:' .. dead)
              end
            end
            return out
            """#

    static let joinSHA = Scripts.sha1Hex(join)
    static let leaveSHA = Scripts.sha1Hex(leave)
    static let reassertSHA = Scripts.sha1Hex(reassert)
    static let nodeLostSHA = Scripts.sha1Hex(nodeLost)
    static let all = [join, leave, reassert, nodeLost]
}
