import EventLoop
import WebSocket

/// What a body source read: a piece of the body, or why it cannot go on.
enum BodyRead {
    /// Bytes of the body (`last`: nothing follows).
    case piece([UInt8], last: Bool)
    /// The read failed. Before anything was sent the request is answered with this; after, the
    /// connection is closed (a chunked body without its last chunk tells the client it is incomplete).
    case failed(Response)
}

/// A response body made off the loop a piece at a time (a transcript export), pulled by the connection
/// only once what it sent before is written: a client that does not read holds one piece, not the body.
protocol BodySource: AnyObject {
    /// Reads the next piece and calls `done` on the connection's loop. Not called again before `done`.
    func next(_ done: @escaping (BodyRead) -> Void)
    /// The stream ended: the body is complete, or not wanted (the connection closed, a read failed, the
    /// request was a HEAD). No read starts after this, and what the source holds (its export slot) is
    /// released. Called once.
    func end()
}

/// The streamed answer a connection is sending.
final class ResponseStream {
    let source: BodySource
    let head: Response
    let chunked: Bool
    let keepAlive: Bool
    var headSent = false
    var reading = false
    init(source: BodySource, head: Response, chunked: Bool, keepAlive: Bool) {
        self.source = source
        self.head = head
        self.chunked = chunked
        self.keepAlive = keepAlive
    }
}

extension Connection {
    /// Starts the streamed answer to the request waiting for one (`machine.awaitingResponse`): the head
    /// with the first piece, then a piece each time the output drains, then (keep-alive) the next request.
    func startStream(_ response: Response, _ source: BodySource) {
        guard !isClosed, !isClosing, machine.awaitingResponse else { return source.end() }
        // HTTP/1.0 has no chunked coding: its body ends with the connection.
        let s = ResponseStream(
            source: source, head: response, chunked: deferredChunked,
            keepAlive: deferredKeepAlive && (deferredChunked || deferredHeadOnly))
        stream = s
        if deferredHeadOnly {
            // The head GET would get, no body, and no read (RFC 9110 §9.3.2). Ended on the loop's next
            // turn: this may run inside the read that brought the request, its bytes not yet consumed.
            sendStreamHead(s)
            loop.post { [weak self] in
                guard let self, self.stream === s else { return }
                self.endStream(s)
            }
            return
        }
        pullStream()
    }

    /// Asks the source for the next piece (the output drained, or the stream just began).
    func pullStream() {
        guard let s = stream, !s.reading, !isClosed, !isClosing else { return }
        s.reading = true
        s.source.next { [weak self] read in
            // A connection that closed meanwhile ended its source already.
            guard let self, self.stream === s, !self.isClosed else { return }
            s.reading = false
            switch read {
            case .failed(let response):
                guard s.headSent else {
                    // Nothing sent yet: a proper error answer, and the connection goes on.
                    stream = nil
                    s.source.end()
                    return respondLater(response)
                }
                close()  // `didClose` ends the source
            case .piece(let bytes, let last):
                if !s.headSent { sendStreamHead(s) }
                if !bytes.isEmpty {
                    if s.chunked { send(HTTPResponse.chunkSize(bytes.count)) }
                    send(bytes)
                    if s.chunked { send(Self.crlf) }
                }
                if last {
                    if s.chunked { send(HTTPResponse.lastChunk) }
                    return endStream(s)
                }
                // The next piece is read once this one is written (`outputDrained`); an empty one
                // queued nothing that would drain.
                if bytes.isEmpty { pullStream() }
            }
        }
    }

    private static let crlf: [UInt8] = [13, 10]

    private func sendStreamHead(_ s: ResponseStream) {
        s.headSent = true
        observeResponse(s.head.status)
        send(
            HTTPResponse.streamedHead(
                s.head.status, headers: Self.merging(s.head.headers, corsHeaders), contentType: s.head.contentType,
                chunked: s.chunked,
                keepAlive: s.keepAlive))
    }

    /// The body is complete (or not wanted): the connection serves its next request, or closes.
    private func endStream(_ s: ResponseStream) {
        stream = nil
        s.source.end()
        machine.responded()
        guard s.keepAlive else { return closeAfterFlush() }
        if !pausedForOutput { resumeReading() }
        // Requests that arrived meanwhile are in the stream's pending bytes: process them now.
        feed(takePending())
    }

    /// The connection closed: the source reads no more and releases what it holds.
    func cancelStream() {
        guard let s = stream else { return }
        stream = nil
        s.source.end()
    }
}
