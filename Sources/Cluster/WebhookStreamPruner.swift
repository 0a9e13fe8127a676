import Foundation
import Logging

/// Keeps `chub:{wh}:streams` (the set of `{S}:wh` streams with webhook work, which take-overs and the
/// idle sweep look through) from growing with every session that ever had webhooks.
///
/// The rule: a stream leaves the set when it is empty and its last entry was added at least `idleMillis`
/// ago (or it no longer exists: its session is gone). Empty is what makes it safe: an entry stays in
/// its stream until every endpoint's delivery of it is finished (then `XACK` and `XDEL`), pending or not,
/// so an empty stream holds nothing undelivered. An append adds its stream to the set before its script
/// writes the entry, on the same connection; the set and the stream are in different slots, so the
/// removal cannot be one script with the check. What closes the race (an append whose `SADD` came just
/// before the removal and whose entry just after the check): the stream is checked again right after
/// the removal and once more at the next pass, and put back if it changed; and every node puts back the
/// streams of the entries it holds at each sweep (`pass(open:)`), so a live node's entries stay findable.
/// Run on the webhooks' queue, every `everySweeps` sweeps.
final class WebhookStreamPruner {
    /// How long a stream must have had no new entry before it may leave the set.
    static let idleMillis: Int64 = 30_000
    /// Every how many sweeps (`RedisWebhooks.sweepSeconds`) a pass looks at the set.
    static let everySweeps = 2
    /// The stream's length and last entry id (`0-0` if none); `{0, "0-0"}` if it does not exist.
    static let state = """
        if redis.call('EXISTS', KEYS[1]) == 0 then return {0, '0-0'} end
        local info = redis.call('XINFO', 'STREAM', KEYS[1])
        for i = 1, #info - 1, 2 do
          if info[i] == 'last-generated-id' then return {redis.call('XLEN', KEYS[1]), info[i + 1]} end
        end
        return {redis.call('XLEN', KEYS[1]), '0-0'}
        """

    private let sync: RedisSync
    private let stream: (String) -> String
    private var sweeps = 0
    /// Streams this node took out at its last pass, with the last entry id they had: checked again.
    private var removed: [String: String] = [:]
    private let log = Logger(label: "collabhub.redis")

    init(sync: RedisSync, stream: @escaping (String) -> String) {
        self.sync = sync
        self.stream = stream
    }

    /// One sweep: the streams of the entries this node holds (`open`) are put back in the set; every
    /// `everySweeps` sweeps, the streams that are empty and idle leave it.
    func pass(open: Set<String>) {
        if !open.isEmpty {
            _ = try? sync.call(.command("SADD", WebhookScripts.streams) + open.sorted().map { Array($0.utf8) })
        }
        sweeps += 1
        guard sweeps % Self.everySweeps == 0 else { return }
        // The last pass's removals, once more: an entry that arrived since puts its stream back.
        for (name, last) in removed where !unchanged(name, last: last) { putBack(name) }
        removed = [:]
        guard let members = try? sync.call(.command("SMEMBERS", WebhookScripts.streams)).items,
            let time = try? sync.call(.command("TIME")).items, time.count == 2,
            let seconds = time[0].text.flatMap({ Int64($0) })
        else { return }
        let now = seconds * 1000
        for name in members.compactMap(\.text) where !open.contains(name) {
            guard let (length, last) = state(name), length == 0, now - Self.millis(last) >= Self.idleMillis else {
                continue
            }
            guard (try? sync.call(.command("SREM", WebhookScripts.streams, name))) != nil else { continue }
            if unchanged(name, last: last) {
                removed[name] = last
            } else {
                putBack(name)
            }
        }
        if !removed.isEmpty {
            log.debug("webhook streams pruned", metadata: ["count": "\(removed.count)"])
        }
    }

    /// The stream is still empty with the same last entry (a failed read counts as changed).
    private func unchanged(_ name: String, last: String) -> Bool {
        guard let (length, now) = state(name) else { return false }
        return length == 0 && now == last
    }

    private func putBack(_ name: String) {
        _ = try? sync.call(.command("SADD", WebhookScripts.streams, name))
    }

    private func state(_ name: String) -> (Int, String)? {
        guard let r = try? sync.call(.command("EVAL", Self.state, 1, stream(name))), r.items.count == 2,
            let length = r.items[0].int, let last = r.items[1].text
        else { return nil }
        return (length, last)
    }

    /// The milliseconds of a stream entry id (`ms-seq`).
    static func millis(_ id: String) -> Int64 {
        Int64(id.split(separator: "-").first ?? "") ?? 0
    }
}
