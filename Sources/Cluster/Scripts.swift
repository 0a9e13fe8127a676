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
/// The scripts live in `Sources/Cluster/Lua/` (each file says its KEYS, ARGV and reply at the top) and
/// are compiled in as bytes (`PackageResources`, SwiftPM's `embedInCode`). Every script that commits
/// to a session's log (append, batch, the member scripts) starts with `logPrelude`: one commit step
/// (epoch, numbering, retention, publication, webhook outbox entry) for all of them.
enum Scripts {
    static let logPrelude = lua(PackageResources.log_prelude_lua)
    static let append = logPrelude + "\n" + lua(PackageResources.append_lua)
    static let batch = logPrelude + "\n" + lua(PackageResources.batch_lua)
    static let runAppend = lua(PackageResources.run_append_lua)
    static let trim = lua(PackageResources.trim_lua)
    static let saveRow = lua(PackageResources.save_row_lua)

    static let appendSHA = sha1Hex(append)
    static let batchSHA = sha1Hex(batch)
    static let runAppendSHA = sha1Hex(runAppend)

    static func lua(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    static func sha1Hex(_ s: String) -> String {
        let hex = Array("0123456789abcdef".utf8)
        return String(
            decoding: Crypto.sha1(Array(s.utf8)).flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 15)]] }, as: UTF8.self)
    }
}
