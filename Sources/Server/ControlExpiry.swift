import Foundation
import Hub

/// A `run_control` asked of another node is answered within `ClusterControl.replyTimeout`: handed on
/// (`run_control_sent`) if that node answered so in time, else refused. So that the refusal is the
/// outcome, not a guess, the request carries that deadline and the asked node hands on only what it
/// hears before it (a node paused, or whose link was slow, drops the request it hears too late). The
/// nodes' clocks are assumed to agree to well within the timeout (NTP).
enum ControlExpiry {
    /// Milliseconds since 1970, `seconds` from now.
    static func deadline(after seconds: Double) -> Int {
        Int((Date().timeIntervalSince1970 + seconds) * 1000)
    }

    /// Whether a request's deadline passed (one without a deadline never expires).
    static func expired(_ expires: Int?) -> Bool {
        guard let expires else { return false }
        return Int(Date().timeIntervalSince1970 * 1000) > expires
    }

    /// The refusal when the node named by the run's publisher record did not answer in time.
    static func unanswered(_ run: String, node: String) -> MessageError {
        MessageError(
            "no_publisher",
            "no publisher answered for run \(run): the node holding its publisher socket did not answer within "
                + "\(ClusterControl.replyTimeout) s, and the control will not be handed on")
    }
}
