import Hub

/// libFuzzer entry point for the JWT verifier: arbitrary tokens must be refused cleanly; a token the
/// fuzzer cannot sign (it does not know the key) must never verify.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzToken(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let verifier = TokenVerifier(keys: ["default": Array("fuzz-secret-not-in-corpus".utf8)])
    if case .success = verifier.verify(text, now: 1_000) {
        fatalError("forged token accepted: \(text)")
    }
    return 0
}
