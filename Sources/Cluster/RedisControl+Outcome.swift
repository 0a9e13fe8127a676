import Hub

/// Who decides a `run_control` asked of another node when its answer may not be heard (`chub:ctl`
/// publications are heard at most once): the first outcome written to `chub:ctl:outcome:ID` (`SET NX`,
/// read back in the same command with `GET`, a 10 s TTL). The asked node writes `sent` before it hands
/// the control on, and hands it on only if its write came first; the asking node, when the answer did
/// not come within the timeout, writes `refused` and refuses only if its write came first, else answers
/// `run_control_sent`. So the member's answer is the outcome even when the answer publication is lost.
extension RedisControl {
    static let outcomeMillis = 10_000
    static func outcomeKey(_ request: String) -> String { "chub:ctl:outcome:" + request }

    func settle(
        request: String, outcome: String, executor: Executor, done: @escaping (Result<String?, StoreFailure>) -> Void
    ) {
        guard let link = storage.link(executor) else {
            return done(.failure(StoreFailure("redis: not called from a loop")))
        }
        let command: [[UInt8]] = .command(
            "SET", Self.outcomeKey(request), outcome, "NX", "PX", Self.outcomeMillis, "GET")
        link.commands.send(command) { reply in
            switch reply {
            case .null: done(.success(nil))
            case .string(let b): done(.success(String(decoding: b, as: UTF8.self)))
            default: done(.failure(StoreFailure("redis: \(reply.errorMessage ?? "unexpected reply")")))
            }
        }
    }
}
