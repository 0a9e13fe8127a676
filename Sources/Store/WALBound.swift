#if canImport(Glibc)
    import Glibc
#endif

/// How large the WAL may grow while the writer never idles (issue 30: durable chat p99).
///
/// A background checkpoint (`Checkpointer`) copies WAL frames into the database while the writer keeps
/// appending, so under steady load it never reaches the WAL's end and the WAL cannot start over. The
/// writer then restarts it itself once the WAL passes this bound: a checkpoint on its own connection,
/// with two fsyncs (the WAL's, then the database's), during which no commit can happen. That stall
/// lasts as long as the disk takes for two fsyncs, whatever is left to copy: 40-57 ms measured
/// (`strace -T`) on a disk shared with other builds.
///
/// At 10,000 chats/s over 500 sessions a commit writes about two pages per event, so the old bound
/// (256 MiB) was passed every ~3 s, and each stall held back ~500 messages: p99 37-55 ms in the seconds
/// with a stall, 6-10 ms in the others, which made the run's p99 the stall's. At 1 GiB it comes four
/// times as rarely (every ~11 s at 10,000/s, ~8 s at 25,000/s), and what it holds back stays under 1%
/// of the messages at any steady rate, so it no longer sets the p99 (it still shows in the p99.9).
///
/// Durability is untouched: every commit is in the WAL (with `full`, synced) before its ack, whatever
/// the WAL's size. Only the disk space a long burst takes grows: the file keeps its largest size until
/// the writer is idle, and then, if it is over `walKeptBytes`, it is truncated (`restartWAL(idle:)`).
extension SQLiteStore {
    /// The bound in bytes, and in pages (4 KiB: the page size of every database the hub made).
    static let walBoundBytes = 1 << 30
    static let walBoundPages = walBoundBytes / 4096

    /// The WAL file's size on disk (writer thread, when idle).
    var walFileBytes: Int {
        var st = stat()
        return stat(path + "-wal", &st) == 0 ? Int(st.st_size) : 0
    }
}
