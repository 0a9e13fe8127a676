@testable import Hub

/// libFuzzer entry point for the client message decoder (JSON reader + validation): any bytes must
/// parse to a message or fail with a `MessageError`, never crash or hang; and the JSON reader agrees
/// with the reference reader it replaced (`JSONAgreement.swift`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMessages(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        _ = try ClientMessage.parse(bytes)
    } catch is MessageError {
    } catch {
        fatalError("unexpected error type \(error)")
    }
    checkEventScan(bytes, MessageLimits())
    var shallow = MessageLimits()
    shallow.maxJSONDepth = 2
    checkEventScan(bytes, shallow)
    checkJSONAgreement(bytes, maxDepth: 8)
    checkJSONAgreement(bytes, maxDepth: 2)
    checkSkim(bytes, maxDepth: 8)
    checkSkim(bytes, maxDepth: 2)
    if let obj = try? JSONReader.readObject(bytes, maxDepth: 8) {
        _ = try? RunEvent.parse(obj)
        for (_, v) in obj.members { _ = v.string; _ = v.double; _ = v.object }
    }
    return 0
}

/// The app event's one-pass read (`scanEvent`) answers only for what the full path reads as the same event,
/// and `parse` gives what `parseFully` gives, refusals included.
func checkEventScan(_ bytes: [UInt8], _ limits: MessageLimits) {
    let full = Result { try ClientMessage.parseFully(bytes, limits: limits) }
    let both = Result { try ClientMessage.parse(bytes, limits: limits) }
    switch (full, both) {
    case (.failure(let a), .failure(let b)):
        precondition(a as? MessageError == b as? MessageError, "refusals differ: \(a) / \(b)")
    case (.success(let a), .success(let b)): precondition(sameEvent(a, b), "messages differ")
    default: preconditionFailure("one path accepts what the other refuses: \(full) / \(both)")
    }
    guard let scanned = ClientMessage.scanEvent(bytes, limits: limits) else { return }
    guard case .success(let a) = full, case .event = a else { preconditionFailure("the scan took a non-event") }
    precondition(sameEvent(a, scanned), "the scan read another event")
}

private func sameEvent(_ a: ClientMessage, _ b: ClientMessage) -> Bool {
    switch (a, b) {
    case (.event(let x), .event(let y)):
        return x.name == y.name && x.data.elementsEqual(y.data) && x.durable == y.durable && x.id == y.id
    case (.event, _), (_, .event): return false
    default: return true  // the same full path read both
    }
}

/// The parser's validation without errors (the event scan's `skimValue`) accepts what `value` accepts, with
/// the same kind and end, and refuses what it refuses.
func checkSkim(_ bytes: [UInt8], maxDepth: Int) {
    bytes.withUnsafeBufferPointer { buffer in
        var full = JSONReader.Parser(buffer, 0..<buffer.count, maxDepth: maxDepth)
        var skim = full
        let a = try? full.value(depth: 1)
        let b = skim.skimValue(depth: 1)
        precondition(a == b, "the skim reads another kind: \(String(describing: a)) / \(String(describing: b))")
        precondition(a == nil || full.pos == skim.pos, "the skim ends elsewhere")
    }
}
