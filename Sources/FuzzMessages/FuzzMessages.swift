import Hub

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
    checkJSONAgreement(bytes, maxDepth: 8)
    checkJSONAgreement(bytes, maxDepth: 2)
    if let obj = try? JSONReader.readObject(bytes, maxDepth: 8) {
        _ = try? RunEvent.parse(obj)
        for (_, v) in obj.members { _ = v.string; _ = v.double; _ = v.object }
    }
    return 0
}
