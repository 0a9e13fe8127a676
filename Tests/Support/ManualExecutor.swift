import Foundation
import Hub

/// Runs posted work when the test says so (a loop whose iterations the test controls). The store's
/// writer thread posts to it while the test thread runs it: the queue is locked.
public final class ManualExecutor: Executor, @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [() -> Void] = []
    public init() {}
    public var queue: [() -> Void] { lock.lock(); defer { lock.unlock() }; return pending }
    public func execute(_ work: @escaping () -> Void) { lock.lock(); pending.append(work); lock.unlock() }
    public func runAll() {
        while true {
            lock.lock()
            guard !pending.isEmpty else { lock.unlock(); return }
            let w = pending.removeFirst()
            lock.unlock()
            w()
        }
    }
}
