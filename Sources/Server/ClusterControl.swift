import EventLoop
import Foundation
import Hub

/// Loop 0's side of the control between nodes (`SharedControl`, a cluster only): `run_control` reaches
/// the run's publisher socket on whichever node holds it, a host's removal reaches every node holding
/// the member, and run reads wait until this node has heard every run event appended before them.
///
/// `run_control`: the run's state is checked on this node's copy once it has caught up (the same
/// refusals as on one node); the registry names the node whose publisher socket published last; that
/// node is asked on `chub:ctl` and answers whether it handed the control on. A node that does not answer
/// within `replyTimeout` (it died; its record expires by itself) counts as no publisher.
final class ClusterControl {
    unowned let context: LoopContext
    let control: SharedControl
    unowned let runs: RunHub
    /// How long a node asked to hand on a control may take to answer, and a barrier to be heard.
    static let replyTimeout = 1.0
    static let barrierTimeout = 2.0
    private var pending: [String: (timer: Loop.Timer, done: (MessageError?) -> Void)] = [:]
    private var requests = 0
    private var keepTimer: Loop.Timer?

    init(context: LoopContext, control: SharedControl, runs: RunHub) {
        self.context = context
        self.control = control
        self.runs = runs
        control.followControls(executor: context.executor) { [unowned self] payload in self.heard(payload) }
        let every = RedisControlTiming.keepEvery
        keepTimer = Loop.Timer(loop: context.loop, after: every, repeat: every) { [unowned self] in
            let held = runs.board.publishedRuns
            if !held.isEmpty { control.keepPublishers(held, executor: context.executor) }
        }
        keepTimer?.unref()
    }

    // MARK: Publisher registry

    func publisherSeen(run: String) { control.publisherHere(run: run, executor: context.executor) }
    func publishersGone(_ gone: [String]) {
        for run in gone { control.publisherGone(run: run, executor: context.executor) }
    }

    // MARK: Barrier

    /// Runs `then` once this node's copy of the runs has every event appended before the call (nil), or
    /// with a failure (Redis unreachable).
    func caughtUp(_ then: @escaping (StoreFailure?) -> Void) {
        control.caughtUp(executor: context.executor, timeout: Self.barrierTimeout, done: then)
    }

    // MARK: run_control

    /// A session member's run control, decided as on one node wherever the publisher socket is.
    func runControl(
        _ run: String, action: RunControlAction, session: String, by: (id: String, name: String),
        reply: @escaping (MessageError?) -> Void
    ) {
        caughtUp { [self] _ in
            // Without Redis the copy decides, and only a publisher socket here can be reached.
            if let refusal = runs.board.controlRefusal(run, action: action, session: session) { return reply(refusal) }
            control.publisherNode(run: run, executor: context.executor) { [self] found in
                switch found {
                case .failure(let f):
                    if deliverHere(run, action, session, by) { return reply(nil) }
                    reply(MessageError("storage_unavailable", "the run's publisher cannot be looked up: \(f.message)"))
                case .success(let node?) where node != control.nodeID:
                    ask(node, run, action, session, by, reply)
                case .success:
                    reply(deliverHere(run, action, session, by) ? nil : RunBoard.noPublisher(run))
                }
            }
        }
    }

    private func deliverHere(
        _ run: String, _ action: RunControlAction, _ session: String, _ by: (id: String, name: String)
    ) -> Bool {
        runs.board.deliverControl(run, action: action, session: session, by: by)
    }

    private func ask(
        _ node: String, _ run: String, _ action: RunControlAction, _ session: String, _ by: (id: String, name: String),
        _ reply: @escaping (MessageError?) -> Void
    ) {
        requests += 1
        let id = "\(control.nodeID).\(requests)"
        // No answer in time (the node died, is paused, or cannot hear): a publisher here is used, else
        // none; the request expires then, so the node does not hand it on if it hears it later.
        // Whether the node handed it on is settled in Redis (`SharedControl.settle`): its answer may be lost.
        let timer = Loop.Timer(loop: context.loop, after: Self.replyTimeout) { [weak self] in
            guard let self, self.pending[id] != nil else { return }
            self.control.settle(request: id, outcome: "refused", executor: self.context.executor) { [weak self] r in
                guard let self, let p = self.pending.removeValue(forKey: id) else { return }
                if case .success("sent"?) = r { return p.done(nil) }
                p.done(self.deliverHere(run, action, session, by) ? nil : ControlExpiry.unanswered(run, node: node))
            }
        }
        pending[id] = (
            timer,
            { [weak self] error in
                guard let self else { return }
                // The other node's socket went meanwhile: one here that published since still counts.
                if error?.code == "no_publisher", self.deliverHere(run, action, session, by) { return reply(nil) }
                reply(error)
            }
        )
        let message = ControlMessage.runControl(
            id: id, from: control.nodeID, to: node, run: run, action: action, session: session, byID: by.id,
            byName: by.name, expires: ControlExpiry.deadline(after: Self.replyTimeout))
        control.sendControl(message.encode(), executor: context.executor) { [weak self] failure in
            guard let failure, let self, let p = self.pending.removeValue(forKey: id) else { return }
            p.timer.cancel()
            if self.deliverHere(run, action, session, by) { return reply(nil) }
            p.done(MessageError("storage_unavailable", "the run's publisher cannot be reached: \(failure.message)"))
        }
    }

    // MARK: Heard

    private func heard(_ payload: [UInt8]) {
        guard let message = ControlMessage.decode(payload) else { return }
        let me = control.nodeID
        switch message {
        case .runControl(let id, let from, let to, let run, let action, let session, let byID, let byName, let expires):
            // Heard after the asking node answered its member (this node was paused, its link slow): dropped.
            guard to == me, RunBoard.isValidId(run), !ControlExpiry.expired(expires) else { return }
            let answer = { [self] (handed: Bool) in
                let reply = ControlMessage.runControlReply(
                    id: id, to: from, error: handed ? nil : RunBoard.noPublisher(run))
                control.sendControl(reply.encode(), executor: context.executor) { _ in }
            }
            guard runs.board.publishedRuns.contains(run) else { return answer(false) }
            // Handed on only if `sent` is recorded before the asker's `refused` (its timeout).
            control.settle(request: id, outcome: "sent", executor: context.executor) { [weak self] r in
                guard let self, case .success(nil) = r else { return }
                answer(self.deliverHere(run, action, session, (byID, byName)))
            }
        case .runControlReply(let id, let to, let error):
            guard to == me, let p = pending.removeValue(forKey: id) else { return }
            p.timer.cancel()
            p.done(error)
        case .remove(let session, let member, let from):
            guard from != me, let code = SessionCode.normalize(session) else { return }
            let all = context.server.contexts
            let owner = all[SessionCode.owner(of: code, loops: all.count)]
            owner.loop.post { owner.hub?.sessions[code]?.removedElsewhere(id: member) }
        }
    }
}

/// The registry's renewal period (the records live `RedisControl.recordMillis`, 30 s).
enum RedisControlTiming {
    static let keepEvery = 10.0
}
