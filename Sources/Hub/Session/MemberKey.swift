import Bytes

/// A member's stable identity (`Admission`'s key), held compactly (issue 30: memory per member).
///
/// A guest's key, `c:<client_id>:<22 characters of base64url>` (the first 128 bits of SHA-256 of its
/// resume secret), is 40-odd characters: as a `String` a heap block of 80 bytes in every joined guest.
/// Here it is the client id (inline in the `String` up to 15 bytes) and the 128 bits as two words; the
/// text, which is what is stored with each event the member sends and compared across nodes, is made
/// when asked (`text`) and is the same characters. Any other key (`sub:…`, `anon:…`, or a guest key
/// that does not read back to the same text) is kept as it came.
public struct MemberKey: Equatable, Sendable {
    /// The whole key, or (compact) the guest's client id.
    private let head: String
    /// The hash's 128 bits (both 0: `head` is the whole key; a hash of all zeros stays text).
    private let hash0: UInt64
    private let hash1: UInt64

    public init(_ key: String) {
        if let (clientId, h0, h1) = Self.compactGuest(key) {
            head = clientId; hash0 = h0; hash1 = h1
        } else {
            head = key; hash0 = 0; hash1 = 0
        }
    }

    /// The key's text, as `Admission` made it.
    public var text: String {
        guard hash0 != 0 || hash1 != 0 else { return head }
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            bytes[i] = UInt8(truncatingIfNeeded: hash0 >> (56 - 8 * UInt64(i)))
            bytes[8 + i] = UInt8(truncatingIfNeeded: hash1 >> (56 - 8 * UInt64(i)))
        }
        return "c:" + head + ":" + Base64.encode(bytes, urlSafe: true)
    }

    /// The client id and the 128 bits of a guest key, if `key` is one and they give back the same text.
    private static func compactGuest(_ key: String) -> (String, UInt64, UInt64)? {
        let utf8 = key.utf8
        guard utf8.count > 25, key.hasPrefix("c:") else { return nil }
        let tailStart = utf8.index(utf8.endIndex, offsetBy: -22)
        let colon = utf8.index(before: tailStart)
        guard utf8[colon] == UInt8(ascii: ":") else { return nil }
        let tail = String(key[tailStart...])
        guard let bytes = Base64.decode(tail, urlSafe: true), bytes.count == 16,
            Base64.encode(bytes, urlSafe: true) == tail
        else { return nil }
        let clientId = String(key[utf8.index(utf8.startIndex, offsetBy: 2)..<colon])
        var h0: UInt64 = 0, h1: UInt64 = 0
        for i in 0..<8 {
            h0 = h0 << 8 | UInt64(bytes[i])
            h1 = h1 << 8 | UInt64(bytes[8 + i])
        }
        guard h0 != 0 || h1 != 0 else { return nil }
        let compact = MemberKey(head: clientId, hash0: h0, hash1: h1)
        return compact.text == key ? (clientId, h0, h1) : nil
    }

    private init(head: String, hash0: UInt64, hash1: UInt64) {
        self.head = head; self.hash0 = hash0; self.hash1 = hash1
    }
}
