import COpenSSL
#if canImport(Glibc)
    import Glibc
#endif

/// Which record layer a TLS session uses once its handshake is done: kernel TLS (`SSL_OP_ENABLE_KTLS`:
/// OpenSSL gives the keys to the kernel, which encrypts what `SSL_write` hands it and decrypts before
/// `SSL_read`), or OpenSSL's own records in user space, where the kernel offers no `tls` ULP (see
/// `/proc/sys/net/ipv4/tcp_available_ulp`) or the cipher or protocol version is one it cannot take.
public struct TLSPath: Sendable, Equatable, CustomStringConvertible {
    public let kernelSend: Bool
    public let kernelReceive: Bool

    public var description: String {
        switch (kernelSend, kernelReceive) {
        case (true, true): return "kernel TLS (send and receive)"
        case (true, false): return "kernel TLS for sending, OpenSSL for receiving"
        case (false, true): return "OpenSSL for sending, kernel TLS for receiving"
        case (false, false): return "OpenSSL in user space"
        }
    }

    /// Whether this kernel offers kernel TLS at all (the `tls` upper-layer protocol).
    public static var kernelOffersTLS: Bool {
        guard let f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r") else { return false }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        guard fgets(&line, Int32(line.count), f) != nil else { return false }
        let text = String(cString: line)
        return text.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("tls")
    }
}

extension TLSContext {
    /// Called once per distinct path, from the loop thread of the first session that took it (set
    /// before the context is used). The hub logs it.
    public var onPath: (@Sendable (TLSPath) -> Void)? {
        get { pathListener }
        set { pathListener = newValue }
    }

    /// Has OpenSSL tell this context when a session's handshake is done (server contexts).
    func reportPaths() {
        chub_ssl_ctx_set_owner(ctx, Unmanaged.passUnretained(self).toOpaque())
        SSL_CTX_set_info_callback(ctx) { ssl, event, _ in
            guard let ssl, event & chub_ssl_cb_handshake_done() != 0, let owner = chub_ssl_owner(ssl) else { return }
            Unmanaged<TLSContext>.fromOpaque(owner).takeUnretainedValue().handshakeDone(ssl)
        }
    }

    private func handshakeDone(_ ssl: OpaquePointer) {
        let path = TLSPath(kernelSend: chub_ssl_ktls_send(ssl) == 1, kernelReceive: chub_ssl_ktls_recv(ssl) == 1)
        let index = (path.kernelSend ? 1 : 0) + (path.kernelReceive ? 2 : 0)
        if chub_first_time(reported + index) == 1 { pathListener?(path) }
    }
}
