import COpenSSL
#if canImport(Glibc)
    import Glibc
#endif

/// A TLS configuration (OpenSSL `SSL_CTX`): server (certificate chain and key) or client.
/// TLS 1.2 minimum, AES-128-GCM first (then AES-256-GCM, ChaCha20), renegotiation refused, ALPN `http/1.1`,
/// kernel TLS where the kernel offers it (`TLSPath`), and
/// record buffers kept while a session is busy and freed once it is idle (`TLSBuffers`), so an idle
/// connection does not keep its 32 KiB of them.
public final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    public let isServer: Bool

    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    /// The queued OpenSSL errors as text (then cleared).
    static func openSSLErrors() -> String {
        var parts: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buf, buf.count)
            parts.append(String(cString: buf))
        }
        return parts.isEmpty ? "unknown OpenSSL error" : parts.joined(separator: "; ")
    }

    public init(certificate: String, key: String) throws {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw Error(description: "cannot create a TLS context: \(Self.openSSLErrors())")
        }
        self.ctx = ctx
        isServer = true
        _ = chub_ssl_ctx_min_tls12(ctx)
        _ = SSL_CTX_set_options(ctx, chub_ssl_server_options())
        _ = chub_ssl_ctx_prefer_aes128(ctx)
        _ = chub_ssl_ctx_set_mode(ctx, chub_ssl_modes())
        chub_ssl_ctx_read_ahead(ctx)
        _ = chub_ssl_ctx_no_session_cache(ctx)
        chub_ssl_ctx_alpn_http11(ctx)
        guard access(certificate, R_OK) == 0 else {
            throw Error(description: "cannot read TLS certificate \(certificate): \(String(cString: strerror(errno)))")
        }
        guard SSL_CTX_use_certificate_chain_file(ctx, certificate) == 1 else {
            throw Error(description: "cannot load TLS certificate \(certificate): \(Self.openSSLErrors())")
        }
        guard access(key, R_OK) == 0 else {
            throw Error(description: "cannot read TLS key \(key): \(String(cString: strerror(errno)))")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 else {
            throw Error(description: "cannot load TLS key \(key): \(Self.openSSLErrors())")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw Error(
                description: "TLS key \(key) does not match certificate \(certificate): \(Self.openSSLErrors())")
        }
        reportPaths()
    }

    /// A client context (the load generator); certificates are not verified (it talks to its own hub).
    public init(client: Void = ()) throws {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw Error(description: "cannot create a TLS context: \(Self.openSSLErrors())")
        }
        self.ctx = ctx
        isServer = false
        _ = chub_ssl_ctx_min_tls12(ctx)
        _ = chub_ssl_ctx_set_mode(ctx, chub_ssl_modes())
        chub_ssl_ctx_read_ahead(ctx)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
    }

    /// A client context that verifies the server: its certificate chain against the system's trust
    /// store (or `caFile`, a PEM bundle), and its name against the host name given to each session.
    public init(verifyingClient caFile: String?) throws {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw Error(description: "cannot create a TLS context: \(Self.openSSLErrors())")
        }
        self.ctx = ctx
        isServer = false
        verifiesHost = true
        _ = chub_ssl_ctx_min_tls12(ctx)
        _ = chub_ssl_ctx_set_mode(ctx, chub_ssl_modes())
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        let loaded = caFile.map { SSL_CTX_load_verify_locations(ctx, $0, nil) } ?? SSL_CTX_set_default_verify_paths(ctx)
        guard loaded == 1 else {
            throw Error(
                description: "cannot load the trusted certificates \(caFile ?? "(system)"): \(Self.openSSLErrors())")
        }
    }

    /// Sessions check that the server's certificate names the host they were opened for.
    private var verifiesHost = false
    /// `TLSPath`: which record paths were reported (one flag per path), and to whom.
    let reported: UnsafeMutablePointer<Int32> = {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: 4)
        p.initialize(repeating: 0, count: 4)
        return p
    }()
    var pathListener: (@Sendable (TLSPath) -> Void)?

    deinit {
        SSL_CTX_free(ctx)
        reported.deallocate()
    }

    /// A TLS session on a connected, non-blocking socket.
    func session(fd: Int32, serverName: String? = nil) -> OpaquePointer? {
        guard let ssl = SSL_new(ctx) else { return nil }
        if let method = Self.recvSendBIO, let bio = chub_sbio_new(method, fd) {
            SSL_set_bio(ssl, bio, bio)
        } else {
            SSL_set_fd(ssl, fd)
        }
        if isServer {
            SSL_set_accept_state(ssl)
        } else {
            if let serverName {
                _ = chub_ssl_set_tlsext_host_name(ssl, serverName)
                if verifiesHost { _ = SSL_set1_host(ssl, serverName) }
            }
            SSL_set_connect_state(ssl)
        }
        return ssl
    }
}
