import Foundation
import Glibc
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Every HTTP connection's figures and limits: the cap (`http.max_connections`), the request-head deadline
/// (`http.request_head_timeout_ms`), what was refused or timed out, and the listening socket's backoffs when the
/// process is out of descriptors. Shared by all event loops; logs through `RateLimitedLog`.
final class HTTPConnections: Sendable {
    struct Figures: Sendable, Hashable {
        var open = 0
        var peak = 0
        var refused: UInt64 = 0
        var headTimeouts: UInt64 = 0
        var acceptBackoffs: UInt64 = 0
        /// Refused connections still being closed (their 503 written, their input drained).
        var lingering = 0
    }

    let limit: Int
    let headTimeout: TimeAmount
    let log: RateLimitedLog
    private let state = Mutex(Figures())

    init(limit: Int, headTimeoutMs: Int, logger: Logger) {
        self.limit = limit
        self.headTimeout = .milliseconds(Int64(headTimeoutMs))
        self.log = RateLimitedLog(logger: logger)
    }

    var figures: Figures { self.state.withLock { $0 } }

    /// Takes a slot if fewer than `limit` connections are open; else counts a refusal.
    func open() -> Bool {
        let admitted = self.state.withLock { figures in
            guard figures.open < self.limit else {
                figures.refused += 1
                return false
            }
            figures.open += 1
            figures.peak = max(figures.peak, figures.open)
            return true
        }
        if !admitted {
            self.log.log(
                .warning, event: "http_refused",
                "HTTP connection refused: \(self.limit) connections open (http.max_connections)")
        }
        return admitted
    }

    func close() { self.state.withLock { $0.open -= 1 } }

    /// Whether a refused connection may linger (at most 64 at once) to drain its input before it is closed, so that
    /// its 503 is not lost to a reset.
    func beginLinger() -> Bool {
        self.state.withLock { figures in
            guard figures.lingering < 64 else { return false }
            figures.lingering += 1
            return true
        }
    }

    func endLinger() { self.state.withLock { $0.lingering -= 1 } }

    func headTimedOut() {
        self.state.withLock { $0.headTimeouts += 1 }
        self.log.log(
            .notice, event: "http_timeout",
            "HTTP connection closed: no complete request head within \(self.headTimeout.nanoseconds / 1_000_000) ms "
                + "(http.request_head_timeout_ms)", metadata: ["REASON": "request_head"])
    }

    func acceptBackedOff(errno code: CInt, for delay: TimeAmount) {
        self.state.withLock { $0.acceptBackoffs += 1 }
        self.log.log(
            .warning, event: "http_accept_backoff",
            "HTTP accept failed (\(String(cString: strerror(code)))): not accepting for "
                + "\(delay.nanoseconds / 1_000_000) ms", metadata: ["ERRNO": "\(code)"])
    }

    /// The connection metrics, Prometheus text.
    func metrics() -> String {
        let figures = self.figures
        return [
            "# HELP portsyncd_http_connections HTTP connections open now (streams included).",
            "# TYPE portsyncd_http_connections gauge",
            "portsyncd_http_connections \(figures.open)",
            "# HELP portsyncd_http_connections_max HTTP connections allowed at once (http.max_connections).",
            "# TYPE portsyncd_http_connections_max gauge",
            "portsyncd_http_connections_max \(self.limit)",
            "# HELP portsyncd_http_connections_peak Most HTTP connections open at once since start.",
            "# TYPE portsyncd_http_connections_peak gauge",
            "portsyncd_http_connections_peak \(figures.peak)",
            "# HELP portsyncd_http_connections_refused_total HTTP connections answered 503 and closed at once "
                + "(http.max_connections).",
            "# TYPE portsyncd_http_connections_refused_total counter",
            "portsyncd_http_connections_refused_total \(figures.refused)",
            "# HELP portsyncd_http_request_head_timeouts_total HTTP connections closed for want of a complete "
                + "request head in time (http.request_head_timeout_ms).",
            "# TYPE portsyncd_http_request_head_timeouts_total counter",
            "portsyncd_http_request_head_timeouts_total \(figures.headTimeouts)",
            "# HELP portsyncd_http_accept_backoffs_total Times the listening socket paused after accept failed "
                + "(out of descriptors or memory).",
            "# TYPE portsyncd_http_accept_backoffs_total counter",
            "portsyncd_http_accept_backoffs_total \(figures.acceptBackoffs)",
        ].joined(separator: "\n") + "\n"
    }
}

/// Journal lines that a flood cannot multiply: at most one line per event kind every 10 s, the next one saying how
/// many were left out.
final class RateLimitedLog: Sendable {
    private struct Slot {
        var last: ContinuousClock.Instant?
        var suppressed: UInt64 = 0
    }

    let logger: Logger
    private let interval = Duration.seconds(10)
    private let slots = Mutex<[String: Slot]>([:])

    init(logger: Logger) { self.logger = logger }

    func log(_ level: Logger.Level, event: String, _ message: String, metadata: Logger.Metadata = [:]) {
        let now = ContinuousClock.now
        let suppressed = self.slots.withLock { slots -> UInt64? in
            var slot = slots[event] ?? Slot()
            defer { slots[event] = slot }
            if let last = slot.last, now - last < self.interval {
                slot.suppressed += 1
                return nil
            }
            let count = slot.suppressed
            slot.last = now
            slot.suppressed = 0
            return count
        }
        guard let suppressed else { return }
        var metadata = metadata
        metadata["EVENT"] = .string(event)
        var text = message
        if suppressed > 0 {
            metadata["SUPPRESSED"] = "\(suppressed)"
            text += " (and \(suppressed) more like it in the last 10 s)"
        }
        self.logger.log(level: level, "\(text)", metadata: metadata)
    }
}

/// The error body every error answer carries, whoever writes it: `{"error": {"message": …, "parameter": …}}`, as
/// `application/json`.
enum ErrorBody {
    struct Document: Encodable {
        struct Detail: Encodable {
            let message: String
            let parameter: String?
        }

        let error: Detail
    }

    static let contentType = "application/json"

    static func data(_ message: String, parameter: String? = nil) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let document = Document(error: .init(message: message, parameter: parameter))
        return (try? encoder.encode(document)) ?? Data("{\"error\":{\"message\":\"error\"}}".utf8)
    }

    /// A whole HTTP/1.1 answer with `Connection: close`, for a handler below the HTTP codec.
    static func raw(status: HTTPResponseStatus, message: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        let body = self.data(message)
        var buffer = allocator.buffer(capacity: body.count + 160)
        buffer.writeString(
            "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\ncontent-type: \(self.contentType)\r\n"
                + "content-length: \(body.count)\r\nconnection: close\r\n\r\n")
        buffer.writeBytes(body)
        return buffer
    }
}

/// First in every connection's pipeline, next to the socket: counts the connection against `http.max_connections`
/// (past it: a 503 and a close, the request never read), and closes a connection whose request head is not complete
/// within `http.request_head_timeout_ms` of its opening, or of the first byte of a later request on a kept-alive
/// connection (408 if it had started one). A WebSocket, once upgraded, is exempt; an idle kept-alive connection is
/// Hummingbird's (`http.idle_timeout_ms`).
final class ConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let connections: HTTPConnections
    private var counted = false
    private var refused = false
    private var upgraded = false
    private var sawBytes = false
    /// Request heads read whose answer has not ended yet.
    private(set) var inFlight = 0
    private var timer: Scheduled<Void>?

    init(connections: HTTPConnections) { self.connections = connections }

    func channelActive(context: ChannelHandlerContext) {
        if self.connections.open() {
            self.counted = true
            self.arm(context)
        } else {
            self.refuse(context)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.disarm()
        if self.counted {
            self.counted = false
            self.connections.close()
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.disarm()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A refused connection's input is read and dropped, so that closing it sends a FIN, not a reset.
        guard !self.refused else { return }
        self.sawBytes = true
        if self.inFlight == 0 { self.arm(context) }
        context.fireChannelRead(data)
    }

    /// A request head has been decoded (`RequestGuard`).
    func headReceived() {
        self.inFlight += 1
        self.sawBytes = false
        self.disarm()
    }

    /// An answer has ended (`RequestGuard`).
    func responseEnded() {
        self.inFlight = max(0, self.inFlight - 1)
    }

    /// The connection is being upgraded to a WebSocket: no head deadline any more.
    func upgrading() {
        self.upgraded = true
        self.disarm()
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard self.timer == nil, !self.upgraded, self.counted else { return }
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: self.connections.headTimeout) {
            self.timer = nil
            guard self.inFlight == 0, !self.upgraded, context.channel.isActive else { return }
            self.connections.headTimedOut()
            guard self.sawBytes else {
                context.close(promise: nil)
                return
            }
            let answer = ErrorBody.raw(
                status: .requestTimeout, message: "the request head did not arrive in time",
                allocator: context.channel.allocator)
            context.writeAndFlush(self.wrapOutboundOut(answer)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    private func disarm() {
        self.timer?.cancel()
        self.timer = nil
    }

    /// 503, then the output side is closed; the connection is closed when the client closes its side, or after
    /// 250 ms (at once when too many refused connections are lingering already).
    private func refuse(_ context: ChannelHandlerContext) {
        self.refused = true
        let answer = ErrorBody.raw(
            status: .serviceUnavailable,
            message: "too many connections (http.max_connections = \(self.connections.limit)); try again later",
            allocator: context.channel.allocator)
        let connections = self.connections
        let linger = connections.beginLinger()
        context.writeAndFlush(self.wrapOutboundOut(answer)).assumeIsolated().whenComplete { _ in
            guard linger else {
                context.close(promise: nil)
                return
            }
            context.close(mode: .output, promise: nil)
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(250)) {
                context.close(promise: nil)
            }
            context.channel.closeFuture.whenComplete { _ in connections.endLinger() }
        }
    }
}

/// Right after the request decoder: answers what the decoder refuses (oversized headers 431, anything else 400,
/// with the JSON error body and a close, where NIO alone would leave the connection hanging), refuses HTTP
/// versions other than 1.0 and 1.1, and lets an upgrade reach NIO's WebSocket upgrader only when it is a complete,
/// valid handshake on the stream's path as a connection's first request. Any other request loses its `Upgrade`
/// header and goes to the router, which answers it (a bad handshake on the stream's path: 400 or 426, after the
/// token check). It tells the `ConnectionGuard` when a head arrives and an answer ends.
final class RequestGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let connection: ConnectionGuard
    private let clients: StreamClients
    private let log: RateLimitedLog
    /// The WebSocket stream's path, when WebSocket is offered.
    private let webSocketPath: String?
    private var heads = 0
    private var failed = false

    init(connection: ConnectionGuard, clients: StreamClients, log: RateLimitedLog, webSocketPath: String?) {
        self.connection = connection
        self.clients = clients
        self.log = log
        self.webSocketPath = webSocketPath
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.failed else { return }
        guard case .head(var head) = self.unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        self.connection.headReceived()
        self.heads += 1
        guard head.version.major == 1, head.version.minor <= 1 else {
            self.fail(
                context, status: head.version.major == 0 ? .badRequest : .httpVersionNotSupported,
                reason: "bad_version", message: "only HTTP/1.0 and HTTP/1.1 are served", answering: 1)
            return
        }
        if head.headers.contains(name: "upgrade") {
            let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            if self.heads == 1, let webSocketPath, path == webSocketPath, Self.isWebSocketHandshake(head) {
                self.connection.upgrading()
                context.fireChannelRead(self.wrapInboundOut(.head(head)))
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                return
            }
            head.headers.remove(name: "upgrade")
            let tokens = head.headers[canonicalForm: "connection"].filter { $0.lowercased() != "upgrade" }
            head.headers.remove(name: "connection")
            if !tokens.isEmpty { head.headers.add(name: "connection", value: tokens.joined(separator: ", ")) }
        }
        context.fireChannelRead(self.wrapInboundOut(.head(head)))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = self.unwrapOutboundIn(data) { self.connection.responseEnded() }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parse = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if parse == .headerOverflow {
            self.fail(
                context, status: .requestHeaderFieldsTooLarge, reason: "header_too_large",
                message: "the request head is too large: at most \(HTTPLimits.maxHeaderBytes) bytes of request line "
                    + "and headers, \(HTTPLimits.maxHeaderCount) headers", answering: 0)
        } else {
            self.fail(
                context, status: .badRequest, reason: "malformed", message: "malformed HTTP request (\(parse))",
                answering: 0)
        }
    }

    /// An error answer and a close. `answering` is how many requests in flight the answer is for (1 for the head
    /// just read, 0 for bytes that never made a head); with any other request still being answered, the connection
    /// is cut instead (the answers would interleave).
    private func fail(
        _ context: ChannelHandlerContext, status: HTTPResponseStatus, reason: String, message: String, answering: Int
    ) {
        guard !self.failed else { return }
        self.failed = true
        self.clients.badRequest(reason)
        self.log.log(
            .notice, event: "http_bad_request", "HTTP request refused (\(status.code)): \(message)",
            metadata: ["REASON": .string(reason)])
        guard self.connection.inFlight == answering, context.channel.isActive else {
            context.close(promise: nil)
            return
        }
        let body = ErrorBody.data(message)
        let headers = HTTPHeaders([
            ("content-type", ErrorBody.contentType), ("content-length", "\(body.count)"), ("connection", "close"),
        ])
        context.write(
            self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
            promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// A complete WebSocket opening handshake (RFC 6455 §4.2.1): GET, HTTP/1.1, `Upgrade: websocket`,
    /// `Connection: Upgrade`, version 13 and a key that is the base64 of 16 bytes.
    static func isWebSocketHandshake(_ head: HTTPRequestHead) -> Bool {
        guard head.method == .GET, head.version == .http1_1 else { return false }
        let upgrade = head.headers[canonicalForm: "upgrade"].map { $0.lowercased() }
        let connection = head.headers[canonicalForm: "connection"].map { $0.lowercased() }
        let versions = head.headers["sec-websocket-version"]
        let keys = head.headers["sec-websocket-key"]
        return upgrade.contains("websocket") && connection.contains("upgrade") && versions == ["13"]
            && keys.count == 1 && keys.first.map(WebSocketHandshake.isValidKey) == true
    }
}

/// The WebSocket handshake's rules, shared by the guard and the router's answer to a refused upgrade.
enum WebSocketHandshake {
    /// Base64 of exactly 16 bytes: 24 characters, the last two `==`.
    static func isValidKey(_ key: String) -> Bool {
        guard key.utf8.count == 24, let bytes = Data(base64Encoded: key) else { return false }
        return bytes.count == 16
    }
}

/// The request decoder's limits.
enum HTTPLimits {
    /// Request line and headers together, bytes.
    static let maxHeaderBytes = 16 * 1024
    static let maxHeaderCount = 100
}

/// On the listening socket: when accept fails for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
/// ENOMEM), stops asking for readability (NIO would otherwise be woken for the waiting connection again and again,
/// one core busy) and tries again after a backoff, 10 ms doubling to 1 s, reset by the next accepted connection.
final class AcceptGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel
    typealias OutboundIn = Never
    typealias OutboundOut = Never

    private let connections: HTTPConnections
    private var delay = TimeAmount.zero
    private var paused: Scheduled<Void>?

    init(connections: HTTPConnections) { self.connections = connections }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.delay = .zero
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        guard self.paused == nil else { return }
        context.read()
    }

    /// A handled error goes no further: NIO's own accept backoff would add a second, fixed, delay of 1 s.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        guard self.paused == nil else { return }
        self.delay = min(.seconds(1), max(.milliseconds(10), self.delay * 2))
        self.connections.acceptBackedOff(errno: error.errnoCode, for: self.delay)
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
        self.paused = context.eventLoop.assumeIsolated().scheduleTask(in: self.delay) {
            self.paused = nil
            try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.paused?.cancel()
        self.paused = nil
    }
}

/// A Hummingbird child channel with the guards: `ConnectionGuard` first in the pipeline, then the inner channel's
/// own handlers, with `RequestGuard` placed right after its request decoder.
struct GuardedChildChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value

    let inner: Inner
    let connections: HTTPConnections
    let clients: StreamClients
    let webSocketPath: String?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let connection = ConnectionGuard(connections: self.connections)
        do {
            try channel.pipeline.syncOperations.addHandler(connection)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        let request = RequestGuard(
            connection: connection, clients: self.clients, log: self.connections.log,
            webSocketPath: self.webSocketPath)
        return self.inner.setup(channel: channel, logger: logger).assumeIsolated().flatMapThrowing { value in
            let decoder = try channel.pipeline.syncOperations.context(
                handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(request, position: .after(decoder.handler))
            return value
        }.nonisolated()
    }

    func handle(value: Value, logger: Logger) async {
        await self.inner.handle(value: value, logger: logger)
    }
}
