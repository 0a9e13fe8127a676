@testable import Cluster
import Hub

/// libFuzzer entry point for what a cluster node reads back from Redis's keys and from Redis Cluster's
/// answers (a Redis we do not fully trust, or a corrupted key, must never crash a node): API key records
/// (`KeyRecordJSON`) and the quota script's reply, activity entries (`ActivityJSON`), webhook endpoints
/// and delivery records (`WebhookRecords`), the `CLUSTER SLOTS` reply and the slot map made of it,
/// `MOVED`/`ASK` redirections, and `host:port` addresses (`ClusterRouting`). The first byte picks which;
/// replies come as RESP bytes through the real parser. Nothing may crash; whatever decodes encodes back
/// to the same value; a slot map and a redirection name only slots and addresses that exist. (The
/// `--redis` URL is fuzzed by `FuzzCluster`.) Debug builds only (`@testable`: the parsers are internal).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRedisRecords(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    switch data[0] % 7 {
    case 0:
        if let r = KeyRecordJSON.decode(bytes) {
            precondition(r.secretSHA256.count == 32 && r.revokedAt == nil)
            precondition(KeyRecordJSON.decode(KeyRecordJSON.encode(r)) == r, "a key record does not round-trip")
        }
        for reply in replies(bytes) {
            if let c = RedisAPIKeys.chargeReply(reply) {
                precondition(reply.items.count == 4 && c.counts.minute == reply.items[1].int)
            }
        }
    case 1:
        if let e = ActivityJSON.decode(bytes), let id = e.id {
            let again = ActivityJSON.decode(Array("\(id) ".utf8) + ActivityJSON.encode(e))
            precondition(again.map(fields) == fields(e), "an activity entry does not round-trip")
        }
    case 2:
        if let e = WebhookRecords.endpoint(bytes) {
            precondition(WebhookRecords.endpoint(WebhookRecords.encode(e)) == e, "an endpoint does not round-trip")
        }
    case 3:
        let id = Int(bytes.first ?? 0)
        if let (d, key) = WebhookRecords.delivery(id: id, bytes) {
            precondition(d.id == id)
            guard let (again, key2) = WebhookRecords.delivery(id: id, WebhookRecords.encode(d, key: key)) else {
                preconditionFailure("a delivery record does not decode again")
            }
            precondition(again == d && key2 == key, "a delivery record does not round-trip")
        }
    case 4:
        for reply in replies(bytes) {
            guard let ranges = ClusterRouting.slots(reply, asked: "10.0.0.1:7000") else { continue }
            for (range, master) in ranges {
                precondition(range.lowerBound >= 0 && range.upperBound < KeySlot.count)
                precondition(ClusterRouting.parseAddress(master) != nil, "a slot map names no address")
            }
            let map = ClusterMap()
            map.set(ranges)
            for (range, _) in ranges {
                precondition(map.master(slot: range.lowerBound) != nil && map.master(slot: range.upperBound) != nil)
            }
            precondition(Set(map.masters) == Set(ranges.map(\.1)))
        }
    case 5:
        let text = String(decoding: bytes, as: UTF8.self)
        if let r = ClusterRouting.redirect(text) {
            precondition(r.slot >= 0 && r.slot < KeySlot.count && ClusterRouting.parseAddress(r.address) != nil)
            let map = ClusterMap()
            map.moved(slot: r.slot, to: r.address)
            precondition(map.master(slot: r.slot) == r.address)
        }
    default:
        let text = String(decoding: bytes, as: UTF8.self)
        if let (host, port) = ClusterRouting.parseAddress(text) {
            precondition(!host.isEmpty && port > 0 && port < 65536)
            // As the address is written back (a slot map's masters, a reconnect's next node), it parses again.
            guard let (host2, port2) = ClusterRouting.parseAddress(ClusterRouting.address(host, port)) else {
                preconditionFailure("an address written back does not parse")
            }
            precondition(port2 == port && !host2.isEmpty)
        }
    }
    return 0
}

/// The replies in `bytes` as the node's RESP parser hands them over (stopping at the first error).
private func replies(_ bytes: [UInt8]) -> [RedisReply] {
    var p = RESPParser()
    p.append(bytes)
    var out: [RedisReply] = []
    while let r = try? p.next() { out.append(r.reply) }
    return out
}

/// An activity entry's fields, to compare (the type is not `Equatable`).
private func fields(_ e: ActivityEntry) -> [String?] {
    [e.id.map(String.init), String(e.ts), e.actor, e.action, e.target, e.session, e.address, e.details]
}
