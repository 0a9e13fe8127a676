import Bytes
@testable import EventLoop
import Glibc
import XCTest

/// A socket that records what it receives and how it ended.
private final class Recorder: Socket {
    var input: [UInt8] = []
    var drained = 0
    var overLimit = 0
    var closed = false
    override func received(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        input += bytes
        return bytes.count
    }
    override func outputDrained() { drained += 1 }
    override func outputLimitExceeded() { overLimit += 1; close() }
    override func didClose() { closed = true }
}

/// The event-loop layer on a real socket pair: no protocol, only bytes, timers and limits.
final class SocketTests: XCTestCase {
    var fds: [Int32] = [0, 0]
    var loop: Loop!

    override func setUp() {
        ignoreSIGPIPE()
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        loop = Loop(index: 0)
    }

    override func tearDown() { Glibc.close(fds[1]) }

    /// Runs loop iterations until `done` holds (at most ~2 s).
    func spin(until done: () -> Bool) {
        for _ in 0..<2000 where !done() {
            loop.runOnce()
            usleep(1000)
        }
    }

    func peerRead() -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fds[1], $0.baseAddress, $0.count, 0) }
            if n <= 0 { return out }
            out += buf[..<n]
        }
    }

    func testBytesArriveAndQueuedOutputIsWrittenInOrder() {
        let s = Recorder(loop: loop, fd: fds[0], peer: "test")
        s.start()
        _ = "hello".withCString { send(fds[1], $0, 5, 0) }
        spin { s.input.count == 5 }
        XCTAssertEqual(String(decoding: s.input, as: UTF8.self), "hello")

        s.send(Array("one,".utf8))
        s.send(Chunk(Array("two,".utf8)))   // a shared chunk, queued without a copy
        s.send(Array("three".utf8))
        XCTAssertEqual(s.outBytes, 13)
        spin { s.outBytes == 0 }
        XCTAssertEqual(String(decoding: peerRead(), as: UTF8.self), "one,two,three")
        XCTAssertEqual(s.drained, 1, "outputDrained fires once the queue empties")
        s.close()
        XCTAssertTrue(s.closed)
    }

    /// A socket's I/O watcher is the loop's slot for its descriptor (issue 30: no malloc per socket): the
    /// next socket on the same descriptor gets the same slot and reads, and the closed one left behind
    /// cannot take it back (asking to write, it stops nothing and starts nothing).
    func testADescriptorsNextSocketGetsItsWatcherSlotAndTheClosedOneLeavesItAlone() {
        let first = Recorder(loop: loop, fd: fds[0], peer: "first")
        first.start()
        let slot = first.ioWatcher
        first.close()
        Glibc.close(fds[1])
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        guard fds[0] == first.fd else { return }  // (the kernel gave out another number: nothing shared)
        let second = Recorder(loop: loop, fd: fds[0], peer: "second")
        XCTAssertEqual(second.ioWatcher, slot)
        second.start()
        first.waitToWrite()
        first.stopWaitingToWrite()
        XCTAssertFalse(first.isWaitingToWrite)
        _ = "again".withCString { send(fds[1], $0, 5, 0) }
        spin { second.input.count == 5 }
        XCTAssertEqual(String(decoding: second.input, as: UTF8.self), "again")
        XCTAssertTrue(first.input.isEmpty)
        second.close()
    }

    /// The slots are the process's, not a loop's: a descriptor handed to another loop (or closed and given
    /// out again there) is watched through the same slot, so a loop does not come to hold a slot for every
    /// descriptor number the others use.
    func testAnotherLoopsSocketOnTheSameDescriptorGetsTheSameSlot() {
        let first = Recorder(loop: loop, fd: fds[0], peer: "first")
        first.start()
        let slot = first.ioWatcher
        first.handOff()
        let other = Loop(index: 1)
        let second = Recorder(loop: other, fd: fds[0], peer: "second")
        XCTAssertEqual(second.ioWatcher, slot)
        XCTAssertEqual(second.ioWatcher, WatcherSlots.slot(fd: fds[0]))
        second.handOff()
    }

    /// Many entries, written in pieces (the socket buffer fills), come out whole and in order; once
    /// drained the queue holds no storage, and the loop's table finds the stream by descriptor.
    func testAQueueOfManyEntriesDrainsInOrderThroughPartialWrites() {
        let s = Recorder(loop: loop, fd: fds[0], peer: "test")
        s.start()
        XCTAssertTrue(loop.streams[fds[0]] === s)
        XCTAssertEqual(loop.streams.count, 1)
        var expected: [UInt8] = []
        for i in 0..<300 {
            let piece = [UInt8](repeating: UInt8(i % 251), count: 1000 + i)
            expected += piece
            if i % 3 == 0 { s.send(Chunk(piece)) } else { s.send(piece) }
        }
        XCTAssertGreaterThan(s.out.count, 2)
        var got: [UInt8] = []
        spin {
            got += peerRead()
            return s.outBytes == 0 && got.count == expected.count
        }
        XCTAssertEqual(got, expected)
        XCTAssertTrue(s.out.isEmpty)
        XCTAssertNil(s.out.last)
        s.close()
        XCTAssertNil(loop.streams[fds[0]])
        XCTAssertTrue(loop.streams.isEmpty)
    }

    func testOutQueueKeepsOrderAcrossItsInlineSlotsAndArray() {
        let chunks = (0..<7).map { Chunk([UInt8($0)]) }
        var q = OutQueue()
        for c in chunks { q.append(.init(chunk: c, offset: 0, owned: false)) }
        XCTAssertEqual(q.count, 7)
        XCTAssertTrue(q.last?.chunk === chunks[6])
        var expected = Array(chunks)
        for n in [1, 2, 1, 2] {
            q.removeFirst(n)
            expected.removeFirst(n)
            XCTAssertEqual(q.map { $0.chunk.bytes[0] }, expected.map { $0.bytes[0] })
            XCTAssertEqual(q.count, expected.count)
        }
        q[0].offset = 1
        XCTAssertEqual(q.first?.offset, 1)
        q.append(.init(chunk: chunks[0], offset: 0, owned: true))
        q.keepFirst()
        XCTAssertEqual(q.count, 1)
        q.removeAll()
        XCTAssertTrue(q.isEmpty)
        XCTAssertNil(q.last)
    }

    func testStreamTableCountsAndGrows() {
        var t = StreamTable()
        let a = Recorder(loop: loop, fd: 5, peer: "a"), b = Recorder(loop: loop, fd: 900, peer: "b")
        t[5] = a
        t[900] = b
        t[900] = b
        XCTAssertEqual(t.count, 2)
        XCTAssertTrue(t[900] === b)
        XCTAssertNil(t[-1])
        XCTAssertNil(t[100_000])
        t[100_000] = nil
        t[5] = nil
        XCTAssertEqual(t.values.map(\.peer), ["b"])
        t[900] = nil
        XCTAssertTrue(t.isEmpty)
    }

    /// The loop's list of sockets to flush holds them without reference counting (`DirtyList`): one the
    /// stream table no longer holds (closed, or never started) is pinned until the flush, then let go.
    func testAMarkedSocketLivesUntilTheFlushThoughNothingElseHoldsIt() {
        var more: [Int32] = [0, 0], other: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &more), 0)
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &other), 0)
        defer { Glibc.close(more[0]); Glibc.close(more[1]); Glibc.close(other[1]) }
        for fd in more + other { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        weak var closed: Recorder?
        do {
            let s = Recorder(loop: loop, fd: other[0], peer: "listed")
            s.start()
            s.send(Array("gone".utf8))
            XCTAssertTrue(s.isDirty && s.isListed)
            s.close()
            XCTAssertFalse(s.isListed)
            closed = s
        }
        XCTAssertNotNil(closed, "a closed socket still on the flush list must be pinned")
        loop.runOnce()
        XCTAssertNil(closed, "the pin is dropped once the pass ends")

        weak var unlisted: Recorder?
        do {
            // Never started: not in the table, so the list pins it when it is marked.
            let s = Recorder(loop: loop, fd: more[0], peer: "unlisted")
            s.send(Array("still written".utf8))
            XCTAssertFalse(s.isListed)
            unlisted = s
        }
        XCTAssertNotNil(unlisted)
        loop.runOnce()
        XCTAssertNil(unlisted)
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBytes { recv(more[1], $0.baseAddress, $0.count, 0) }
        XCTAssertEqual(n > 0 ? String(decoding: buf[..<n], as: UTF8.self) : "", "still written")

        // A started socket is held by the table, not pinned; it is flushed and stays.
        let kept = Recorder(loop: loop, fd: fds[0], peer: "kept")
        kept.start()
        kept.send(Array("x".utf8))
        XCTAssertTrue(loop.dirty.pinned.isEmpty)
        loop.runOnce()
        XCTAssertFalse(kept.isDirty)
        XCTAssertEqual(peerRead(), Array("x".utf8))
        kept.close()
    }

    /// A socket whose own flush closes it (the peer went away), held by nothing but the stream table: the
    /// pass calls `flush` without retaining it, so it must live until the pass ends, not die inside it.
    func testASocketClosedByItsOwnFlushLivesUntilThePassEnds() {
        final class Watched: Socket {
            var diedWhileFlushing: (Bool) -> Void = { _ in }
            deinit { diedWhileFlushing(loop.isFlushing) }
        }
        var pair: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        _ = fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK)
        var died: Bool?
        do {
            let s = Watched(loop: loop, fd: pair[0], peer: "gone")
            s.diedWhileFlushing = { died = $0 }
            s.start()
            Glibc.close(pair[1])  // the peer went away: the send fails with EPIPE and the stream closes
            s.send(Array("nobody reads this".utf8))
        }
        XCTAssertNil(died, "the stream table holds it until it closes")
        loop.runOnce()
        XCTAssertEqual(died, false, "freed after the pass, not inside its own flush")
    }

    func testOutputPastTheLimitIsDroppedAndReportedOnce() {
        let s = Recorder(loop: loop, fd: fds[0], peer: "test")
        s.start()
        s.outputLimit = 1000
        s.send([UInt8](repeating: 1, count: 600))
        XCTAssertFalse(s.isOverLimit)
        s.send([UInt8](repeating: 2, count: 600))
        XCTAssertTrue(s.isOverLimit)
        // Further output is discarded, not queued.
        let before = s.outBytes
        s.send([UInt8](repeating: 3, count: 5000))
        XCTAssertEqual(s.outBytes, before)
        spin { s.closed }
        XCTAssertEqual(s.overLimit, 1)
        XCTAssertTrue(s.closed)
    }

    func testUnconsumedInputPastTheLimitIsRefused() {
        final class Hoarder: Socket {
            var refused = false
            override func received(_ bytes: UnsafeMutableRawBufferPointer) -> Int { 0 }
            override var inputLimit: Int { 4096 }
            override func inputLimitExceeded() { refused = true; close() }
        }
        let s = Hoarder(loop: loop, fd: fds[0], peer: "test")
        s.start()
        let chunk = [UInt8](repeating: 7, count: 3000)
        for _ in 0..<3 { _ = chunk.withUnsafeBytes { send(fds[1], $0.baseAddress, $0.count, 0) }; loop.runOnce() }
        spin { s.refused }
        XCTAssertTrue(s.refused)
    }

    func testCloseAfterFlushWritesEverythingThenShutsDown() {
        let s = Recorder(loop: loop, fd: fds[0], peer: "test")
        s.start()
        s.send(Array("bye".utf8))
        s.closeAfterFlush(lingerSeconds: 0.05)
        XCTAssertTrue(s.isClosing)
        s.send(Array("ignored".utf8))  // nothing is queued after the close began
        spin { s.outBytes == 0 }
        XCTAssertEqual(String(decoding: peerRead(), as: UTF8.self), "bye")
        Glibc.shutdown(fds[1], Int32(SHUT_WR))  // the peer closes: the linger ends
        spin { s.closed }
        XCTAssertTrue(s.closed)
    }

    /// A peer that went away: the next flush, whether one entry (`send`) or several (`sendmsg`), gets
    /// EPIPE or ECONNRESET and ends the stream; nothing stays queued. (Both calls pass `MSG_NOSIGNAL`.)
    func testWritesToAPeerThatWentAwayCloseTheStreamWithOneEntryOrMany() {
        for entries in [1, 3] {
            XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
            let s = Recorder(loop: loop, fd: fds[0], peer: "test")
            s.start()
            Glibc.close(fds[1])
            for i in 0..<entries { s.send(Chunk(Array("frame \(i)".utf8))) }
            XCTAssertEqual(s.out.count, entries)
            spin { s.closed }
            XCTAssertTrue(s.closed, "\(entries) entries")
            XCTAssertEqual(s.outBytes, 0)
            XCTAssertTrue(s.out.isEmpty)
            XCTAssertEqual(s.drained, 0, "nothing was delivered")
        }
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)  // for tearDown
    }

    func testPostedWorkRunsOnTheLoopInOrder() {
        final class Log: @unchecked Sendable { var order: [Int] = [] }  // touched on the loop's thread only
        let log = Log(), loop = self.loop!
        let t = Thread { for i in 0..<100 { loop.post { log.order.append(i) } } }
        t.start()
        spin { log.order.count == 100 }
        XCTAssertEqual(log.order, Array(0..<100))
    }
}
