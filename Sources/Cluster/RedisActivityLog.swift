import Bytes
import Foundation
import Hub
import Logging

/// The activity log in Redis, one for the cluster: `GET /api/activity` answers the same on every node.
///
/// `chub:{activity}` is a list, newest first, of `<id> <entry JSON>`, trimmed to the newest
/// `RedisActivityLog.kept` entries by the script that adds one; `chub:{activity}:id` numbers them (one
/// increasing id for the cluster: the `before` / `cursor` paging of the API works as on one node).
/// Entries are written from a queue of their own, never waited for (the caller may be a loop); one that
/// cannot reach Redis is written to the node's SQLite store instead (`fallback`), which the API does not
/// read in a cluster: an operator finds it there.
final class RedisActivityLog: ActivityLog, @unchecked Sendable {
    static let list = "chub:{activity}"
    static let ids = "chub:{activity}:id"
    /// Entries kept (the newest).
    static let kept = 10_000
    /// Entries waiting to be written; past this a flood is dropped (to the fallback) rather than queued.
    static let maxQueued = 10_000

    private let sync: RedisSync
    private let fallback: ActivityLog?
    private let queue = DispatchQueue(label: "collabhub.redis.activity")
    /// Calls `then` once the entries recorded before it are written.
    func drained(_ then: @escaping () -> Void) { queue.async(execute: then) }
    private let lock = NSLock()
    private var queued = 0
    private let log = Logger(label: "collabhub.redis.activity")

    /// `fallback` nil: entries are written at once, on the caller's thread (the `collabhub keys` command).
    init(sync: RedisSync, fallback: ActivityLog?) {
        self.sync = sync
        self.fallback = fallback
    }

    func record(_ entry: ActivityEntry) {
        guard let fallback else {
            do { try write(entry) } catch { log.warning("activity entry not written", metadata: ["error": "\(error)"]) }
            return
        }
        let full: Bool = lock.withLock {
            guard queued < Self.maxQueued else { return true }
            queued += 1
            return false
        }
        if full { return fallback.record(entry) }
        queue.async { [self] in
            defer { lock.withLock { queued -= 1 } }
            do { try write(entry) } catch {
                log.warning("activity entry written to this node's store only", metadata: ["error": "\(error)"])
                fallback.record(entry)
            }
        }
    }

    private func write(_ entry: ActivityEntry) throws {
        _ = try sync.call(.command("EVAL", Self.add, 2, Self.list, Self.ids, ActivityJSON.encode(entry), Self.kept))
    }

    /// Newest first: the list is read in pages from its head until `limit` entries matched.
    func activity(_ q: ActivityQuery) throws -> [ActivityEntry] {
        var out: [ActivityEntry] = []
        var start = 0
        let page = 500
        while out.count < q.limit && start < Self.kept + page {
            let items = try sync.call(.command("LRANGE", Self.list, start, start + page - 1)).items
            for item in items {
                guard let bytes = item.bytes, let e = ActivityJSON.decode(bytes) else { continue }
                if let before = q.before, let id = e.id, id >= before { continue }
                if let since = q.since, e.ts < since { continue }
                if let s = q.session, e.session != s { continue }
                if let a = q.actor, e.actor != a { continue }
                out.append(e)
                if out.count == q.limit { break }
            }
            if items.count < page { break }
            start += page
        }
        return out
    }

    /// Sources/Cluster/Lua/activity_add.lua: numbers, adds and trims.
    static let add = String(decoding: PackageResources.activity_add_lua, as: UTF8.self)
}

/// One activity entry as stored in Redis: `<id> <JSON>` (the id is the script's, the rest the entry's).
enum ActivityJSON {
    static func encode(_ e: ActivityEntry) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.field("ts", Int(e.ts)); w.field("actor", e.actor); w.field("action", e.action)
        if let v = e.target { w.field("target", v) }
        if let v = e.session { w.field("session", v) }
        if let v = e.address { w.field("address", v) }
        if let v = e.details { w.field("details", v) }
        w.endObject()
        return w.bytes
    }

    static func decode(_ stored: [UInt8]) -> ActivityEntry? {
        guard let sp = stored.firstIndex(of: 0x20), let id = Int(String(decoding: stored[..<sp], as: UTF8.self)),
            let o = try? JSONReader.readObject(Array(stored[(sp + 1)...]), maxDepth: 2), let ts = o["ts"]?.int,
            let actor = o["actor"]?.string, let action = o["action"]?.string
        else { return nil }
        var e = ActivityEntry(
            actor: actor, action: action, target: o["target"]?.string, session: o["session"]?.string,
            address: o["address"]?.string, details: o["details"]?.string, ts: Int64(ts))
        e.id = id
        return e
    }
}
