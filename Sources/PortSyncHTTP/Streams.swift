import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import PortSyncCore
import PortSyncRuntime

extension HTTPServer {
    /// `GET /v1/sse/events` and `GET /v1/ws/events`: the same filters, the same ids, the same snapshot-then-live
    /// sequence.
    func addStreams(to router: Router<Context>) {
        router.get("/v1/sse/events") { [self] request, context in try await self.sse(request, channel: context.channel)
        }
        guard self.settings.websocket else { return }
        // Every upgrade is accepted, and a refusal is a close code with a reason, because a refused upgrade
        // request can only be answered with a bare 400: a bad filter or token closes with 1008, too many clients
        // with 1013 (try again later). The client's slot is taken only once it is upgraded, so a connection that
        // vanishes during the handshake holds none.
        router.ws("/v1/ws/events") { [self] inbound, outbound, context in
            let request = context.request
            if !self.settings.bearerToken.isEmpty
                && !BearerTokenMiddleware.authorized(request, self.settings.bearerToken)
            {
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
            } catch {
                try? await outbound.close(.policyViolation, reason: String("\(error)".prefix(120)))
                return
            }
            guard self.clients.admit(.websocket, max: self.settings.maxClients) else {
                self.tooMany()
                try? await outbound.close(.unknown(1013), reason: "too many stream clients (max_clients)")
                return
            }
            let reason = await self.webSocket(
                inbound, outbound, filter: filter, lastEventID: Self.lastEventID(request))
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
            throw HTTPError(.badRequest, message: error.message)
        }
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

    private enum Tick: Sendable {
        case events
        case heartbeat
        case closed
    }

    private func sse(_ request: Request, channel: any Channel) async throws -> Response {
        let filter = try self.filter(request)
        guard self.clients.admit(.sse, max: self.settings.maxClients) else {
            self.tooMany()
            throw HTTPError(.serviceUnavailable, message: "too many stream clients (max_clients)")
        }
        let bus = self.daemon.events
        let subscription = await bus.subscribe(filter: filter, lastEventID: Self.lastEventID(request))
        let settings = self.settings
        let clients = self.clients
        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        // Tells a reverse proxy (nginx) not to buffer the stream.
        if let name = HTTPField.Name("X-Accel-Buffering") { headers[name] = "no" }
        let closedSlow = Flag()
        if settings.sendBufferBytes > 0 {
            try? await channel.setOption(ChannelOptions.socketOption(.so_sndbuf), value: settings.sendBufferBytes)
                .get()
        }
        let body = ResponseBody { writer in
            var reason = "client"
            defer {
                bus.unsubscribe(subscription.id)
                clients.release(.sse, reason: closedSlow.isSet ? "slow" : reason)
            }
            let (ticks, continuation) = AsyncStream<Tick>.makeStream(bufferingPolicy: .bufferingNewest(4))
            let pump = Task {
                for await _ in subscription.doorbell { continuation.yield(.events) }
                continuation.yield(.closed)
                // Closed as slow: the handler may be stuck in a write that the client will never read; closing the
                // connection fails that write and ends the handler.
                if await bus.closeReason(subscription.id) == "slow" {
                    closedSlow.set()
                    channel.close(promise: nil)
                }
            }
            let beat = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(settings.sseHeartbeatMs))
                    continuation.yield(.heartbeat)
                }
            }
            defer {
                pump.cancel()
                beat.cancel()
                continuation.finish()
            }
            var text = "retry: \(settings.sseRetryMs)\n\n"
            for event in subscription.initial { text += event.sseFrame() }
            try await writer.write(ByteBuffer(string: text))
            for await tick in ticks {
                switch tick {
                case .heartbeat:
                    try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
                case .events, .closed:
                    let (events, closed) = await bus.take(subscription.id)
                    if let events, !events.isEmpty {
                        try await writer.write(ByteBuffer(string: events.map { $0.sseFrame() }.joined()))
                        if events.last?.type == .shutdown { reason = "shutdown" }
                    }
                    if events == nil || tick == .closed {
                        if let closed { reason = closed }
                        if reason == "slow" {
                            try? await writer.write(ByteBuffer(string: ": closed: slow\n\n"))
                        }
                        try await writer.finish(nil)
                        return
                    }
                }
            }
        }
        return Response(status: .ok, headers: headers, body: body)
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
        _ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, filter: EventFilter,
        lastEventID: String?
    ) async -> String {
        let bus = self.daemon.events
        let (changes, changed) = AsyncStream<EventFilter>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let logger = self.logger
        let clients = self.clients
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
                // Outbound: the same sequence as SSE, one text message per event.
                var filter = filter
                var last = lastEventID
                while true {
                    let subscription = await bus.subscribe(filter: filter, lastEventID: last)
                    defer { bus.unsubscribe(subscription.id) }
                    do {
                        for event in subscription.initial {
                            try await outbound.write(.text(event.json()))
                            last = event.id.description
                        }
                        let outcome = await Self.forward(
                            subscription, bus: bus, outbound: outbound, changes: changes, last: &last)
                        switch outcome {
                        case .changed(let newFilter): filter = newFilter
                        case .closed(let reason):
                            // A close handshake, so that the last frames (the `shutdown` event) are read by the
                            // peer before the connection ends.
                            if reason == "slow" || reason == "shutdown" {
                                try? await outbound.close(.goingAway, reason: reason)
                            }
                            return reason
                        }
                    } catch {
                        return "client"
                    }
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

    private enum Forwarded {
        case changed(EventFilter)
        case closed(String)
    }

    private static func forward(
        _ subscription: EventBus.Subscription, bus: EventBus, outbound: WebSocketOutboundWriter,
        changes: AsyncStream<EventFilter>, last: inout String?
    ) async -> Forwarded {
        enum Next: Sendable {
            case events
            case closed
            case changed(EventFilter)
        }
        let (next, continuation) = AsyncStream<Next>.makeStream(bufferingPolicy: .bufferingNewest(4))
        let pump = Task {
            for await _ in subscription.doorbell { continuation.yield(.events) }
            continuation.yield(.closed)
        }
        let watch = Task {
            for await filter in changes {
                continuation.yield(.changed(filter))
                return
            }
        }
        defer {
            pump.cancel()
            watch.cancel()
            continuation.finish()
        }
        for await item in next {
            if Task.isCancelled { return .closed("client") }
            switch item {
            case .changed(let filter): return .changed(filter)
            case .events, .closed:
                let (events, closed) = await bus.take(subscription.id)
                do {
                    for event in events ?? [] {
                        try await outbound.write(.text(event.json()))
                        last = event.id.description
                        if event.type == .shutdown { return .closed("shutdown") }
                    }
                } catch {
                    return .closed("client")
                }
                if events == nil { return .closed(closed ?? "shutdown") }
                if case .closed = item { return .closed(closed ?? "shutdown") }
            }
        }
        return .closed("client")
    }
}
