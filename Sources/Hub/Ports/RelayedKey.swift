/// A relayed item's coalescing key as it arrived: a range of the publication's bytes (the array is
/// shared, not copied), made a `String` only when read. A key is read only for a recipient that is
/// behind, so on the receiving nodes of cross-node fan-out most keys are never made at all (making
/// one cost a String per relayed item per node).
public struct RelayedKey {
    private let bytes: [UInt8]
    private let range: Range<Int>

    /// `range` must lie within `bytes`.
    public init(_ bytes: [UInt8], _ range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count)
        self.bytes = bytes
        self.range = range
    }

    public init(_ key: String) {
        bytes = Array(key.utf8)
        range = 0..<bytes.count
    }

    /// No key: the item is dropped, not coalesced, for a recipient that is behind.
    public var isEmpty: Bool { range.isEmpty }

    public var string: String {
        bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[range]), as: UTF8.self) }
    }
}
