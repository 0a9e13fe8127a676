import Cluster

/// libFuzzer entry point for the RESP parser (what a node reads from Redis, or from anything answering on
/// Redis's port). Nothing may crash; the replies are the same whether the bytes come at once or in pieces
/// (the first byte picks the piece size); a reply written back as RESP parses to the same reply; an
/// encoded command parses as the array of its arguments.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRESP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let piece = Int(data[0]) + 1

    let whole = parse([bytes])
    var pieces: [[UInt8]] = []
    var at = 0
    while at < bytes.count {
        pieces.append(Array(bytes[at..<min(at + piece, bytes.count)]))
        at += piece
    }
    let split = parse(pieces)
    precondition(whole.replies == split.replies, "replies differ when the bytes come in pieces")
    precondition(whole.failed == split.failed, "a failure differs when the bytes come in pieces")

    // As a subscribed link reads (`nextMessage` first): the same replies, publications included.
    precondition(subscribed(pieces) == (split.replies.map(\.reply), split.failed), "subscribed reading differs")

    for r in whole.replies {
        var out: [UInt8] = []
        write(r.reply, push: r.push, to: &out)
        let again = parse([out])
        precondition(!again.failed && again.replies == [r], "a reply written back does not parse the same")
    }

    // The bytes as command arguments (split at zero bytes).
    let args = bytes.split(separator: 0, omittingEmptySubsequences: false).prefix(64).map { Array($0) }
    let encoded = RESPCommand.encode(args)
    precondition(encoded.count == RESPCommand.size(args))
    let command = parse([encoded])
    precondition(!command.failed && command.replies.map(\.reply) == [.array(args.map { .string($0) })])
    return 0
}

private func subscribed(_ pieces: [[UInt8]]) -> (replies: [RedisReply], failed: Bool) {
    var p = RESPParser()
    var out: [RedisReply] = []
    for piece in pieces {
        p.append(piece)
        do {
            while true {
                if let m = p.nextMessage() {
                    out.append(.array([.string(Array("message".utf8)), .string(m.channel), .string(m.payload)]))
                } else if let r = try p.next() {
                    out.append(r.reply)
                } else {
                    break
                }
            }
        } catch {
            return (out, true)
        }
    }
    return (out, false)
}

private func parse(_ pieces: [[UInt8]]) -> (replies: [RESPParser.Parsed], failed: Bool) {
    var p = RESPParser()
    var out: [RESPParser.Parsed] = []
    for piece in pieces {
        p.append(piece)
        do {
            while let r = try p.next() { out.append(r) }
        } catch {
            return (out, true)
        }
    }
    return (out, false)
}

/// A reply as RESP (errors as blob errors, nulls as RESP3 nulls, a push as `>`).
private func write(_ r: RedisReply, push: Bool = false, to out: inout [UInt8]) {
    func line(_ type: Character, _ text: String) { out += Array("\(type)\(text)\r\n".utf8) }
    switch r {
    case .string(let b):
        line("$", String(b.count))
        out += b + [13, 10]
    case .integer(let n): line(":", String(n))
    case .null: line("_", "")
    case .status(let s): line("+", s)  // a status holds no CR (the parser refuses one)
    case .error(let e):
        line("!", String(e.utf8.count))
        out += Array(e.utf8) + [13, 10]
    case .array(let items):
        line(push ? ">" : "*", String(items.count))
        for i in items { write(i, to: &out) }
    }
}
