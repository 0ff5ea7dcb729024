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
            // Closed as slow: the handler may be stuck in a write that the client will never read; closing the
            // connection fails that write and ends the handler.
            bus.onClose(subscription.id) { why in
                guard why == "slow" else { return }
                closedSlow.set()
                channel.close(promise: nil)
            }
            // The doorbell rings for events, and from this timer so that an idle stream gets its heartbeat.
            let heartbeat = Duration.milliseconds(settings.sseHeartbeatMs)
            let beat = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: heartbeat)
                    bus.nudge(subscription.id)
                }
            }
            defer { beat.cancel() }
            var text = "retry: \(settings.sseRetryMs)\n\n"
            for event in subscription.initial { text += event.sseFrame() }
            try await writer.write(ByteBuffer(string: text))
            let clock = ContinuousClock()
            var lastWrite = clock.now
            func send(_ events: [BusEvent]) async throws {
                try await writer.write(ByteBuffer(string: events.map { $0.sseFrame() }.joined()))
                lastWrite = clock.now
                if events.last?.type == .shutdown { reason = "shutdown" }
            }
            // Each ring: what the mailbox holds, or a heartbeat when the stream has been quiet that long.
            for await _ in subscription.doorbell {
                let (events, closed) = await bus.take(subscription.id)
                guard let events else {
                    if let closed { reason = closed }
                    break
                }
                if !events.isEmpty {
                    try await send(events)
                } else if clock.now - lastWrite >= heartbeat {
                    try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
                    lastWrite = clock.now
                }
            }
            // The doorbell is finished: the bus closed the stream (slow, shutdown). What is left goes out first.
            let (events, closed) = await bus.take(subscription.id)
            if let events, !events.isEmpty { try await send(events) }
            if let closed { reason = closed }
            if reason == "slow" {
                try? await writer.write(ByteBuffer(string: ": closed: slow\n\n"))
            }
            try await writer.finish(nil)
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
        // A subscription change waits here and rings the doorbell, so that one loop serves both.
        let change = Mutex<EventFilter?>(nil)
        let watch = Task {
            for await filter in changes {
                change.withLock { $0 = filter }
                bus.nudge(subscription.id)
                return
            }
        }
        defer { watch.cancel() }
        func send(_ events: [BusEvent]) async throws -> Bool {
            for event in events {
                try await outbound.write(.text(event.json()))
                last = event.id.description
                if event.type == .shutdown { return true }
            }
            return false
        }
        do {
            for await _ in subscription.doorbell {
                if Task.isCancelled { return .closed("client") }
                if let filter = change.withLock({ $0 }) { return .changed(filter) }
                let (events, closed) = await bus.take(subscription.id)
                guard let events else { return .closed(closed ?? "shutdown") }
                if try await send(events) { return .closed("shutdown") }
            }
            // The doorbell is finished: the bus closed the stream (slow, shutdown). What is left goes out first.
            if Task.isCancelled { return .closed("client") }
            let (events, closed) = await bus.take(subscription.id)
            if try await send(events ?? []) { return .closed("shutdown") }
            return .closed(closed ?? "shutdown")
        } catch {
            return .closed("client")
        }
    }
}
