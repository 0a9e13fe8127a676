// Hummingbird WebSocket rooms server: the Swift comparison peer for the fan-out benchmark, the same
// protocol as ../node-ws/rooms.js. A client connects to /ws?session=ROOM and sends JSON objects; each
// is parsed (JSONSerialization), tagged with the sender and sent to every other member of the room.
// {"type":"join"} is answered with {"type":"joined"}. Each connection writes from its own task,
// fed by an AsyncStream, so a broadcast never waits on a slow member.
// Usage: swift run -c release HBRooms PORT
import Foundation
import Hummingbird
import HummingbirdWebSocket

final class Rooms: @unchecked Sendable {
    private let lock = NSLock()
    private var rooms: [String: [Int: AsyncStream<String>.Continuation]] = [:]
    private var nextId = 0

    func join(_ room: String, _ c: AsyncStream<String>.Continuation) -> Int {
        lock.lock(); defer { lock.unlock() }
        nextId += 1
        rooms[room, default: [:]][nextId] = c
        return nextId
    }

    func leave(_ room: String, _ id: Int) {
        lock.lock(); defer { lock.unlock() }
        rooms[room]?[id] = nil
        if rooms[room]?.isEmpty == true { rooms[room] = nil }
    }

    func broadcast(_ room: String, from id: Int, _ text: String) {
        lock.lock()
        let members = rooms[room] ?? [:]
        lock.unlock()
        for (member, c) in members where member != id { c.yield(text) }
    }
}

let rooms = Rooms()
let port = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 9233

let app = Application(
    router: Router(),
    server: .http1WebSocketUpgrade { request, _, _ in
        let room = URLComponents(string: request.path ?? "")?.queryItems?.first { $0.name == "session" }?.value ?? "default"
        return .upgrade([:]) { inbound, outbound, _ in
            let (stream, continuation) = AsyncStream<String>.makeStream()
            let id = rooms.join(room, continuation)
            defer { rooms.leave(room, id); continuation.finish() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await text in stream { try await outbound.write(.text(text)) }
                }
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let s) = message,
                          let obj = try? JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any] else { continue }
                    if obj["type"] as? String == "join" {
                        continuation.yield("{\"type\":\"joined\",\"you\":{\"id\":\"m\(id)\"}}")
                        continue
                    }
                    // Tagged at the end, as Node's `m.from = id; JSON.stringify(m)` does (key order kept).
                    rooms.broadcast(room, from: id, String(s.dropLast()) + ",\"from\":\"m\(id)\"}")
                }
                continuation.finish()
                group.cancelAll()
            }
        }
    },
    configuration: .init(address: .hostname("127.0.0.1", port: port))
)
try await app.runService()
