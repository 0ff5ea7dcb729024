import NIOCore
import PortSyncCore
import PortSyncRuntime
import Synchronization

/// One stream client's connection as the event bus's sink: the bus hands it events on the connection's event loop
/// (one hop per loop per batch, however many clients the loop serves), and it writes each event's bytes straight to
/// the socket, framed as the client's protocol wants: an HTTP/1.1 chunk of SSE frames, or WebSocket text frames.
/// No task wakes up per client per event, and a thousand clients share each event's rendering.
///
/// It sits first in the connection's pipeline (next to the socket), below the HTTP or WebSocket encoders, so what
/// the server writes itself (the response head, pings, the close frame, the last chunk) passes through it in
/// order with its own writes. An SSE stream's events wait for the response head to pass before they are written.
///
/// Bounded: while the socket does not take more (the channel is not writable: the send buffer and NIO's pending
/// writes are full), live events wait in a `ClientBuffer`; when that is full, low priority goes first, and then the
/// client is cut as `slow` (it resumes with its `Last-Event-ID`).
final class StreamSink: ChannelDuplexHandler, EventSink, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    enum Framing: Sendable {
        /// Server-Sent Events in the response body; `retry:` first, a comment after `heartbeatMs` of quiet.
        case sse(retryMs: Int, heartbeatMs: Int)
        /// One unmasked text frame per event (a server's frames), after the upgrade.
        case webSocket
    }

    /// How the stream ended, and the id of the last event written (a WebSocket resumes after it).
    struct Ending: Sendable {
        var reason: String
        var lastID: String?
    }

    private let allocator: ByteBufferAllocator
    private let bus: EventBus
    private let framing: Framing
    private let ended: EventLoopPromise<Ending>

    // Event loop only (hence `@unchecked Sendable`: the sink is handed between threads, but touched on its loop).
    private var context: ChannelHandlerContext?
    /// An SSE stream's events wait for the response head; a WebSocket has sent its head (the upgrade) already.
    private var headSent: Bool
    private var chunked = true
    private var id: EventBusState.SubscriberID?
    /// The snapshot or resumed events, until the head has gone.
    private var initial: [BusEvent]?
    private var buffer: ClientBuffer
    private var lastID: String?
    private var lastWrite = NIODeadline.now()
    /// The channel's writability, as its last change said (cheaper than asking the channel for each event).
    private var writable = true
    private var heartbeat: RepeatedTask?
    private var isEnded = false

    /// The connection's event loop, as the bus's lanes know it (and the keeper of its shared renderings).
    private let loop: LoopExecutors.Loop
    var executor: any SinkExecutor { self.loop }

    init(channel: any Channel, loop: LoopExecutors.Loop, bus: EventBus, framing: Framing) {
        self.loop = loop
        self.allocator = channel.allocator
        self.bus = bus
        self.framing = framing
        self.ended = channel.eventLoop.makePromise()
        self.buffer = ClientBuffer(capacity: bus.clientBufferCapacity)
        if case .webSocket = framing { self.headSent = true } else { self.headSent = false }
    }

    /// Puts a new sink first in `channel`'s pipeline.
    static func attach(
        to channel: any Channel, executors: LoopExecutors, bus: EventBus, framing: Framing
    ) async throws -> StreamSink {
        let sink = StreamSink(
            channel: channel, loop: executors.executor(for: channel.eventLoop), bus: bus, framing: framing)
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHandler(sink, position: .first)
        }.get()
        return sink
    }

    /// Waits for the stream to end: the client went away, the bus ended it, the sink gave up (`slow`), or `stop`.
    /// Cancelling the waiting task ends the stream (reason `client`).
    func wait() async -> Ending {
        await withTaskCancellationHandler {
            (try? await self.ended.futureResult.get()) ?? Ending(reason: "client")
        } onCancel: {
            self.stop(reason: "client")
        }
    }

    /// Runs `body` once the stream has ended, however it ended.
    func onEnd(_ body: @escaping @Sendable (Ending) -> Void) {
        self.ended.futureResult.whenSuccess(body)
    }

    /// Ends the stream from any thread: no more events are written (a WebSocket's subscription change).
    func stop(reason: String) {
        self.loop.execute { self.finish(reason: reason) }
    }

    // MARK: EventSink (on the event loop)

    func begin(id: EventBusState.SubscriberID, initial: [BusEvent]) {
        self.id = id
        guard !self.isEnded else { return }
        if self.headSent {
            self.send(initial, first: true)
        } else {
            self.initial = initial
        }
    }

    func deliver(_ events: [BusEvent]) {
        guard !self.isEnded else { return }
        if self.headSent, self.writable, self.buffer.isEmpty {
            self.send(events, first: false)
            return
        }
        let (dropped, slow) = self.buffer.offer(contentsOf: events)
        if dropped > 0 { self.bus.countDroppedLow(dropped) }
        if slow { self.giveUp() }
    }

    func overflowed() {
        guard !self.isEnded else { return }
        self.giveUp()
    }

    func end(reason: String) {
        guard !self.isEnded else { return }
        // Shutdown: what waits goes out (bounded by the client buffer), then the `shutdown` event is the last.
        if self.headSent, !self.buffer.isEmpty { self.send(self.buffer.takeAll(), first: false) }
        self.finish(reason: reason)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if case .sse(_, let heartbeatMs) = self.framing, heartbeatMs > 0 {
            let every = TimeAmount.milliseconds(Int64(heartbeatMs))
            self.heartbeat = context.eventLoop.scheduleRepeatedTask(initialDelay: every, delay: every) { _ in
                self.beat(every)
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.finish(reason: "client")
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !self.headSent else { return context.write(data, promise: promise) }
        // The first bytes the server writes are the response head: a body sent with chunked encoding (HTTP/1.1)
        // gets chunks; an HTTP/1.0 client's body is the raw stream.
        self.headSent = true
        if case .byteBuffer(let head) = self.unwrapOutboundIn(data) {
            self.chunked = Self.contains(head, "chunked")
        }
        context.write(data, promise: promise)
        if let initial = self.initial, !self.isEnded {
            self.initial = nil
            self.send(initial, first: true)
            if !self.buffer.isEmpty, self.writable { self.send(self.buffer.takeAll(), first: false) }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.writable = context.channel.isWritable
        if self.writable, self.headSent, !self.isEnded, !self.buffer.isEmpty {
            self.send(self.buffer.takeAll(), first: false)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        context.fireChannelInactive()
        self.finish(reason: "client")
    }

    // MARK: Writing

    private func send(_ events: [BusEvent], first: Bool) {
        guard let context = self.context, !events.isEmpty || first else { return }
        let bytes: ByteBuffer
        if first {
            // The snapshot (or the resumed events) is this client's own; `retry:` before it.
            var preamble = ""
            if case .sse(let retryMs, _) = self.framing { preamble = "retry: \(retryMs)\n\n" }
            bytes = Rendering.render(events, self.rendering, preamble: preamble, allocator: self.allocator)
        } else {
            // Live events: every client of the loop with the same events shares one rendering (and its memory).
            bytes = self.loop.rendered(events, self.rendering, allocator: self.allocator)
        }
        if let last = events.last { self.lastID = last.id.description }
        self.lastWrite = .now()
        context.writeAndFlush(self.wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
    }

    private var rendering: Rendering {
        switch self.framing {
        case .sse: self.chunked ? .sseChunked : .sse
        case .webSocket: .webSocket
        }
    }

    /// A comment when the stream has been quiet for `every`, so that proxies and clients see it alive.
    private func beat(_ every: TimeAmount) {
        guard !self.isEnded, self.headSent, self.writable, let context = self.context,
            NIODeadline.now() - self.lastWrite >= every
        else { return }
        var out = self.allocator.buffer(capacity: 32)
        Rendering.writeBody(": heartbeat\n\n", chunked: self.chunked, into: &out)
        self.lastWrite = .now()
        context.writeAndFlush(self.wrapOutboundOut(.byteBuffer(out)), promise: nil)
    }

    // MARK: Ending

    /// The client does not read and its buffer is full: the bus forgets it, its connection is closed.
    private func giveUp() {
        if let id = self.id { self.bus.closed(id, reason: "slow") }
        let context = self.context
        self.finish(reason: "slow")
        context?.close(promise: nil)
    }

    private func finish(reason: String) {
        guard !self.isEnded else { return }
        self.isEnded = true
        self.initial = nil
        _ = self.buffer.takeAll()
        self.heartbeat?.cancel()
        self.heartbeat = nil
        if let context = self.context {
            self.context = nil
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        self.ended.succeed(Ending(reason: reason, lastID: self.lastID))
    }

    private static func contains(_ buffer: ByteBuffer, _ word: StaticString) -> Bool {
        let needle = word.withUTF8Buffer { Array($0) }
        let bytes = buffer.readableBytesView
        guard bytes.count >= needle.count else { return false }
        var start = bytes.startIndex
        while start + needle.count <= bytes.endIndex {
            if bytes[start..<start + needle.count].elementsEqual(needle, by: { $0 | 0x20 == $1 }) { return true }
            start += 1
        }
        return false
    }
}

/// How a stream's bytes are framed.
enum Rendering: Hashable, Sendable {
    /// SSE frames in HTTP/1.1 chunks.
    case sseChunked
    /// SSE frames as the raw body.
    case sse
    /// One WebSocket text frame per event.
    case webSocket

    /// `events` as this framing's bytes, after `preamble` (SSE only).
    static func render(
        _ events: [BusEvent], _ rendering: Rendering, preamble: String = "", allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var out = allocator.buffer(capacity: 64 + events.count * 320)
        switch rendering {
        case .sseChunked, .sse:
            var body = preamble
            for event in events { body += event.sseFrame() }
            Self.writeBody(body, chunked: rendering == .sseChunked, into: &out)
        case .webSocket:
            for event in events { Self.writeTextFrame(event.json(), into: &out) }
        }
        return out
    }

    /// `text` as one HTTP/1.1 chunk (size line, data, CRLF), or as it is.
    static func writeBody(_ text: String, chunked: Bool, into out: inout ByteBuffer) {
        let length = text.utf8.count
        guard length > 0 else { return }
        if chunked {
            out.writeString(String(length, radix: 16))
            out.writeStaticString("\r\n")
        }
        out.writeString(text)
        if chunked { out.writeStaticString("\r\n") }
    }

    /// RFC 6455 §5.2: FIN and opcode 1 (text), no mask (a server's frame), the payload length in 7, 16 or 64 bits.
    static func writeTextFrame(_ text: String, into out: inout ByteBuffer) {
        let length = text.utf8.count
        out.writeInteger(UInt8(0x81))
        if length < 126 {
            out.writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            out.writeInteger(UInt8(126))
            out.writeInteger(UInt16(length))
        } else {
            out.writeInteger(UInt8(127))
            out.writeInteger(UInt64(length))
        }
        out.writeString(text)
    }
}

/// One `SinkExecutor` per event loop, so that the bus gives each loop one lane whatever the number of its clients.
final class LoopExecutors: Sendable {
    /// An event loop, and the last rendering of each framing made on it: the clients of one lane run get the same
    /// events array, so the first renders it and the others send the same bytes (shared, not copied).
    final class Loop: SinkExecutor, @unchecked Sendable {
        let eventLoop: any EventLoop
        // The event loop's only (hence `@unchecked Sendable`). The events are kept so that their storage (the key)
        // cannot be reused by another array while the rendering is cached.
        private var cache: [Rendering: (events: [BusEvent], bytes: ByteBuffer)] = [:]

        init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

        func execute(_ body: @escaping @Sendable () -> Void) { self.eventLoop.execute(body) }

        func rendered(_ events: [BusEvent], _ rendering: Rendering, allocator: ByteBufferAllocator) -> ByteBuffer {
            if let cached = self.cache[rendering], Self.same(cached.events, events) { return cached.bytes }
            let bytes = Rendering.render(events, rendering, allocator: allocator)
            self.cache[rendering] = (events, bytes)
            return bytes
        }

        private static func same(_ a: [BusEvent], _ b: [BusEvent]) -> Bool {
            a.count == b.count
                && a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in a.baseAddress == b.baseAddress } }
        }
    }

    private let loops = Mutex<[ObjectIdentifier: Loop]>([:])

    func executor(for eventLoop: any EventLoop) -> Loop {
        self.loops.withLock { loops in
            if let known = loops[ObjectIdentifier(eventLoop)] { return known }
            let loop = Loop(eventLoop)
            loops[ObjectIdentifier(eventLoop)] = loop
            return loop
        }
    }
}
