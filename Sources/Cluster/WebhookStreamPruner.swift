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
/// before the removal and whose entry just after the check): a stream leaves the set in two steps, both
/// kept in Redis. It moves (one script in the `{wh}` slot) to `chub:{wh}:leaving` (hash: stream -> the
/// last entry id it had, `|`, when), and is checked again at once; at a pass `graceMillis` later, by
/// whichever node gets there first, it leaves that hash for good if it is still empty with the same last
/// entry, and goes back to the set otherwise. So an entry written in that instant is found again by any
/// node that lives on, whichever nodes die (its append's script would have to reach Redis more than
/// `graceMillis` after its `SADD` to be missed). Every node also puts back the streams of the entries it
/// holds at each sweep (`pass(open:)`). Run on the webhooks' queue, every `everySweeps` sweeps.
final class WebhookStreamPruner {
    /// How long a stream must have had no new entry before it may leave the set.
    static let idleMillis: Int64 = 30_000
    /// Every how many sweeps (`RedisWebhooks.sweepSeconds`) a pass looks at the set.
    static let everySweeps = 2
    /// Streams on their way out of the set (hash: stream -> `last entry id|ms`).
    static let leaving = "chub:{wh}:leaving"
    /// How long a stream stays in `leaving` before it is checked again (at least one pass apart).
    static let graceMillis: Int64 = 10_000
    /// KEYS: the set, `leaving`. ARGV: stream, its last entry id, now (ms). Moves the stream from the set to
    /// `leaving`; returns 0 if it was no longer in the set.
    static let takeOut = """
        if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
        redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
        return 1
        """
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
        guard let time = try? sync.call(.command("TIME")).items, time.count == 2,
            let seconds = time[0].text.flatMap({ Int64($0) })
        else { return }
        let now = seconds * 1000
        settleLeaving(now: now)
        guard let members = try? sync.call(.command("SMEMBERS", WebhookScripts.streams)).items else { return }
        var pruned = 0
        for name in members.compactMap(\.text) where !open.contains(name) {
            guard let (length, last) = state(name), length == 0, now - Self.millis(last) >= Self.idleMillis else {
                continue
            }
            let moved = try? sync.call(
                .command("EVAL", Self.takeOut, 2, WebhookScripts.streams, Self.leaving, name, last, Int(now)))
            guard moved?.int == 1 else { continue }
            if unchanged(name, last: last) {
                pruned += 1
            } else {
                putBack(name)
            }
        }
        if pruned > 0 {
            log.debug("webhook streams pruned", metadata: ["count": "\(pruned)"])
        }
    }

    /// The streams that left the set `graceMillis` ago or more, checked once more (whichever node took them
    /// out): gone for good if still empty with the same last entry, back in the set otherwise.
    private func settleLeaving(now: Int64) {
        guard let items = try? sync.call(.command("HGETALL", Self.leaving)).items else { return }
        for i in stride(from: 0, to: items.count - 1, by: 2) {
            guard let name = items[i].text, let value = items[i + 1].text else { continue }
            let parts = value.split(separator: "|", maxSplits: 1).map(String.init)
            let since = parts.count == 2 ? Int64(parts[1]) ?? 0 : 0
            guard now - since >= Self.graceMillis else { continue }
            if parts.count != 2 || !unchanged(name, last: parts[0]) {
                // Changed, unreadable or malformed: back in the set (the safe side), then out of `leaving`.
                guard (try? sync.call(.command("SADD", WebhookScripts.streams, name))) != nil else { continue }
            }
            _ = try? sync.call(.command("HDEL", Self.leaving, name))
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
