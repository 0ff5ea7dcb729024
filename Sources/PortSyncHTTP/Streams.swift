import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import PortSyncCore
import PortSyncRuntime
import Synchronization

extension HTTPServer {
    /// `GET /v1/sse/events` and `GET /v1/ws/events`: the same filters, the same ids, the same snapshot-then-live
    /// sequence.
    func addStreams(to router: Router<Context>) {
        router.get(RouterPath(Self.ssePath)) { [self] request, context in
            try await self.sse(request, channel: context.channel)
        }
        // HEAD: the head a stream would start with, and no stream.
        router.head(RouterPath(Self.ssePath)) { [self] request, _ in
            _ = try self.filter(request)
            return Response(status: .ok, headers: Self.sseHeaders)
        }
        guard self.settings.websocket else { return }
        // Every valid handshake is upgraded, and a refusal is a close code with a reason: a bad filter or token closes
        // with 1008, too many clients with 1013 (try again later). The client's slot is taken only once it is
        // upgraded, so a connection that vanishes during the handshake holds none. A request that is not a valid
        // handshake reaches this route without its `Upgrade` header (`RequestGuard`) and is answered 400 or 426.
        router.ws(
            RouterPath(Self.webSocketPath),
            shouldUpgrade: { [clients] request, _ in
                guard request.headers[.upgrade] != nil else { throw Self.handshakeRefusal(request, clients) }
                return .upgrade([:])
            }
        ) { [self] inbound, outbound, context in
            let request = context.request
            if !self.token.isEmpty && !BearerTokenMiddleware.authorized(request, self.token) {
                self.clients.badRequest("unauthorized")
                self.logger.warning(
                    "WebSocket client refused: missing or wrong bearer token",
                    metadata: ["EVENT": "http_unauthorized", "REASON": "unauthorized"])
                try? await outbound.close(.policyViolation, reason: "a bearer token is required")
                return
            }
            let filter: EventFilter
            do {
                filter = try self.filter(request)
            } catch let error as APIError {
                try? await outbound.close(.policyViolation, reason: String(error.message.prefix(120)))
                return
            } catch {
                try? await outbound.close(.policyViolation, reason: "bad request")
                return
            }
            guard self.clients.admit(.websocket, max: self.settings.maxClients) else {
                self.tooMany()
                try? await outbound.close(.unknown(1013), reason: "too many stream clients (max_clients)")
                return
            }
            let channel = context.requestContext.channel
            await Self.boundSendBuffer(channel, self.settings)
            let reason = await self.webSocket(
                inbound, outbound, channel: channel, filter: filter, lastEventID: Self.lastEventID(request))
            self.clients.release(.websocket, reason: reason)
        }
    }

    /// The filter of a stream request, or a 400 naming what is wrong.
    func filter(_ request: Request) throws -> EventFilter {
        let query = request.uri.queryParameters
        do {
            return try EventFilter.parse(
                events: query["events"].map(String.init), ports: query["ports"].map(String.init))
        } catch {
            self.clients.badRequest("bad_filter")
            self.logger.info(
                "Stream request refused: \(error.message)",
                metadata: ["EVENT": "http_bad_request", "REASON": "bad_filter"])
            throw APIError(.badRequest, error.message, parameter: error.parameter)
        }
    }

    /// Why a request on the WebSocket path was not upgraded: a bad key 400, another version 426 naming 13, no key
    /// 400, no handshake at all 426 asking for one.
    static func handshakeRefusal(_ request: Request, _ clients: StreamClients) -> APIError {
        clients.badRequest("bad_websocket_handshake")
        let upgradeHeaders: HTTPFields = [
            .upgrade: "websocket", .connection: "Upgrade", .secWebSocketVersion: "13",
        ]
        let versions = request.headers[values: .secWebSocketVersion]
        let keys = request.headers[values: .secWebSocketKey]
        if !versions.isEmpty && versions != ["13"] {
            return APIError(
                .upgradeRequired, "Sec-WebSocket-Version must be 13", parameter: "Sec-WebSocket-Version",
                headers: upgradeHeaders)
        }
        if keys.count > 1 || keys.contains(where: { !WebSocketHandshake.isValidKey($0) }) {
            return APIError(
                .badRequest, "Sec-WebSocket-Key must be the base64 of 16 bytes", parameter: "Sec-WebSocket-Key")
        }
        if !versions.isEmpty && keys.isEmpty {
            return APIError(.badRequest, "Sec-WebSocket-Key is missing", parameter: "Sec-WebSocket-Key")
        }
        if !keys.isEmpty && request.method != .get {
            return APIError(.badRequest, "a WebSocket handshake is a GET")
        }
        return APIError(
            .upgradeRequired,
            "this is a WebSocket stream: send a WebSocket handshake (Upgrade: websocket, Connection: Upgrade, "
                + "Sec-WebSocket-Version: 13, Sec-WebSocket-Key), or use \(HTTPServer.ssePath)",
            headers: upgradeHeaders)
    }

    static var sseHeaders: HTTPFields {
        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        // Tells a reverse proxy (nginx) not to buffer the stream.
        if let name = HTTPField.Name("X-Accel-Buffering") { headers[name] = "no" }
        return headers
    }

    static func lastEventID(_ request: Request) -> String? {
        if let name = HTTPField.Name("Last-Event-ID"), let header = request.headers[name] { return header }
        return request.uri.queryParameters["last_event_id"].map(String.init)
    }

    private func tooMany() {
        self.clients.badRequest("too_many_clients")
        self.logger.warning(
            "Stream client refused: \(self.settings.maxClients) clients already (http.max_clients)",
            metadata: ["EVENT": "http_too_many_clients"])
    }

    // MARK: SSE

    private func sse(_ request: Request, channel: any Channel) async throws -> Response {
        let filter = try self.filter(request)
        guard self.clients.admit(.sse, max: self.settings.maxClients) else {
            self.tooMany()
            throw APIError(.serviceUnavailable, "too many stream clients (http.max_clients)")
        }
        let bus = self.daemon.events
        let settings = self.settings
        let clients = self.clients
        let headers = Self.sseHeaders
        await Self.boundSendBuffer(channel, settings)
        // The sink goes into the pipeline before the response head is written, so that it sees the head pass and
        // writes the events after it.
        let sink: StreamSink
        do {
            sink = try await StreamSink.attach(
                to: channel, executors: self.executors, bus: bus,
                framing: .sse(retryMs: settings.sseRetryMs, heartbeatMs: settings.sseHeartbeatMs))
        } catch {
            clients.release(.sse, reason: "client")
            throw error
        }
        let id = await bus.subscribe(filter: filter, lastEventID: Self.lastEventID(request), sink: sink)
        // However the stream ends (even before its body starts: the client left at once), the slot is released.
        sink.onEnd { ending in
            bus.unsubscribe(id)
            clients.release(.sse, reason: ending.reason)
        }
        let body = ResponseBody { writer in
            _ = await sink.wait()
            // The last chunk: the stream ended cleanly (a `slow` client's connection is closed already).
            try? await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// A small send buffer (`http.send_buffer_bytes`), so that a client that stops reading is found after
    /// kilobytes rather than after the megabytes loopback autotuning allows.
    static func boundSendBuffer(_ channel: any Channel, _ settings: Config.HTTP) async {
        guard settings.sendBufferBytes > 0 else { return }
        try? await channel.setOption(ChannelOptions.socketOption(.so_sndbuf), value: settings.sendBufferBytes).get()
    }

    // MARK: WebSocket

    /// A client's message: `{"events": [...], "ports": [...]}` changes its subscription (resuming after the last
    /// event it got, so nothing is lost or repeated).
    private struct Subscribe: Decodable {
        var events: [String]?
        var ports: [String]?
    }

    /// Runs one WebSocket client until it goes away or is closed; returns why.
    private func webSocket(
        _ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, channel: any Channel,
        filter: EventFilter, lastEventID: String?
    ) async -> String {
        let bus = self.daemon.events
        let (changes, changed) = AsyncStream<EventFilter>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let logger = self.logger
        let clients = self.clients
        let executors = self.executors
        return await withTaskGroup(of: String.self) { group in
            group.addTask {
                // Inbound: subscription changes; anything else closes the client with a reason.
                do {
                    for try await message in inbound.messages(maxSize: 16 * 1024) {
                        guard case .text(let text) = message,
                            let request = try? JSONDecoder().decode(Subscribe.self, from: Data(text.utf8))
                        else {
                            clients.badRequest("bad_ws_message")
                            logger.info(
                                "WebSocket client sent a message that is not a subscription; closing it",
                                metadata: ["EVENT": "http_bad_request", "REASON": "bad_ws_message"])
                            try? await outbound.close(
                                .unacceptableData, reason: "expected {\"events\":[…],\"ports\":[…]}")
                            return "bad_message"
                        }
                        do {
                            changed.yield(
                                try EventFilter.parse(
                                    events: request.events?.joined(separator: ","),
                                    ports: request.ports?.joined(separator: ",")))
                        } catch {
                            clients.badRequest("bad_filter")
                            try? await outbound.close(.policyViolation, reason: String("\(error)".prefix(120)))
                            return "bad_message"
                        }
                    }
                } catch {
                    clients.badRequest("bad_ws_message")
                    return "error"
                }
                return "client"
            }
            group.addTask {
                // Outbound: the same sequence as SSE, one text frame per event, written by the sink.
                var filter = filter
                var last = lastEventID
                while true {
                    let sink: StreamSink
                    do {
                        sink = try await StreamSink.attach(
                            to: channel, executors: executors, bus: bus, framing: .webSocket)
                    } catch {
                        return "client"
                    }
                    let id = await bus.subscribe(filter: filter, lastEventID: last, sink: sink)
                    // A subscription change ends this sink; the next one resumes after the last event written.
                    let change = Mutex<EventFilter?>(nil)
                    let watch = Task {
                        for await newFilter in changes {
                            change.withLock { $0 = newFilter }
                            sink.stop(reason: "changed")
                            return
                        }
                    }
                    let ending = await sink.wait()
                    watch.cancel()
                    bus.unsubscribe(id)
                    last = ending.lastID ?? last
                    if ending.reason == "changed", let newFilter = change.withLock({ $0 }) {
                        filter = newFilter
                        continue
                    }
                    // A close handshake, so that the last frames (the `shutdown` event) are read by the peer before
                    // the connection ends.
                    if ending.reason == "shutdown" { try? await outbound.close(.goingAway, reason: ending.reason) }
                    return ending.reason
                }
            }
            let first = await group.next() ?? "client"
            logger.debug(
                "WebSocket client ended: \(first)", metadata: ["EVENT": "ws_closed", "REASON": .string(first)])
            group.cancelAll()
            changed.finish()
            return first == "bad_message" ? "error" : first
        }
    }
}
