import COpenSSL
import EventLoop

/// TLS to Redis (`rediss://`): the server's certificate is checked against the system's CAs or
/// `caFile`, and its name against the URL's host (a name, or an IP address in the certificate's
/// subjectAltName); `certificate` and `key` are presented to a Redis that asks for client certificates
/// (`tls-auth-clients yes`). There is no way to skip the checks.
public struct RedisTLS: Equatable, Sendable {
    public var caFile: String?
    public var certificate: String?
    public var key: String?

    public init(caFile: String? = nil, certificate: String? = nil, key: String? = nil) {
        self.caFile = caFile
        self.certificate = certificate
        self.key = key
    }

    public var isEmpty: Bool { caFile == nil && certificate == nil && key == nil }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// The settings that cannot work with `url`, as a sentence (nil: they can). The URL is never shown
    /// (it may hold a password).
    public func problem(with url: RedisURL) -> String? {
        if !url.tls && !isEmpty {
            return "the Redis TLS settings (--redis-ca, --redis-cert, --redis-key) need a rediss:// URL"
        }
        if (certificate == nil) != (key == nil) {
            return "a Redis client certificate needs both --redis-cert and --redis-key"
        }
        return nil
    }

    /// The client context for `url` (nil for `redis://`): the files are read now, so a setting that
    /// cannot work is refused at start-up.
    func context(for url: RedisURL) throws -> TLSContext? {
        if let problem = problem(with: url) { throw Invalid(description: problem) }
        guard url.tls else { return nil }
        do {
            let context = try TLSContext(verifyingClient: caFile)
            if let certificate, let key { try context.useClientCertificate(certificate, key: key) }
            return context
        } catch {
            throw Invalid(description: "Redis TLS: \(error)")
        }
    }

    /// Why a client handshake or a TLS read failed, in words: the certificate check's own reason when
    /// the server's certificate was refused.
    static func failure(_ ssl: OpaquePointer) -> String {
        let verdict = SSL_get_verify_result(ssl)
        if verdict != X509_V_OK {
            let why = String(cString: X509_verify_cert_error_string(verdict))
            return "the Redis server's certificate was refused (\(why))"
        }
        let errors = TLSContext.takeErrors()
        if errors.contains("certificate required") {
            return "Redis asks for a client certificate (give --redis-cert and --redis-key): \(errors)"
        }
        return errors
    }
}
