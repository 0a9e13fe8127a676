import Hub
import WebSocket

/// libFuzzer entry point for what webhooks parse from outside: a receiver's response head, an
/// endpoint's URL (from the API), and the bodies of committed events turned into webhooks. The first
/// byte picks which. Nothing may crash; a parsed URL may hold no byte that could split a request; a
/// parsed status is a real one; a webhook body is a JSON object.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWebhook(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    switch data[0] % 3 {
    case 0:
        if let r = WebhookResponse.parse(bytes) {
            precondition(r.status >= 100 && r.status <= 999)
            if let after = r.retryAfter { precondition(after >= 0) }
        }
    case 1:
        if let url = WebhookURL(String(decoding: bytes, as: UTF8.self)) {
            precondition(url.port >= 1 && url.port <= 65535)
            for b in (url.target + url.hostHeader).utf8 {
                precondition(b > 0x20 && b != 0x7F, "a byte that splits requests")
            }
            if let literal = AddressPolicy.literal(url.host) { _ = AddressPolicy.isPrivate(literal) }
        }
    default:
        let types = ["chat", "presence", "event", "run_event", "run"]
        let type = types[Int(bytes.first ?? 0) % types.count]
        let stream = type == "run_event" ? "run:r1" : "ABCDEFGH"
        let event = DurableEvent(
            session: stream, type: type, member: nil, clientId: nil, body: Array(bytes.dropFirst()))
        for m in Webhook.messages(for: event, committed: Committed(seq: 1, ts: 1_700_000_000_000, duplicate: false)) {
            _ = try? JSONReader.readObject(m.body)
            precondition(m.id == "\(stream):1")
        }
    }
    return 0
}
