import COpenSSL
#if canImport(Glibc)
    import Glibc
#endif

/// How a TLS session's records reach its socket, decided once per process at start.
///
/// Where the kernel offers kernel TLS (`TLSPath.kernelOffersTLS`), sessions get OpenSSL's socket BIO
/// (`SSL_set_fd`): `SSL_OP_ENABLE_KTLS` hands the keys to the kernel through it. Elsewhere OpenSSL encrypts in
/// user space, and that BIO's `read` and `write` only add the file layer's cost per record: sessions get
/// a BIO of our own that uses `recv` and `send` with `MSG_NOSIGNAL` (`socket_bio.h`), as plain sockets do.
public enum TLSSocketIO: String, Sendable {
    /// OpenSSL's socket BIO (`read`/`write`), which kernel TLS needs.
    case openSSLSocket = "read/write"
    /// The recv/send BIO (user-space records only).
    case recvSend = "recv/send"

    /// This process's choice.
    public static let inUse: TLSSocketIO = TLSContext.recvSendBIO == nil ? .openSSLSocket : .recvSend
}

extension TLSContext {
    /// The recv/send BIO method, made once; nil where the kernel offers kernel TLS (or OpenSSL could not
    /// make the method: then OpenSSL's socket BIO, which works everywhere).
    /// `COLLABHUB_TLS_SOCKET_IO=openssl` in the environment keeps OpenSSL's socket BIO anyway (to compare
    /// the two, and to test the kernel-TLS kernels' BIO on a kernel without it).
    static let recvSendBIO: OpaquePointer? = {
        if TLSPath.kernelOffersTLS { return nil }
        if let v = getenv("COLLABHUB_TLS_SOCKET_IO"), String(cString: v) == "openssl" { return nil }
        return chub_sbio_method_new()
    }()
}
