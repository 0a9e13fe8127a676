import CEV
#if canImport(Glibc)
    import Glibc
#endif

extension Socket {
    /// Writes the first `n` queued entries with one system call and returns what `writev` would: bytes
    /// written, or -1 with `errno` set. One entry (a delivery at fixed load: one frame per recipient per
    /// iteration) goes out with `send`, several with `sendmsg`: both reach the socket directly, where
    /// `writev` first goes through the file layer (`fdget_pos`, `vfs_writev`: ~6% of the hub's CPU at
    /// fixed load under `perf`, against ~3% for uWebSockets' `send`). `MSG_NOSIGNAL`: a peer that went
    /// away gives `EPIPE`, never a signal (SIGPIPE is ignored too: `ignoreSIGPIPE`). Both are made as plain
    /// system calls (`chub_send`, `chub_sendmsg`: no cancellation-point wrapper around each).
    @inline(__always)
    func sendQueued(_ n: Int) -> Int {
        let flags = Int32(MSG_NOSIGNAL)
        if n == 1 {
            let (base, count) = out.unwritten(0)
            return chub_send(fd, base, count, flags)
        }
        return withUnsafeTemporaryAllocation(of: iovec.self, capacity: n) { iov in
            for i in 0..<n {
                let (base, count) = out.unwritten(i)
                iov[i] = iovec(iov_base: base, iov_len: count)
            }
            var msg = msghdr()
            msg.msg_iov = iov.baseAddress
            msg.msg_iovlen = n
            return chub_sendmsg(fd, &msg, flags)
        }
    }
}
