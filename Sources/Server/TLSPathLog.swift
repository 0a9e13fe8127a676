import EventLoop
import Logging

/// Says in the log which TLS record path the hub's sessions use (`TLSPath`): once at start whether the
/// kernel offers kernel TLS, then once per path as the first session that takes it finishes its handshake.
enum TLSPathLog {
    static func reporter(_ log: Logger) -> @Sendable (TLSPath) -> Void {
        let offered = TLSPath.kernelOffersTLS
        log.info(
            offered
                ? "TLS: the kernel offers kernel TLS; sessions hand their records to it where OpenSSL can"
                : "TLS: the kernel offers no kernel TLS (no tls ULP): OpenSSL encrypts in user space",
            metadata: ["ktls_offered": .stringConvertible(offered)])
        return { path in
            log.info(
                "TLS path in use: \(path)",
                metadata: [
                    "ktls_send": .stringConvertible(path.kernelSend),
                    "ktls_receive": .stringConvertible(path.kernelReceive),
                ])
        }
    }
}
