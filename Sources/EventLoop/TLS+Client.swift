import CEV
import COpenSSL
#if canImport(Glibc)
    import Glibc
#endif

/// What a client of another service (Redis over `rediss://`) needs beyond a verifying context: a
/// certificate of its own for servers that ask for one (mutual TLS), and sessions on blocking sockets
/// for worker threads.
extension TLSContext {
    /// Presents `certificate` (a PEM chain) with `key` to servers that ask for a client certificate.
    public func useClientCertificate(_ certificate: String, key: String) throws {
        guard access(certificate, R_OK) == 0 else {
            throw Error(description: "cannot read the certificate \(certificate): \(String(cString: strerror(errno)))")
        }
        guard SSL_CTX_use_certificate_chain_file(ctx, certificate) == 1 else {
            throw Error(description: "cannot load the certificate \(certificate): \(Self.openSSLErrors())")
        }
        guard access(key, R_OK) == 0 else {
            throw Error(description: "cannot read the key \(key): \(String(cString: strerror(errno)))")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 else {
            let errors = Self.openSSLErrors()
            if errors.contains("key values mismatch") {
                throw Error(description: "the key \(key) does not match the certificate \(certificate)")
            }
            throw Error(description: "cannot load the key \(key): \(errors)")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw Error(description: "the key \(key) does not match the certificate \(certificate)")
        }
    }

    /// A client TLS session (`SSL*`) on a connected socket, checked against `serverName` (a host name or
    /// an IP address) when the context verifies. The caller drives and frees it (`SSL_free`).
    public func clientSession(fd: Int32, serverName: String) -> OpaquePointer? {
        session(fd: fd, serverName: serverName)
    }

    /// The queued OpenSSL errors as text (then cleared).
    public static func takeErrors() -> String { openSSLErrors() }
}

extension Socket {
    /// Starts reading without joining the loop's table of streams: a link the process opened itself (to
    /// Redis) is not a client connection, so shutdown does not close it with the clients and metrics do
    /// not count it. Its owner closes it.
    public func startUnlisted() {
        startReading()
    }
}

extension Socket {
    /// Why the peer's certificate was refused, when it was (a TLS client's handshake).
    public var tlsVerifyFailure: String? {
        guard let ssl else { return nil }
        let verdict = SSL_get_verify_result(ssl)
        return verdict == X509_V_OK ? nil : String(cString: X509_verify_cert_error_string(verdict))
    }
}
