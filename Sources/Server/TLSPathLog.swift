import EventLoop
import Logging

/// Says in the log which TLS record path the hub's sessions use (`TLSPath`), once per path, as the first
/// session that takes it finishes its handshake, with whether the kernel offers kernel TLS at all.
enum TLSPathLog {
    static func reporter(_ log: Logger) -> @Sendable (TLSPath) -> Void {
        let offered = TLSPath.kernelOffersTLS
        return { path in
            let why =
                offered
                ? (path.kernelSend ? "" : " (the kernel offers kernel TLS, not for this session's cipher or version)")
                : " (the kernel offers no kernel TLS: no tls ULP in /proc/sys/net/ipv4/tcp_available_ulp)"
            log.info(
                "TLS path in use: \(path)\(why)",
                metadata: [
                    "ktls_offered": .stringConvertible(offered),
                    "ktls_send": .stringConvertible(path.kernelSend),
                    "ktls_receive": .stringConvertible(path.kernelReceive),
                    "record_io": .string(TLSSocketIO.inUse.rawValue),
                ])
        }
    }
}
