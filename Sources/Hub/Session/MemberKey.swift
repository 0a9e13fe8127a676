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

    /// Equal keys are the same bytes (not `String`'s `==`, under which "é" and "e" with a combining accent
    /// are equal): the key is compared as bytes across nodes and in the store, and two texts are two members.
    public static func == (a: MemberKey, b: MemberKey) -> Bool {
        a.hash0 == b.hash0 && a.hash1 == b.hash1 && a.head.utf8.count == b.head.utf8.count
            && a.head.utf8.elementsEqual(b.head.utf8)
    }

    /// The key's text, as `Admission` made it. Made for every stored event the member sends (issue 30: durable
    /// chat), so it is written straight into the string's own storage: through an array (a bounds-checked
    /// append a character and one more allocation) it cost ~1,700 instructions a message.
    public var text: String {
        guard hash0 != 0 || hash1 != 0 else { return head }
        var head = head
        let (h0, h1) = (hash0, hash1)
        return head.withUTF8 { id in
            String(unsafeUninitializedCapacity: id.count + 25) { out in
                out[0] = UInt8(ascii: "c")
                out[1] = UInt8(ascii: ":")
                _ = UnsafeMutableBufferPointer(rebasing: out[2..<(2 + id.count)]).initialize(from: id)
                out[2 + id.count] = UInt8(ascii: ":")
                // 128 bits, 6 at a time from the top: 21 whole characters and one with the last 2 bits (and four
                // zero bits), as `Base64.encode(_, urlSafe: true)` writes 16 bytes without padding.
                let alphabet = Self.alphabet.utf8Start
                var hi = h0, lo = h1, at = 3 + id.count
                for _ in 0..<22 {
                    out[at] = alphabet[Int(hi >> 58)]
                    at += 1
                    hi = hi << 6 | lo >> 58
                    lo <<= 6
                }
                return at
            }
        }
    }

    /// The guest's client id and 128 bits when the key is held compactly, nil when it is kept as text (for
    /// `FuzzCompactIds`, which checks them against the text).
    var guestParts: (clientId: String, hash0: UInt64, hash1: UInt64)? {
        hash0 != 0 || hash1 != 0 ? (head, hash0, hash1) : nil
    }

    private static let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

    private static func value(_ c: UInt8) -> UInt64? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return UInt64(c - 65)
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return UInt64(c - 97 + 26)
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt64(c - 48 + 52)
        case UInt8(ascii: "-"): return 62
        case UInt8(ascii: "_"): return 63
        default: return nil
        }
    }

    /// The client id and the 128 bits of a guest key, if `key` is one and they give back the same text
    /// (canonical base64url: the last character's unused 4 bits are zero).
    private static func compactGuest(_ key: String) -> (String, UInt64, UInt64)? {
        let utf8 = key.utf8
        guard utf8.count > 25, utf8.first == UInt8(ascii: "c"),
            utf8[utf8.index(after: utf8.startIndex)] == UInt8(ascii: ":")
        else { return nil }
        let tailStart = utf8.index(utf8.endIndex, offsetBy: -22)
        let colon = utf8.index(before: tailStart)
        guard utf8[colon] == UInt8(ascii: ":") else { return nil }
        var h0: UInt64 = 0, h1: UInt64 = 0, k = 0
        for c in utf8[tailStart...] {
            guard let v = value(c) else { return nil }
            let bit = 6 * k
            if bit + 6 <= 64 {
                h0 |= v << UInt64(58 - bit)
            } else if bit < 64 {
                h0 |= v >> UInt64(bit + 6 - 64)
                h1 |= v << UInt64(128 - bit - 6)
            } else if bit + 6 <= 128 {
                h1 |= v << UInt64(122 - bit)
            } else {
                guard v & 15 == 0 else { return nil }
                h1 |= v >> UInt64(bit + 6 - 128)
            }
            k += 1
        }
        guard h0 != 0 || h1 != 0 else { return nil }
        return (String(key[utf8.index(utf8.startIndex, offsetBy: 2)..<colon]), h0, h1)
    }
}
