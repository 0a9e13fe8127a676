import Bytes
import Hub

/// Where a loop's ephemeral relays go (cross-node fan-out). Every loop of every node has its own
/// channel, `chub:e:<node>.<loop>`; each session it follows knows which other loops follow it too (its
/// peers), and one loop iteration's relays go out as one publication per peer that follows any of the
/// sessions that relayed (`NodeBatch`): never to the sender itself, never to a loop without members of
/// the session, one publication per destination per iteration instead of one per session.
///
/// Who follows a session: the set `{S}:eph` (same slot as the session's keys) holds each following
/// loop's id. A loop that starts following a session, and again each time its subscription to the
/// session's channel takes effect, adds itself to the set, publishes `f+<id>` on the session's channel
/// and reads the set, in that order on its commands connection: so its peers are known before any of
/// its members' joins is acknowledged (their appends go later on the same connection), and the others
/// hear `f+<id>` before those joins' presence events (same channel, published after). A loop that stops
/// following removes itself and publishes `f-<id>`. Durable events are not touched: they stay on the
/// session's log and channel.
final class EphemeralRoutes {
    /// This loop's id in the cluster: `<node>.<loop>`.
    let me: [UInt8]
    /// The channel this loop reads other loops' relays on: `chub:e:<me>`.
    let channel: [UInt8]
    /// Per followed session (its channel): the other loops that follow it too (indices into `loops`).
    private(set) var peers: [ChannelKey: [Int]] = [:]
    /// Every other loop heard of, once each: its channel, and its publication being built (reused).
    private var loops: [(channel: [UInt8], payload: [UInt8])] = []
    private var index: [ChannelKey: Int] = [:]
    /// Loops with a publication built in the current flush.
    private var used: [Int] = []
    private var section: [UInt8] = []
    /// Peers per session, and loops in all, at most (ids come from Redis: a bound against a corrupt set).
    static let maxPeers = 1024
    static let maxLoops = 65_536
    static let prefix = Array("chub:e:".utf8)
    /// Reused by the receiving side (`NodeBatch.scan`).
    var sectionSpans: [NodeBatch.SectionSpan] = []
    var itemSpans: [NodeBatch.ItemSpan] = []

    init(node: String, loop: Int) {
        me = Array("\(node).\(loop)".utf8)
        channel = Self.prefix + me
    }

    /// `f+<me>` and `f-<me>`: what is published on a session's channel.
    var hello: [UInt8] { [UInt8(ascii: "f"), UInt8(ascii: "+")] + me }
    var bye: [UInt8] { [UInt8(ascii: "f"), UInt8(ascii: "-")] + me }

    /// The set of a session's followers: `{S}:eph` for the channel `{S}:ch`.
    static func setKey(_ channel: ChannelKey) -> [UInt8] {
        Array(channel.bytes.dropLast(2)) + Array("eph".utf8)
    }

    func started(_ session: ChannelKey) {
        if peers[session] == nil { peers[session] = [] }
    }

    func stopped(_ session: ChannelKey) { peers[session] = nil }

    /// The other loops' channels that follow `session` (tests).
    func peerChannels(_ session: ChannelKey) -> [[UInt8]] { (peers[session] ?? []).map { loops[$0].channel } }

    /// The set as read from Redis (ids); only for a session still followed.
    func learned(_ session: ChannelKey, ids: [[UInt8]]) {
        for id in ids { add(session, id) }
    }

    /// A publication on a session's channel that starts with `f`: a loop that follows it, or stopped.
    func heard(_ session: ChannelKey, _ payload: [UInt8]) {
        guard payload.count > 2 else { return }
        let id = Array(payload[2...])
        switch payload[1] {
        case UInt8(ascii: "+"): add(session, id)
        case UInt8(ascii: "-"):
            guard let i = index[ChannelKey(Self.prefix + id)] else { return }
            peers[session]?.removeAll { $0 == i }
        default: break
        }
    }

    private func add(_ session: ChannelKey, _ id: [UInt8]) {
        guard id != me, Self.isId(id), let list = peers[session], list.count < Self.maxPeers else { return }
        let c = ChannelKey(Self.prefix + id)
        let i: Int
        if let known = index[c] {
            i = known
        } else {
            guard loops.count < Self.maxLoops else { return }
            i = loops.count
            loops.append((c.bytes, []))
            index[c] = i
        }
        if !list.contains(i) { peers[session]?.append(i) }
    }

    /// A loop id: 1-160 printable ASCII bytes, no spaces.
    static func isId(_ id: [UInt8]) -> Bool {
        !id.isEmpty && id.count <= 160 && id.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// One iteration's batches (per session) as one publication per destination, handed to `send`: each
    /// session's section encoded once and copied to each of its peers'. Sessions no other loop follows
    /// send nothing. The buffers are kept for the next iteration (`send` copies what it writes).
    func publish(origin: String, _ batches: [ChannelKey: [Relayed]], _ send: ([UInt8], [UInt8]) -> Void) {
        for (session, items) in batches {
            guard let to = peers[session], !to.isEmpty, !items.isEmpty else { continue }
            section.removeAll(keepingCapacity: true)
            NodeBatch.appendSection(session.bytes, items, to: &section)
            for i in to {
                if loops[i].payload.isEmpty {
                    loops[i].payload.append(UInt8(ascii: "E"))
                    loops[i].payload.appendUTF8(origin)
                    loops[i].payload.append(0x0A)
                    used.append(i)
                }
                loops[i].payload.append(contentsOf: section)
                // A busy iteration goes out in pieces, each destination's in turn: a publication waits for
                // no other, and the link's budget for relays (dropped past it) is shared among them.
                if loops[i].payload.count >= Self.maxPublication { sendAndEmpty(i, send) }
            }
        }
        for i in used where !loops[i].payload.isEmpty { sendAndEmpty(i, send) }
        used.removeAll(keepingCapacity: true)
    }

    /// A publication's size past which it is sent before the iteration's last session is added.
    static let maxPublication = 64 << 10

    private func sendAndEmpty(_ i: Int, _ send: ([UInt8], [UInt8]) -> Void) {
        send(loops[i].channel, loops[i].payload)
        loops[i].payload.removeAll(keepingCapacity: loops[i].payload.capacity <= 1 << 20)
    }
}

/// The commands and publications of `EphemeralRoutes`, on a loop's link.
extension LoopLink {
    /// This loop follows `session` (at follow time, and again each time the subscription takes effect).
    func announce(_ session: ChannelKey) {
        routes.started(session)
        let set = EphemeralRoutes.setKey(session)
        let publish = shards == nil ? Array("PUBLISH".utf8) : Array("SPUBLISH".utf8)
        commands.send([Array("SADD".utf8), set, routes.me]) { _ in }
        commands.send([publish, session.bytes, routes.hello]) { _ in }
        commands.send([Array("SMEMBERS".utf8), set]) { [weak self] reply in
            self?.routes.learned(session, ids: reply.items.compactMap(\.bytes))
        }
    }

    /// This loop no longer follows `session`.
    func withdraw(_ session: ChannelKey) {
        guard routes.peers[session] != nil else { return }
        routes.stopped(session)
        let publish = shards == nil ? Array("PUBLISH".utf8) : Array("SPUBLISH".utf8)
        commands.send([Array("SREM".utf8), EphemeralRoutes.setKey(session), routes.me]) { _ in }
        commands.send([publish, session.bytes, routes.bye]) { _ in }
    }

    /// A dead node's loops leave the followers of `session` (`NodeWatch.bury`, for each session the dead node
    /// had members in): each id `<dead>.<loop>` goes from `{S}:eph`, and `f-<id>` tells the loops that follow
    /// the session to stop publishing to it. Without this every restart (a new node id) would leave ids behind.
    func forgetFollowers(of dead: String, session: ChannelKey) {
        let set = EphemeralRoutes.setKey(session)
        let prefix = Array("\(dead).".utf8)
        let publish = shards == nil ? Array("PUBLISH".utf8) : Array("SPUBLISH".utf8)
        commands.send([Array("SMEMBERS".utf8), set]) { [weak self] reply in
            guard let self else { return }
            for id in reply.items.compactMap(\.bytes) where id.starts(with: prefix) && EphemeralRoutes.isId(id) {
                commands.send([Array("SREM".utf8), set, id]) { _ in }
                commands.send([publish, session.bytes, [UInt8(ascii: "f"), UInt8(ascii: "-")] + id]) { _ in }
            }
        }
    }

    /// This node was declared lost while alive: a survivor took its loops out of its sessions' followers
    /// (`forgetFollowers`), so each loop says again that it follows every session it does.
    func announceAll() {
        for channel in sinks.keys { announce(channel) }
    }

    /// A publication on this loop's own channel: each section's items to its session, if followed here.
    func nodeBatch(_ payload: [UInt8]) {
        let r = routes
        guard NodeBatch.scan(payload, &r.sectionSpans, &r.itemSpans) != nil else { return }
        payload.withUnsafeBytes { p in
            for s in r.sectionSpans {
                guard let sink = sinks[ChannelKey(Array(payload[s.channel]))]?.sink else { continue }
                for i in r.itemSpans[s.items] {
                    let frame = Chunk(UnsafeRawBufferPointer(rebasing: p[i.frame]))
                    sink(.ephemeral(i.traffic, key: RelayedKey(payload, i.key), frame: frame))
                }
            }
        }
    }
}
