import Bytes
@testable import Hub

/// libFuzzer entry point for the two compact forms of text a client controls (issue 30: memory per member):
/// `MemberKey`, a member's key read back from the hub's own guest-key text (`c:<client_id>:<22 base64url>`,
/// held as the client id and 128 bits; any other key kept as it came), and `SessionCodeWord`, the URL's
/// session code packed in a word. The first byte picks the mode; the rest is split in two texts at the
/// first 0xFF byte (never part of UTF-8), so that two inputs can be compared. Checked, beyond "no crash":
/// - `MemberKey`: text -> key -> text is the identity, byte for byte; a key is compact exactly when a
///   reference reading (`Base64.decode`, which is strict) finds a canonical guest key with a nonzero hash,
///   and then its client id and 128 bits are the text's; two keys are equal exactly when their texts'
///   bytes are.
/// - `SessionCodeWord`: a code it packs unpacks to the same bytes; it refuses exactly what it cannot hold
///   (empty, over 8 bytes, a zero byte, anything not ASCII); two words are equal exactly when the codes
///   are, and (byte-swapped) order as the codes do; any word reads as text that packs back to it only when
///   it is a word `word` could have made.
/// Debug builds only (`@testable`: `MemberKey.guestParts` is internal).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCompactIds(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let cut = bytes.firstIndex(of: 0xFF)
    let first = Array(bytes[..<(cut ?? bytes.endIndex)])
    let second = cut.map { Array(bytes[($0 + 1)...]) } ?? []
    switch data[0] % 3 {
    case 0:
        let a = String(decoding: first, as: UTF8.self), b = String(decoding: second, as: UTF8.self)
        checkMemberKey(a)
        checkMemberKey(b)
        checkKeyEquality(a, b)
    case 1:
        checkBuiltGuestKey(first)
    default:
        let a = String(decoding: first, as: UTF8.self), b = String(decoding: second, as: UTF8.self)
        checkCodeWord(a)
        checkCodeWord(b)
        checkCodeOrder(a, b)
        if first.count >= 8 {
            checkAnyWord(first.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) })
        }
    }
    return 0
}

// MARK: MemberKey

/// The reference reading of a guest key, by other code than `MemberKey`'s: the client id's bytes and the
/// 16 bytes of the hash when `text` is `c:<id>:<22 characters>`, the id not empty, whose tail is canonical
/// base64url of 16 bytes that are not all zero.
private func referenceGuest(_ text: String) -> (id: [UInt8], hash: [UInt8])? {
    let u = Array(text.utf8)
    guard u.count >= 26, u[0] == UInt8(ascii: "c"), u[1] == UInt8(ascii: ":"), u[u.count - 23] == UInt8(ascii: ":")
    else { return nil }
    let tail = String(decoding: u[(u.count - 22)...], as: UTF8.self)
    guard let hash = Base64.decode(tail, urlSafe: true), hash.count == 16,
        Base64.encode(hash, urlSafe: true) == tail, hash.contains(where: { $0 != 0 })
    else { return nil }
    return (Array(u[2..<(u.count - 23)]), hash)
}

/// The 16 bytes of the two words, the first word's top byte first.
private func hashBytes(_ h0: UInt64, _ h1: UInt64) -> [UInt8] {
    (0..<16).map { i in UInt8(truncatingIfNeeded: (i < 8 ? h0 : h1) >> UInt64(56 - 8 * (i % 8))) }
}

private func checkMemberKey(_ text: String) {
    let key = MemberKey(text)
    precondition(Array(key.text.utf8) == Array(text.utf8), "MemberKey changes the text: \(Array(text.utf8))")
    let parts = key.guestParts, reference = referenceGuest(text)
    precondition((parts == nil) == (reference == nil), "compact \(parts != nil), guest \(reference != nil): \(text)")
    if let parts, let reference {
        precondition(Array(parts.clientId.utf8) == reference.id, "the client id is not the text's: \(text)")
        precondition(hashBytes(parts.hash0, parts.hash1) == reference.hash, "the hash is not the text's: \(text)")
    }
}

private func checkKeyEquality(_ a: String, _ b: String) {
    let same = Array(a.utf8) == Array(b.utf8)
    precondition((MemberKey(a) == MemberKey(b)) == same, "keys equal \(!same): \(Array(a.utf8)) \(Array(b.utf8))")
}

/// A guest key as `Admission.guestKey` writes it, from chosen bits: the first 16 bytes are the hash, the
/// rest the client id. It is compact (with these parts) unless the hash is all zeros or the client id empty
/// (kept as text: `MemberKey` compacts only a non-empty id); a key with one bit of
/// the hash flipped, or another client id, is another key.
private func checkBuiltGuestKey(_ bytes: [UInt8]) {
    guard bytes.count >= 16 else { return }
    let hash = Array(bytes.prefix(16)), id = String(decoding: bytes.dropFirst(16), as: UTF8.self)
    let text = "c:" + id + ":" + Base64.encode(hash, urlSafe: true)
    checkMemberKey(text)
    let key = MemberKey(text)
    if hash.allSatisfy({ $0 == 0 }) || id.isEmpty {
        precondition(key.guestParts == nil, "an all-zero hash or an empty client id made compact: \(text)")
    } else {
        guard let parts = key.guestParts else { preconditionFailure("a guest key kept as text: \(text)") }
        precondition(Array(parts.clientId.utf8) == Array(id.utf8) && hashBytes(parts.hash0, parts.hash1) == hash)
    }
    var flipped = hash
    let bit = Int(bytes[0] ^ bytes[15]) % 128
    flipped[bit / 8] ^= 1 << UInt8(bit % 8)
    let other = "c:" + id + ":" + Base64.encode(flipped, urlSafe: true)
    checkMemberKey(other)
    precondition(MemberKey(other) != key, "one bit of the hash flipped, the same key: \(text)")
    checkKeyEquality(text, "c:" + id + "x:" + Base64.encode(hash, urlSafe: true))
}

// MARK: SessionCodeWord

private func checkCodeWord(_ code: String) {
    let u = Array(code.utf8)
    let fits = !u.isEmpty && u.count <= 8 && u.allSatisfy { $0 != 0 && $0 < 0x80 }
    let word = SessionCodeWord.word(code)
    precondition((word != nil) == fits, "packed \(word != nil), fits \(fits): \(u)")
    if let word {
        precondition(word != 0, "a code packed as 0 (no code): \(u)")
        precondition(Array(SessionCodeWord.text(word).utf8) == u, "a code does not unpack the same: \(u)")
    }
}

private func checkCodeOrder(_ a: String, _ b: String) {
    guard let wa = SessionCodeWord.word(a), let wb = SessionCodeWord.word(b) else { return }
    precondition((wa == wb) == (a == b) && (wa == wb) == (Array(a.utf8) == Array(b.utf8)), "equality: \(a) \(b)")
    precondition((wa.byteSwapped < wb.byteSwapped) == (a < b), "order: \(a) \(b)")
    precondition((wa.byteSwapped < wb.byteSwapped) == a.utf8.lexicographicallyPrecedes(b.utf8), "order: \(a) \(b)")
}

/// Any word reads as some text without a trap; the text packs back to the word exactly when the word is
/// one `word` makes (its bytes from the lowest up nonzero ASCII, then only zeros), else it is refused.
private func checkAnyWord(_ w: UInt64) {
    let text = SessionCodeWord.text(w)
    let count = (64 - w.leadingZeroBitCount + 7) / 8
    let made =
        w != 0
        && (0..<count).allSatisfy { i in
            let b = UInt8(truncatingIfNeeded: w >> UInt64(8 * i))
            return b != 0 && b < 0x80
        }
    let again = SessionCodeWord.word(text)
    precondition(
        made ? again == w : again == nil,
        "word \(w) reads as \(Array(text.utf8)), packs to \(String(describing: again))")
}
