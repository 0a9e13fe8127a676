/// The Lua scripts that keep a session's members in Redis, one member per identity across the nodes
/// (`RedisStorage+Members`). Each runs in the session's slot and, when the cluster's membership changes,
/// appends the presence event as the append script does (`commit` in `Lua/log_prelude.lua`, the one
/// commit step of every log script: the same entry, retention, publication and webhook outbox entry), so
/// a join or leave and its event are one atomic step.
///
/// Keys of a session S besides those of `Scripts`: `{S}:members` (hash: identity -> the member's JSON,
/// its id and colour included) and `{S}:conns` (hash: `node|identity` -> connections that node holds;
/// a node's field exists while the member is on that node). A member leaves the session when its
/// identity has no field left on any node.
///
/// Each script is the log's prelude (`Scripts.logPrelude`), the members' prelude, then its own part
/// (`Lua/member_*.lua`; KEYS, ARGV and the reply at the top of each file).
enum MemberScripts {
    static let prelude = Scripts.logPrelude + "\n" + Scripts.lua(PackageResources.member_prelude_lua)
    static let join = prelude + "\n" + Scripts.lua(PackageResources.member_join_lua)
    static let leave = prelude + "\n" + Scripts.lua(PackageResources.member_leave_lua)
    static let reassert = prelude + "\n" + Scripts.lua(PackageResources.member_reassert_lua)
    static let nodeLost = prelude + "\n" + Scripts.lua(PackageResources.member_node_lost_lua)

    static let joinSHA = Scripts.sha1Hex(join)
    static let leaveSHA = Scripts.sha1Hex(leave)
    static let reassertSHA = Scripts.sha1Hex(reassert)
    static let nodeLostSHA = Scripts.sha1Hex(nodeLost)
    static let all = [join, leave, reassert, nodeLost]
}
