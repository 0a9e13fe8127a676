import CEV
import COpenSSL
#if canImport(Glibc)
    import Glibc
#endif

/// The TLS paths of a socket: reading decrypts as many records as fit, writing gathers queued chunks
/// into record-sized `SSL_write`s.
extension Socket {
    /// Why a TLS call returned `n <= 0`. One that only stopped for the socket (the common case: a read
    /// that found no more records) is told from the session and its BIO (`chub_ssl_blocked`), without the
    /// thread's error queue, so the queue is not looked at before every call (`ERR_peek_error`, ~200
    /// instructions, twice per echo round): an error some other OpenSSL call on this thread left there
    /// cannot make a blocked call read as a failure. Anything else ends the session (closed or broken
    /// alike): `SSL_get_error` says which, and the queue is emptied after it.
    @inline(__always) func tlsError(_ ssl: OpaquePointer, _ n: Int32) -> Int32 {
        let blocked = chub_ssl_blocked(ssl)
        if blocked != 0 { return blocked }
        let e = SSL_get_error(ssl, n)
        ERR_clear_error()
        return e
    }

    /// Decrypts from the TLS session: as many records as fit in `buf` (-2: the session needs more
    /// bytes, or the socket writable, before there is data; -1: broken; 0: closed).
    func readTLS(_ ssl: OpaquePointer, _ buf: UnsafeMutableRawBufferPointer) -> Int {
        if !tlsHoldsBuffers { loop.tlsBuffers.hold(self) }
        var total = 0
        while buf.count - total >= 16 * 1024 + 256 {
            let n = SSL_read(ssl, buf.baseAddress! + total, Int32(buf.count - total))
            if n > 0 {
                total += Int(n)
                // With read-ahead, one read() brought in every record the socket had. Another SSL_read on
                // an empty buffer would only be a read() answering EAGAIN; what may still be in the
                // socket comes as another (level-triggered) event.
                if SSL_has_pending(ssl) == 0 { return total }
                continue
            }
            switch tlsError(ssl, n) {
            case SSL_ERROR_WANT_READ:
                return total > 0 ? total : -2
            case SSL_ERROR_WANT_WRITE:
                tlsWantsWrite = true
                waitToWrite()
                return total > 0 ? total : -2
            case SSL_ERROR_ZERO_RETURN:
                return total > 0 ? total : 0
            default:
                // Not TLS (plain HTTP to the TLS port), a failed handshake, or a broken record.
                return total > 0 ? total : -1
            }
        }
        // Out of room with records still buffered in OpenSSL: the socket will not report them again.
        if SSL_has_pending(ssl) == 1 && isReading && !isClosed {
            ev_feed_event(loop.raw, ioWatcher, Int32(EV_READ))
        }
        return total
    }

    /// The TLS write path: queued chunks are gathered into record-sized writes (a TLS record per
    /// `SSL_write`, so many small frames do not become many small records).
    func flushTLS() {
        guard let ssl else { return }
        if !tlsHoldsBuffers { loop.tlsBuffers.hold(self) }
        if tlsWantsWrite {
            // A read was blocked on writability (handshake/record flow): let it go on.
            tlsWantsWrite = false
            handleReadable()
            if isClosed { return }
        }
        let scratch = loop.readBuffer  // not in use between callbacks
        let recordSize = 16 * 1024
        while !out.isEmpty || SSL_in_init(ssl) != 0 {
            var length = 0
            let limit = tlsRetryLength > 0 ? tlsRetryLength : recordSize
            // One chunk that holds the whole record (an echo's or a reply's own chunk, a big broadcast
            // frame) is encrypted where it is; several are gathered into the scratch buffer first.
            var source = UnsafeRawPointer(scratch.baseAddress!)
            if let e = out.first, out.count == 1 || e.chunk.count - e.offset >= limit {
                length = min(e.chunk.count - e.offset, limit)
                source = UnsafeRawPointer(e.chunk.base + e.offset)
            } else {
                for e in out where length < limit {
                    let n = min(e.chunk.count - e.offset, limit - length)
                    (scratch.baseAddress! + length).copyMemory(from: e.chunk.base + e.offset, byteCount: n)
                    length += n
                }
            }
            let written: Int32
            if length == 0 {
                // Nothing to send yet, but a client handshake must start: a zero-length write does it.
                written = SSL_do_handshake(ssl) == 1 ? 0 : -1
                if written == 0 { break }
            } else {
                written = SSL_write(ssl, source, Int32(length))
            }
            if written <= 0 {
                switch tlsError(ssl, written) {
                case SSL_ERROR_WANT_WRITE:
                    tlsRetryLength = length
                    waitToWrite()
                    return
                case SSL_ERROR_WANT_READ:
                    tlsRetryLength = length
                    return  // the read watcher drives it on
                default:
                    out.removeAll(); outBytes = 0
                    peerClosed()
                    return
                }
            }
            tlsRetryLength = 0
            var left = Int(written)
            if left > 0 { lastWriteAt = loop.now }
            loop.bytesWritten.add(left)
            outBytes -= left
            while left > 0, !out.isEmpty {
                let remaining = out[0].chunk.count - out[0].offset
                if left >= remaining { left -= remaining; out.removeFirst() } else { out[0].offset += left; left = 0 }
            }
        }
        if out.isEmpty {
            drained()
            stopWaitingToWrite()
            if isClosing && !lingering { beginLinger() } else if !isClosing { outputDrained() }
        }
    }
}
