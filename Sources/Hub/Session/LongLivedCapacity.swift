/// How a session's long-lived arrays grow: the members and the resume window's entries.
///
/// Doubling from one element frees a block at every step (for ten members: blocks of 48, 64 and
/// 96 bytes, for ten window entries 64, 80, 112 and 176). Every session grows its arrays at about the
/// same time while members join, with other members' objects allocated in between, so each freed block
/// stays a hole in the heap: about two per session in each of three sizes, ~85 B per member once
/// 19,500 members are joined. Reserving at the first element what a session usually holds leaves none.
enum LongLivedCapacity {
    /// Entries a resume window reserves with its first frame (a session's joins and first messages).
    static let firstWindowEntries = 16
    /// Members a session reserves with its first member: its participant limit, at most 16.
    static let firstMembers = 16

    /// Below this many bytes a window's storage grows by one frame at a time, above by a quarter.
    static let windowSmallBytes = 4096

    /// The capacity for a resume window's bytes, `count` held, that is to take a frame of `adding`
    /// bytes and has no room. While small: what it needs plus one more frame of that size (at least 64
    /// bytes), so ten joins of ~190 bytes fit in 1,900 bytes with no slack (a quarter's growth from 256,
    /// with the block at each step freed, reached 2,316); from 4 KB a quarter more, so a window of many
    /// small frames is copied a bounded number of times.
    @inline(__always)
    static func windowBytes(holding count: Int, adding: Int) -> Int {
        let needed = count + adding
        return needed + (count < windowSmallBytes ? max(adding, 64) : count / 4)
    }

    /// The capacity to reserve for an array of `count` elements, full, that is to take one more:
    /// `first` (at most `limit`) when it is empty, then double.
    @inline(__always)
    static func next(count: Int, first: Int, limit: Int) -> Int {
        count == 0 ? max(1, min(first, limit)) : count * 2
    }
}
