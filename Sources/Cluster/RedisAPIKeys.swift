import Bytes
import EventLoop
import Foundation
import Hub
import Logging

/// API keys and their quota counters in Redis, shared by every node (`collabhub serve --redis`).
///
/// Node-wide keys (none of them a session's `{S}:` key; each hash-tagged so that what one script
/// touches shares a slot):
/// - `chub:{keys}`: key id -> the record as JSON (`KeyRecordJSON`: name, the secret's SHA-256, scopes,
///   runs, owners, limits, created). A record is written once and never changed.
/// - `chub:{keys}:revoked`: key id -> when it was revoked (Unix ms). Revoking sets it once.
/// - `chub:{key:ID}:min<minute>`, `chub:{key:ID}:h<hour>`, `chub:{key:ID}:m<month>`: request counts of
///   key ID in its fixed windows, counted by one script (`Self.charge`) that refuses a request over any
///   limit and otherwise counts it in all three, each counter expiring a while after its window ends.
/// - `chub:fail:<client key>`: failed joins of one client address (`AddressKey`) in its minute
///   (INCR, and PEXPIRE on the first: the window starts with the first failure, as on one node).
///
/// A change (key made or revoked) is published on the channel `chub:keys`; every node follows it
/// (loop 0's subscriber) and reads the keys again, also each time that subscription takes effect
/// again after a reconnect (what was published meanwhile was missed).
final class RedisAPIKeys: APIKeyStore, SharedAccounting, @unchecked Sendable {
    static let records = "chub:{keys}"
    static let revoked = "chub:{keys}:revoked"
    static let channel = "chub:keys"
    static func counter(_ id: String, _ window: String) -> String { "chub:{key:\(id)}:\(window)" }
    static func failures(_ clientKey: String) -> String { "chub:fail:\(clientKey)" }

    private let sync: RedisSync
    private let link: (Executor) -> LoopLink?
    private let activity: ActivityLog
    /// Counts of requests charged without waiting for the answer (`recordUse`), one at a time.
    private let uses = DispatchQueue(label: "collabhub.redis.key-uses")
    /// Calls `then` once the uses counted before it are written.
    func drained(_ then: @escaping () -> Void) { uses.async(execute: then) }
    private let log = Logger(label: "collabhub.redis.keys")

    init(sync: RedisSync, activity: ActivityLog, link: @escaping (Executor) -> LoopLink?) {
        self.sync = sync
        self.activity = activity
        self.link = link
    }

    var accounting: SharedAccounting? { self }

    // MARK: - APIKeyStore

    func allKeys() throws -> [APIKeyRecord] {
        let all = try sync.call(.command("HGETALL", Self.records)).items
        let revoked = try sync.call(.command("HGETALL", Self.revoked)).items
        var when: [String: Int64] = [:]
        var i = 0
        while i + 1 < revoked.count {
            if let id = revoked[i].text, let ms = revoked[i + 1].int { when[id] = Int64(ms) }
            i += 2
        }
        var out: [APIKeyRecord] = []
        i = 0
        while i + 1 < all.count {
            if let bytes = all[i + 1].bytes, var r = KeyRecordJSON.decode(bytes) {
                r.revokedAt = when[r.id]
                out.append(r)
            } else {
                log.warning("an API key record in Redis does not read", metadata: ["id": "\(all[i].text ?? "?")"])
            }
            i += 2
        }
        return out.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    func createKey(_ spec: APIKeySpec, actor: String) throws -> (APIKeyRecord, String) {
        let secret = Base64.encodeID(Crypto.randomBytes(24))
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        // A fresh id taken meanwhile (48 random bits: never in practice) is drawn again.
        for _ in 0..<3 {
            let id = Base64.encodeID(Crypto.randomBytes(6))
            let record = APIKeyRecord(
                id: id, name: spec.name, secretSHA256: Crypto.sha256(Array(secret.utf8)), createdAt: now,
                revokedAt: nil, perMinute: spec.perMinute, perHour: spec.perHour, perMonth: spec.perMonth,
                scopes: spec.scopes, runs: spec.runs, owners: spec.owners)
            let made = try sync.call(
                .command("EVAL", Self.create, 1, Self.records, id, KeyRecordJSON.encode(record), Self.channel))
            guard made.int == 1 else { continue }
            activity.record(ActivityEntry(actor: actor, action: "api_key_created", target: id, details: spec.name))
            return (record, "chk_\(id)_\(secret)")
        }
        throw StoreFailure("redis: no free key id")
    }

    func revokeKey(id: String, actor: String) throws -> Bool {
        let now = Int(Date().timeIntervalSince1970 * 1000)
        let done = try sync.call(.command("EVAL", Self.revoke, 2, Self.records, Self.revoked, id, now, Self.channel))
        guard done.int == 1 else { return false }
        activity.record(ActivityEntry(actor: actor, action: "api_key_revoked", target: id))
        return true
    }

    /// Every key's count in one window (`h<hour>`, `m<month>`), read in batches.
    func usage(window: String) throws -> [String: Int] {
        let ids = try sync.call(.command("HKEYS", Self.records)).items.compactMap(\.text)
        var out: [String: Int] = [:]
        for start in stride(from: 0, to: ids.count, by: 500) {
            let batch = Array(ids[start..<min(start + 500, ids.count)])
            let counts = try sync.call([Array("MGET".utf8)] + batch.map { Array(Self.counter($0, window).utf8) })
            for (id, n) in zip(batch, counts.items) { if let n = n.int, n > 0 { out[id] = n } }
        }
        return out
    }

    /// A request already allowed from the node's own counts (a message on a `/publish` socket, an
    /// upgrade): counted in Redis too, without waiting (and without refusing: it was allowed).
    func recordUse(id: String, windows _: (String, String)) {
        let w = QuotaWindows(Date())
        let unlimited = QuotaLimits(perMinute: Int.max / 2, perHour: Int.max / 2, perMonth: Int.max / 2)
        uses.async { [self] in
            let args =
                [Array("EVAL".utf8), Array(Self.charge.utf8), Array("3".utf8)]
                + Self.bytes(Self.chargeArgs(id, unlimited, w))
            do { _ = try sync.call(args) } catch {
                log.debug("a key's use was not counted in redis", metadata: ["id": "\(id)", "error": "\(error)"])
            }
        }
    }

    // MARK: - SharedAccounting

    func chargeKey(
        id: String, limits: QuotaLimits, windows: QuotaWindows, executor: Executor,
        _ done: @escaping (QuotaCharge?) -> Void
    ) {
        guard let link = link(executor) else { return done(nil) }
        let args = Self.chargeArgs(id, limits, windows)
        link.eval(Self.charge, sha: Self.chargeSHA, keys: Array(args.prefix(3)), args: Self.bytes(args.dropFirst(3))) {
            done(Self.chargeReply($0))
        }
    }

    func keyCounts(id: String, windows w: QuotaWindows) throws -> QuotaCounts {
        let c = try sync.call(
            .command(
                "MGET", Self.counter(id, "min\(w.minute)"), Self.counter(id, w.hourName),
                Self.counter(id, w.monthName))
        ).items
        guard c.count == 3 else { throw StoreFailure("redis: an unexpected answer to MGET") }
        return QuotaCounts(minute: c[0].int ?? 0, hour: c[1].int ?? 0, month: c[2].int ?? 0)
    }

    func countFailedJoin(key: String, window: Double, executor: Executor, _ done: @escaping (Int?) -> Void) {
        guard let link = link(executor) else { return done(nil) }
        link.eval(
            Self.failure, sha: Self.failureSHA, keys: [Self.failures(key)],
            args: [Array(String(Int(window * 1000)).utf8)]
        ) { done($0.int) }
    }

    func followKeyChanges(executor: Executor, _ changed: @escaping () -> Void) {
        link(executor)?.followNodeChannel(Self.channel) { _ in changed() }
    }

    // MARK: - Scripts and their arguments

    /// Keys, then arguments, of the charge script: three counters, three limits, three lifetimes.
    static func chargeArgs(_ id: String, _ l: QuotaLimits, _ w: QuotaWindows) -> [String] {
        [
            counter(id, "min\(w.minute)"), counter(id, w.hourName), counter(id, w.monthName),
            String(l.perMinute), String(l.perHour), String(l.perMonth),
            // Kept a little past their window: usage reads of the window just ended still find them.
            String(w.minuteLeft + 60), String(w.hourLeft + 3600), String(w.monthLeft + 86_400),
        ]
    }

    static func bytes<S: Sequence>(_ strings: S) -> [[UInt8]] where S.Element == String {
        strings.map { Array($0.utf8) }
    }

    /// `{code, minute, hour, month}`: code 0 counted, 1/2/3 refused by the minute/hour/month limit.
    static func chargeReply(_ reply: RedisReply) -> QuotaCharge? {
        let v = reply.items.map(\.int)
        guard v.count == 4, let code = v[0], let m = v[1], let h = v[2], let mo = v[3] else { return nil }
        let counts = QuotaCounts(minute: m, hour: h, month: mo)
        switch code {
        case 0: return QuotaCharge(counts: counts, refused: nil)
        case 1: return QuotaCharge(counts: counts, refused: .minute)
        case 2: return QuotaCharge(counts: counts, refused: .hour)
        case 3: return QuotaCharge(counts: counts, refused: .month)
        default: return nil
        }
    }

    // The scripts (Sources/Cluster/Lua/, each saying its KEYS, ARGV and reply).
    static let create = String(decoding: PackageResources.key_create_lua, as: UTF8.self)
    static let revoke = String(decoding: PackageResources.key_revoke_lua, as: UTF8.self)
    static let charge = String(decoding: PackageResources.key_charge_lua, as: UTF8.self)
    static let chargeSHA = Scripts.sha1Hex(charge)
    static let failure = String(decoding: PackageResources.join_failure_lua, as: UTF8.self)
    static let failureSHA = Scripts.sha1Hex(failure)
}

/// An API key record as stored in Redis: JSON, the secret's hash in hex; revocation is kept apart.
enum KeyRecordJSON {
    static func encode(_ r: APIKeyRecord) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.field("id", r.id); w.field("name", r.name)
        w.field("sha256", r.secretSHA256.map { String(format: "%02x", $0) }.joined())
        w.field("created", Int(r.createdAt))
        w.field("per_minute", r.perMinute); w.field("per_hour", r.perHour); w.field("per_month", r.perMonth)
        w.beginArray("scopes"); for s in r.scopes { w.element(s) }; w.endArray()
        if let runs = r.runs { w.beginArray("runs"); for x in runs { w.element(x) }; w.endArray() }
        if let owners = r.owners { w.beginArray("owners"); for x in owners { w.element(x) }; w.endArray() }
        w.endObject()
        return w.bytes
    }

    /// nil for anything that is not a whole record (a key that does not read is no key: it fails closed).
    static func decode(_ bytes: [UInt8]) -> APIKeyRecord? {
        guard let o = try? JSONReader.readObject(bytes, maxDepth: 3), let id = o["id"]?.string,
            let name = o["name"]?.string, let hex = o["sha256"]?.string, let hash = Self.hex(hex), hash.count == 32,
            let created = o["created"]?.int, let perMinute = o["per_minute"]?.int, let perHour = o["per_hour"]?.int,
            let perMonth = o["per_month"]?.int, let scopeItems = o["scopes"]?.array
        else { return nil }
        let scopes = scopeItems.compactMap(\.string)
        guard scopes.count == scopeItems.count else { return nil }
        func list(_ key: String) -> [String]?? {
            guard let v = o[key], v.kind != .null else { return .some(nil) }
            guard let items = v.array else { return nil }
            let strings = items.compactMap(\.string)
            return strings.count == items.count ? .some(strings) : nil
        }
        guard let runs = list("runs"), let owners = list("owners") else { return nil }
        return APIKeyRecord(
            id: id, name: name, secretSHA256: hash, createdAt: Int64(created), revokedAt: nil, perMinute: perMinute,
            perHour: perHour, perMonth: perMonth, scopes: scopes, runs: runs, owners: owners)
    }

    static func hex(_ s: String) -> [UInt8]? {
        let u = Array(s.utf8)
        guard u.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 2)
        for i in stride(from: 0, to: u.count, by: 2) {
            guard let b = UInt8(String(decoding: u[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            out.append(b)
        }
        return out
    }
}

extension LoopLink {
    /// Follows a node-wide channel on this loop's subscriber: `sink` gets each payload, and nil each time
    /// the subscription takes effect (first, and again after a reconnect).
    func followNodeChannel(_ channel: String, _ sink: @escaping ([UInt8]?) -> Void) {
        let c = Array(channel.utf8)
        nodeChannels[c] = sink
        subscriber.subscribe(c)
    }
}

/// `collabhub keys ... --redis URL`: the cluster's keys, from a command beside the running nodes.
public enum ClusterKeys {
    public static func store(url: String) throws -> APIKeyStore {
        let sync = RedisSync(url: try RedisURL(url))
        _ = try sync.call(.command("PING"))
        let activity = RedisActivityLog(sync: sync, fallback: nil)
        return RedisAPIKeys(sync: sync, activity: activity) { _ in nil }
    }
}
