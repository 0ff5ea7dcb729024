import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import PortSyncCore
import PortSyncRuntime
import Synchronization

typealias Context = PortsyncRequestContext

/// The request context: Hummingbird's WebSocket-capable context plus the connection's channel, so that a stream
/// whose client stopped reading can be closed outright (its pending writes would otherwise wait forever).
struct PortsyncRequestContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
        self.channel = source.channel
    }
}

extension HTTPServer {
    /// The stream paths (SSE takes the token as `?access_token=` too: browsers' EventSource cannot send headers).
    static let ssePath = "/v1/sse/events"
    static let webSocketPath = "/v1/ws/events"

    func makeRouter() -> Router<Context> {
        let router = Router(context: Context.self, options: .autoGenerateHeadEndpoints)
        let routes = RouteTable()
        router.add(middleware: ErrorMiddleware(logger: self.logger))
        router.add(middleware: BearerTokenMiddleware(token: self.token, clients: self.clients, logger: self.logger))
        router.add(middleware: RoutingMiddleware(routes: routes, clients: self.clients))
        let get = { (path: String, handler: @escaping @Sendable (Request, Context) async throws -> Response) in
            routes.add(path)
            router.get(RouterPath(path), use: handler)
        }
        get("/") { _, _ in try Self.resource("index.html", type: "text/html; charset=utf-8") }
        get("/v1/openapi.json") { _, _ in try Self.resource("openapi.json", type: "application/json") }
        get("/v1/health") { [daemon] _, _ in
            let health = Health(await daemon.report())
            return try Self.json(health, status: health.ready ? .ok : .serviceUnavailable)
        }
        get("/v1/health/live") { [daemon] _, _ in
            let health = Health(await daemon.report())
            return try Self.json(health.liveOnly, status: health.live ? .ok : .serviceUnavailable)
        }
        get("/v1/health/ready") { [daemon] _, _ in
            let health = Health(await daemon.report())
            return try Self.json(health, status: health.ready ? .ok : .serviceUnavailable)
        }
        get("/v1/health/streaming") { [daemon, clients, settings] _, _ in
            let bus = await daemon.events.figures()
            return try Self.json(
                StreamingHealth(
                    clients: clients.figures, maxClients: settings.maxClients, subscribers: bus.subscribers,
                    bus: bus.counters, intake: bus.intake))
        }
        get("/v1/ports") { [daemon] _, _ in try Self.json(await daemon.ports()) }
        get("/v1/ports/:name") { [daemon, clients] _, context in
            let name = try RequestParameters.portName(context.parameters.get("name"), clients: clients)
            guard let port = await daemon.ports().first(where: { $0.name == name }) else {
                clients.badRequest("unknown_port")
                throw APIError(.notFound, "no port \"\(name)\"")
            }
            return try Self.json(port)
        }
        get("/v1/ports/:name/bars") { [daemon, clients] request, context in
            let name = try RequestParameters.portName(context.parameters.get("name"), clients: clients)
            let intervals = await daemon.channels.barIntervals()
            var interval = intervals.first ?? 0
            if let ms = try RequestParameters.integer(
                request, "interval_ms", in: RequestParameters.intervalMs, clients: clients)
            {
                // In range, so the product fits: at most 86 400 000 000 µs.
                let micros = ms * 1000
                guard intervals.contains(micros) else {
                    clients.badRequest("bad_parameter")
                    throw APIError(
                        .badRequest,
                        "interval_ms must be one of the configured bar lengths: "
                            + intervals.map { String($0 / 1000) }.joined(separator: ", "),
                        parameter: "interval_ms")
                }
                interval = micros
            }
            guard let bars = await daemon.channels.bars(port: name, intervalMicros: interval) else {
                clients.badRequest("unknown_port")
                throw APIError(.notFound, "no counters for port \"\(name)\"")
            }
            return try Self.json(
                BarsAnswer(port: name, intervalMs: interval / 1000, bars: bars.map(BusEventData.Bar.init)))
        }
        get("/v1/alerts") { [daemon] _, _ in
            try Self.json(AlertsAnswer(active: await daemon.channels.activeAlerts()))
        }
        get("/v1/channels") { [daemon] _, _ in try Self.json(await daemon.channels.figures()) }
        get("/v1/stats") { [daemon] _, _ in
            let report = await daemon.report()
            return try Self.json(report.pipeline ?? PipelineSnapshot())
        }
        get("/v1/trace/:id") { [daemon, clients] _, context in
            let id = try RequestParameters.traceID(context.parameters.get("id"), clients: clients)
            let events = await daemon.trace(id)
            guard !events.isEmpty else {
                throw APIError(.notFound, "trace \(id) is unknown or no longer in the stage event ring")
            }
            return try Self.json(TraceAnswer(trace: id, events: events))
        }
        get("/metrics") { [daemon, clients, settings, connections] _, _ in
            var text = MetricsExposition.text(await daemon.report())
            let bus = await daemon.events.figures()
            text += StreamingHealth(
                clients: clients.figures, maxClients: settings.maxClients, subscribers: bus.subscribers,
                bus: bus.counters, intake: bus.intake
            ).metrics()
            text += connections.metrics()
            text += PortMetrics.text(await daemon.ports())
            text += ChannelMetrics.text(await daemon.channels.figures(), alerts: await daemon.channels.activeAlerts())
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        routes.add(Self.ssePath)
        routes.add(Self.webSocketPath)
        self.addStreams(to: router)
        return router
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func resource(_ name: String, type: String) throws -> Response {
        guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Resources"),
            let data = try? Data(contentsOf: url)
        else { throw APIError(.notFound, "\(name) is not installed") }
        return Response(
            status: .ok, headers: [.contentType: type, .cacheControl: "no-cache"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// An error answer: a status, the JSON error body (`ErrorBody`) with a message and, for a bad parameter, its name,
/// and any headers the status calls for (`Allow`, `WWW-Authenticate`, `Sec-WebSocket-Version`).
struct APIError: Error, HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String
    let parameter: String?
    let headers: HTTPFields

    init(_ status: HTTPResponse.Status, _ message: String, parameter: String? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.parameter = parameter
        self.headers = headers
    }

    func response(from request: Request, context: some RequestContext) throws -> Response { self.response }

    var response: Response {
        var headers = self.headers
        headers[.contentType] = ErrorBody.contentType
        return Response(
            status: self.status, headers: headers,
            body: .init(byteBuffer: ByteBuffer(bytes: ErrorBody.data(self.message, parameter: self.parameter))))
    }
}

/// First around every route: whatever is thrown becomes the JSON error body (Hummingbird's own `HTTPError`
/// included); anything that is not an HTTP error is a 500, logged.
struct ErrorMiddleware: RouterMiddleware {
    let logger: Logger

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return error.response
        } catch let error as HTTPError {
            return APIError(error.status, error.body ?? error.status.reasonPhrase, headers: error.headers).response
        } catch {
            self.logger.error(
                "HTTP request to \(EventFilter.printableName(request.uri.path)) failed: \(error)",
                metadata: ["EVENT": "http_error"])
            return APIError(.internalServerError, "internal error").response
        }
    }
}

/// The paths served and the methods each takes, filled while the routes are added.
final class RouteTable: Sendable {
    private let patterns = Mutex<[[Substring]]>([])

    func add(_ path: String) {
        self.patterns.withLock { $0.append(path.split(separator: "/")) }
    }

    /// Whether `path` is one of the routes (`:name` matches any one segment).
    func knows(_ path: String) -> Bool {
        let segments = path.split(separator: "/")
        return self.patterns.withLock { patterns in
            patterns.contains { pattern in
                pattern.count == segments.count
                    && zip(pattern, segments).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
            }
        }
    }

    /// Every route takes GET and HEAD.
    static let allowed: [HTTPRequest.Method] = [.get, .head]
}

/// An unknown path: 404 with the JSON error body; a method a known path does not take: 405 with `Allow`.
struct RoutingMiddleware: RouterMiddleware {
    let routes: RouteTable
    let clients: StreamClients

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard self.routes.knows(request.uri.path) else {
            self.clients.badRequest("not_found")
            throw APIError(.notFound, "no such path: \(EventFilter.printableName(request.uri.path))")
        }
        guard RouteTable.allowed.contains(request.method) else {
            self.clients.badRequest("method_not_allowed")
            throw APIError(
                .methodNotAllowed,
                "\(EventFilter.printableName(request.method.rawValue)) is not allowed here; use GET or HEAD",
                headers: [.allow: RouteTable.allowed.map(\.rawValue).joined(separator: ", ")])
        }
        return try await next(request, context)
    }
}

/// Request values parsed into bounded types: nothing taken from a request reaches arithmetic that could trap.
/// A malformed or out-of-range value is a 400 naming the parameter and what it takes.
enum RequestParameters {
    /// `interval_ms`: the range `channels.bar_intervals_ms` allows.
    static let intervalMs: ClosedRange<UInt64> = 1000...86_400_000

    /// A decimal integer parameter of the query, in `range`; nil when absent.
    static func integer(
        _ request: Request, _ name: String, in range: ClosedRange<UInt64>, clients: StreamClients
    ) throws -> UInt64? {
        let values = request.uri.queryParameters[values: Substring(name)]
        guard let text = values.first else { return nil }
        guard values.count == 1, let value = Self.decimal(text), range.contains(value) else {
            clients.badRequest("bad_parameter")
            throw APIError(
                .badRequest,
                "\(name) must be given once, as a decimal integer in \(range.lowerBound)...\(range.upperBound)",
                parameter: name)
        }
        return value
    }

    /// `/v1/trace/{id}`: a decimal integer in 0...2^64-1.
    static func traceID(_ text: String?, clients: StreamClients) throws -> UInt64 {
        guard let text, let id = Self.decimal(Substring(text)) else {
            clients.badRequest("bad_trace_id")
            throw APIError(
                .badRequest, "id must be a decimal integer in 0...\(UInt64.max)", parameter: "id")
        }
        return id
    }

    /// A port name in a path: 1 to 15 of `A-Z a-z 0-9 . _ -` (what may reach a Redis key; IFNAMSIZ).
    static func portName(_ text: String?, clients: StreamClients) throws -> String {
        guard let text, Self.isPortName(text) else {
            clients.badRequest("bad_parameter")
            throw APIError(
                .badRequest, "name must be 1 to 15 of the characters A-Z a-z 0-9 . _ -", parameter: "name")
        }
        return text
    }

    static func isPortName(_ text: String) -> Bool {
        (1...15).contains(text.utf8.count)
            && text.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                    true
                default: false
                }
            }
    }

    /// Digits only (no sign, space or prefix), at most 20 of them, and the value fits in 64 bits.
    static func decimal(_ text: Substring) -> UInt64? {
        guard (1...20).contains(text.utf8.count),
            text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else { return nil }
        return UInt64(text)
    }
}

/// The bearer token in force (`http.bearer_token`, or the content of `http.bearer_token_file`), replaced on reload.
final class BearerToken: Sendable {
    private let bytes: Mutex<[UInt8]>

    init(_ token: String) { self.bytes = Mutex(Array(token.utf8)) }

    /// Replaces the token; whether it changed.
    func replace(with token: String) -> Bool {
        self.bytes.withLock { bytes in
            let new = Array(token.utf8)
            defer { bytes = new }
            return bytes != new
        }
    }

    var isEmpty: Bool { self.bytes.withLock { $0.isEmpty } }

    /// Whether `candidate` is the token, in time that depends on the token's length only, not on where the first
    /// difference is.
    func matches(_ candidate: Substring) -> Bool {
        let given = Array(candidate.utf8)
        return self.bytes.withLock { token in
            guard !token.isEmpty else { return false }
            var difference = UInt64(truncatingIfNeeded: given.count ^ token.count)
            for index in token.indices {
                let other = given.isEmpty ? 0 : given[index % given.count]
                difference |= UInt64(other ^ token[index])
            }
            return difference == 0
        }
    }
}

/// `Authorization: Bearer <token>` on every path but the open ones (`open`), when a token is configured. The SSE stream
/// also takes `?access_token=` (browsers' EventSource cannot send headers; the query is never logged). A WebSocket
/// upgrade is let through: the stream checks the header itself after the upgrade, so that a refusal is a close
/// code with a reason; a request on the WebSocket path that is not an upgrade is checked here (401 first).
struct BearerTokenMiddleware: RouterMiddleware {
    let token: BearerToken
    let clients: StreamClients
    let logger: Logger

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let path = request.uri.path
        guard !self.token.isEmpty, !Self.open(path),
            !(path == HTTPServer.webSocketPath && request.headers[.upgrade] != nil)
        else {
            return try await next(request, context)
        }
        guard Self.authorized(request, self.token) else {
            self.clients.badRequest("unauthorized")
            self.logger.warning(
                "HTTP request to \(EventFilter.printableName(path)) refused: missing or wrong bearer token",
                metadata: ["EVENT": "http_unauthorized", "REASON": "unauthorized"])
            throw APIError(
                .unauthorized, "a bearer token is required (Authorization: Bearer <token>)",
                headers: [.wwwAuthenticate: "Bearer realm=\"portsyncd\""])
        }
        return try await next(request, context)
    }
}

extension BearerTokenMiddleware {
    /// The health checks, and what holds no state: the dashboard's page (it asks for the token and sends it with
    /// each request) and the OpenAPI document.
    static func open(_ path: String) -> Bool {
        path.hasPrefix("/v1/health") || path == "/" || path == "/v1/openapi.json"
    }

    /// Whether `request` carries `token`: in `Authorization: Bearer` (the scheme in any case), or, on the SSE path
    /// only, as `?access_token=`.
    static func authorized(_ request: Request, _ token: BearerToken) -> Bool {
        if let header = request.headers[.authorization], let given = Self.bearer(header) {
            return token.matches(given)
        }
        if request.uri.path == HTTPServer.ssePath,
            let query = request.uri.queryParameters[values: "access_token"].first
        {
            return token.matches(query)
        }
        return false
    }

    /// The token of an `Authorization: Bearer <token>` value.
    static func bearer(_ header: String) -> Substring? {
        let value = header[...]
        guard value.utf8.count > 7, value.prefix(6).lowercased() == "bearer", value.dropFirst(6).first == " " else {
            return nil
        }
        let token = value.dropFirst(7).drop { $0 == " " }
        return token.isEmpty ? nil : token
    }
}

/// The stage events of one trace.
struct TraceAnswer: Encodable {
    let trace: UInt64
    let events: [StageEvent]
}

/// `/v1/ports/{name}/bars`: a port's closed bars of one length, oldest first.
struct BarsAnswer: Encodable {
    let port: String
    let intervalMs: UInt64
    let bars: [BusEventData.Bar]

    enum CodingKeys: String, CodingKey {
        case port, bars
        case intervalMs = "interval_ms"
    }
}

/// `/v1/alerts`: the alerts active now, most severe first.
struct AlertsAnswer: Encodable {
    let active: [ActiveAlert]

    init(active: [ActiveAlert]) {
        self.active = active.sorted { ($1.severity, $0.rule, $0.subject) < ($0.severity, $1.rule, $1.subject) }
    }
}

/// The channel shards' metrics: labels are shard indexes (at most `channels.workers`), rule names (from the
/// file) and severities, never raw input.
enum ChannelMetrics {
    static func text(_ figures: ChannelFigures, alerts: [ActiveAlert]) -> String {
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ help: String, _ value: (ChannelFigures.Shard) -> Double) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for shard in figures.shards {
                lines.append("\(name){shard=\"\(shard.index)\"} \(MetricsExposition.number(value(shard)))")
            }
        }
        family("portsyncd_channel_ports", "gauge", "Ports a channel shard holds.") { Double($0.ports) }
        family("portsyncd_channel_queue_depth", "gauge", "Inputs waiting in a channel shard's intake.") {
            Double($0.queueDepth)
        }
        family("portsyncd_channel_inputs_total", "counter", "Inputs a channel shard has processed.") {
            Double($0.processed)
        }
        family("portsyncd_channel_inputs_dropped_total", "counter", "Inputs refused by a full channel intake.") {
            Double($0.dropped)
        }
        family(
            "portsyncd_channel_inputs_coalesced_total", "counter",
            "Inputs replaced in a full channel intake by a later one of the same port."
        ) { Double($0.coalesced) }
        family(
            "portsyncd_channel_duplicates_folded_total", "counter",
            "Identical consecutive kernel messages folded into one link-channel event."
        ) { Double($0.duplicatesFolded) }
        family(
            "portsyncd_channel_latency_p99_seconds", "gauge",
            "99th percentile of a channel shard's processing latency (intake to published) since start."
        ) { Double($0.latency.p99) / 1_000_000 }
        lines.append("# HELP portsyncd_alerts_active Alerts active now, by rule and severity.")
        lines.append("# TYPE portsyncd_alerts_active gauge")
        var active: [String: Int] = [:]
        for alert in alerts { active["\(alert.rule)\u{0}\(alert.severity.rawValue)", default: 0] += 1 }
        for key in active.keys.sorted() {
            let parts = key.split(separator: "\u{0}")
            lines.append("portsyncd_alerts_active{rule=\"\(parts[0])\",severity=\"\(parts[1])\"} \(active[key] ?? 0)")
        }
        lines.append("# HELP portsyncd_alert_repeats_suppressed_total Repeats of active alerts suppressed, by rule.")
        lines.append("# TYPE portsyncd_alert_repeats_suppressed_total counter")
        var suppressed: [String: UInt64] = [:]
        for shard in figures.shards {
            for (rule, count) in shard.suppressed { suppressed[rule, default: 0] += count }
        }
        for rule in suppressed.keys.sorted() {
            lines.append("portsyncd_alert_repeats_suppressed_total{rule=\"\(rule)\"} \(suppressed[rule] ?? 0)")
        }
        lines.append(
            "# HELP portsyncd_alert_events_held_total Alert events held back by flood control (alerts.flood_limit), by rule."
        )
        lines.append("# TYPE portsyncd_alert_events_held_total counter")
        var held: [String: UInt64] = [:]
        for shard in figures.shards {
            for (rule, count) in shard.floodHeld { held[rule, default: 0] += count }
        }
        for rule in held.keys.sorted() {
            lines.append("portsyncd_alert_events_held_total{rule=\"\(rule)\"} \(held[rule] ?? 0)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// `/v1/health`: live (the process answers and no critical worker is stalled) and ready (synced, Redis up, no
/// critical worker stalled), with each component and its reason.
struct Health: Encodable {
    struct Component: Encodable {
        let ok: Bool
        let reason: String
    }

    let live: Bool
    let ready: Bool
    let state: String
    /// `cold`, `warm` or `rejoin` (nil while start-up has not decided).
    let startKind: String?
    let components: [String: Component]

    enum CodingKeys: String, CodingKey {
        case live, ready, state, components
        case startKind = "start_kind"
    }

    var liveOnly: [String: Bool] { ["live": self.live] }

    init(_ report: DaemonReport) {
        let stalled = report.watchdogWithheldBy
        let degraded = report.degradedWorkers
        let worker = { (name: String) -> WorkerStatus? in report.workers.first { $0.name == name } }
        let netlink = worker("netlink")
        var components: [String: Component] = [
            "netlink": Component(
                ok: netlink?.phase == .running,
                reason: netlink.map { "worker \($0.phase.rawValue)" + ($0.lastError.map { ": \($0)" } ?? "") }
                    ?? report.startupStatus ?? "starting"),
            "redis": Component(
                ok: report.redisConnected && !report.redisStalled,
                reason: report.redisStalled
                    ? "stalled: a write unanswered for \(report.redisOldestWriteMicros / 1000) ms"
                    : report.redis),
            "workers": Component(
                ok: degraded.isEmpty,
                reason: degraded.isEmpty
                    ? "\(report.workers.count) running"
                    : degraded.map { "\($0.name) \($0.phase.rawValue)" }.joined(separator: ", ")),
            "config": Component(
                ok: report.reload.successful,
                reason: report.reload.error.map { "refused, old kept: \($0)" } ?? "loaded"),
        ]
        if !report.reload.pendingRestart.isEmpty {
            components["config"] = Component(
                ok: report.reload.successful,
                reason: "restart to apply " + report.reload.pendingRestart.joined(separator: " "))
        }
        // Informational: ready does not depend on it. A port SAI never created is orchagent's matter, and a
        // readiness probe that fails for it would hide a daemon doing its job; the metric is there to alert on.
        components["ports"] = Component(
            ok: report.unsyncedSummary == nil,
            reason: report.unsyncedSummary
                ?? "\(report.portsSynced) synced, \(report.portsConfigured) configured, \(report.portsIgnored) old interfaces ignored"
        )
        self.live = stalled.isEmpty
        self.ready = report.phase == .ready && report.redisConnected && !report.redisStalled && stalled.isEmpty
        self.state = report.phase.rawValue
        self.startKind = report.startKind
        self.components = components
    }
}

/// `/v1/health/streaming` and the stream metrics.
struct StreamingHealth: Encodable {
    let clients: StreamClients.Figures
    let maxClients: Int
    let subscribers: Int
    let bus: EventBusState.Counters
    let intake: EventBus.IntakeCounters

    func metrics() -> String {
        var lines = [
            "# HELP portsyncd_stream_clients Stream clients connected.", "# TYPE portsyncd_stream_clients gauge",
            "portsyncd_stream_clients{kind=\"sse\"} \(self.clients.sse)",
            "portsyncd_stream_clients{kind=\"websocket\"} \(self.clients.websocket)",
            "# HELP portsyncd_stream_clients_refused_total Stream clients refused (max_clients).",
            "# TYPE portsyncd_stream_clients_refused_total counter",
            "portsyncd_stream_clients_refused_total \(self.clients.refused)",
            "# HELP portsyncd_stream_clients_closed_total Stream clients gone, by reason.",
            "# TYPE portsyncd_stream_clients_closed_total counter",
        ]
        for reason in ["client", "slow", "shutdown", "error"] {
            lines.append(
                "portsyncd_stream_clients_closed_total{reason=\"\(reason)\"} \(self.clients.closed[reason] ?? 0)")
        }
        lines += [
            "# HELP portsyncd_http_bad_requests_total Requests refused, by reason.",
            "# TYPE portsyncd_http_bad_requests_total counter",
        ]
        for reason in StreamingHealth.badRequestReasons {
            lines.append(
                "portsyncd_http_bad_requests_total{reason=\"\(reason)\"} \(self.clients.badRequests[reason] ?? 0)")
        }
        lines += [
            "# HELP portsyncd_events_published_total Events published on the bus, by type.",
            "# TYPE portsyncd_events_published_total counter",
        ]
        for type in BusEventType.allCases {
            lines.append(
                "portsyncd_events_published_total{type=\"\(type.rawValue)\"} \(self.bus.published[type.rawValue] ?? 0)")
        }
        lines += [
            "# HELP portsyncd_events_dropped_total Events dropped at the bus's intake (full), by priority.",
            "# TYPE portsyncd_events_dropped_total counter",
        ]
        for priority in BusPriority.allCases {
            lines.append(
                "portsyncd_events_dropped_total{priority=\"\(priority.rawValue)\"} \(self.intake.dropped[priority.rawValue] ?? 0)"
            )
        }
        lines += [
            "# HELP portsyncd_events_coalesced_total Events replaced at the bus's full intake by a later one of the "
                + "same port and kind, by priority.",
            "# TYPE portsyncd_events_coalesced_total counter",
        ]
        for priority in BusPriority.allCases {
            lines.append(
                "portsyncd_events_coalesced_total{priority=\"\(priority.rawValue)\"} \(self.intake.coalesced[priority.rawValue] ?? 0)"
            )
        }
        lines += [
            "# HELP portsyncd_stream_events_dropped_total Low-priority events dropped for slow clients.",
            "# TYPE portsyncd_stream_events_dropped_total counter",
            "portsyncd_stream_events_dropped_total \(self.bus.clientDroppedLow)",
            "# HELP portsyncd_stream_fanout_yields_total Times the stream's fan-out stepped aside while the port path "
                + "was busy (events.fanout_yield_ms).",
            "# TYPE portsyncd_stream_fanout_yields_total counter",
            "portsyncd_stream_fanout_yields_total \(self.bus.fanoutYields)",
            "# HELP portsyncd_stream_fanout_yield_timeouts_total Times the fan-out went on after its longest wait with "
                + "the port path still busy.",
            "# TYPE portsyncd_stream_fanout_yield_timeouts_total counter",
            "portsyncd_stream_fanout_yield_timeouts_total \(self.bus.fanoutYieldTimeouts)",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    static let badRequestReasons = [
        "bad_filter", "unauthorized", "unknown_port", "bad_trace_id", "too_many_clients", "bad_ws_message",
        "bad_parameter", "not_found", "method_not_allowed", "header_too_large", "malformed", "bad_version",
        "bad_websocket_handshake",
    ]

    enum CodingKeys: String, CodingKey {
        case clients, subscribers, bus, intake
        case maxClients = "max_clients"
    }
}

/// Per-port series, for configured ports only (a bounded label set: never a name only the kernel supplied).
enum PortMetrics {
    static func text(_ ports: [PortView]) -> String {
        let configured = ports.filter(\.configured)
        var lines: [String] = []
        let families: [(String, String, String, (PortView) -> Double?)] = [
            ("portsyncd_port_oper_up", "gauge", "1 while the port is running.", { $0.oper.map { $0 == "up" ? 1 : 0 } }),
            (
                "portsyncd_port_admin_up", "gauge", "1 while the port is administratively up.",
                {
                    $0.admin.map { $0 == "up" ? 1 : 0 }
                }
            ),
            ("portsyncd_port_mtu_bytes", "gauge", "The port's MTU.", { $0.mtu.map(Double.init) }),
            (
                "portsyncd_port_carrier_changes_total", "counter", "The kernel's carrier-change count.",
                {
                    $0.carrierChanges.map(Double.init)
                }
            ),
            (
                "portsyncd_port_state_synced", "gauge", "1 while STATE_DB holds the port's latest state.",
                {
                    $0.redis == .synced ? 1 : 0
                }
            ),
        ]
        for (name, type, help, value) in families {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for port in configured {
                if let sample = value(port) { lines.append("\(name){port=\"\(port.name)\"} \(Int64(sample))") }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension EventFilter {
    /// A name for an error message: printable ASCII, at most 40 characters.
    static func printableName(_ name: String) -> String {
        String(
            name.unicodeScalars.prefix(40).map { $0.isASCII && $0.value >= 0x20 && $0 != "\"" ? Character($0) : "?" })
    }
}
