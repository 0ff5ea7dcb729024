import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import PortSyncCore
import PortSyncRuntime

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
    func makeRouter() -> Router<Context> {
        let router = Router(context: Context.self)
        router.add(
            middleware: BearerTokenMiddleware(
                token: self.settings.bearerToken, clients: self.clients, logger: self.logger))
        router.get("/") { _, _ in try Self.resource("index.html", type: "text/html; charset=utf-8") }
        router.get("/v1/openapi.json") { _, _ in try Self.resource("openapi.json", type: "application/json") }
        router.get("/v1/health") { [daemon] _, _ in
            let health = Health(await daemon.report())
            return try Self.json(health, status: health.ready ? .ok : .serviceUnavailable)
        }
        router.get("/v1/health/live") { [daemon] _, _ in
            let health = Health(await daemon.report())
            return try Self.json(health.liveOnly, status: health.live ? .ok : .serviceUnavailable)
        }
        router.get("/v1/health/ready") { [daemon] _, _ in
            let health = Health(await daemon.report())
            return try Self.json(health, status: health.ready ? .ok : .serviceUnavailable)
        }
        router.get("/v1/health/streaming") { [daemon, clients, settings] _, _ in
            let bus = await daemon.events.figures()
            return try Self.json(
                StreamingHealth(
                    clients: clients.figures, maxClients: settings.maxClients, subscribers: bus.subscribers,
                    bus: bus.counters, intake: bus.intake))
        }
        router.get("/v1/ports") { [daemon] _, _ in try Self.json(await daemon.ports()) }
        router.get("/v1/ports/:name") { [daemon, clients] _, context in
            let name = context.parameters.get("name") ?? ""
            guard let port = await daemon.ports().first(where: { $0.name == name }) else {
                clients.badRequest("unknown_port")
                throw HTTPError(.notFound, message: "no port \"\(EventFilter.printableName(name))\"")
            }
            return try Self.json(port)
        }
        router.get("/v1/ports/:name/bars") { [daemon, clients] request, context in
            let name = context.parameters.get("name") ?? ""
            let intervals = await daemon.channels.barIntervals()
            var interval = intervals.first ?? 0
            if let text = request.uri.queryParameters.get("interval_ms") {
                guard let ms = UInt64(text), intervals.contains(ms * 1000) else {
                    clients.badRequest("bad_filter")
                    throw HTTPError(
                        .badRequest,
                        message: "interval_ms must be one of the configured bar lengths: "
                            + intervals.map { String($0 / 1000) }.joined(separator: ", "))
                }
                interval = ms * 1000
            }
            guard let bars = await daemon.channels.bars(port: name, intervalMicros: interval) else {
                clients.badRequest("unknown_port")
                throw HTTPError(.notFound, message: "no counters for port \"\(EventFilter.printableName(name))\"")
            }
            return try Self.json(
                BarsAnswer(port: name, intervalMs: interval / 1000, bars: bars.map(BusEventData.Bar.init)))
        }
        router.get("/v1/alerts") { [daemon] _, _ in
            try Self.json(AlertsAnswer(active: await daemon.channels.activeAlerts()))
        }
        router.get("/v1/channels") { [daemon] _, _ in try Self.json(await daemon.channels.figures()) }
        router.get("/v1/stats") { [daemon] _, _ in
            let report = await daemon.report()
            return try Self.json(report.pipeline ?? PipelineSnapshot())
        }
        router.get("/v1/trace/:id") { [daemon, clients] _, context in
            guard let text = context.parameters.get("id"), let id = UInt64(text) else {
                clients.badRequest("bad_trace_id")
                throw HTTPError(.badRequest, message: "a trace id is a decimal number")
            }
            let events = await daemon.trace(id)
            guard !events.isEmpty else {
                throw HTTPError(.notFound, message: "trace \(id) is unknown or no longer in the stage event ring")
            }
            return try Self.json(TraceAnswer(trace: id, events: events))
        }
        router.get("/metrics") { [daemon, clients, settings] _, _ in
            var text = MetricsExposition.text(await daemon.report())
            let bus = await daemon.events.figures()
            text += StreamingHealth(
                clients: clients.figures, maxClients: settings.maxClients, subscribers: bus.subscribers,
                bus: bus.counters, intake: bus.intake
            ).metrics()
            text += PortMetrics.text(await daemon.ports())
            text += ChannelMetrics.text(await daemon.channels.figures(), alerts: await daemon.channels.activeAlerts())
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
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
        else { throw HTTPError(.notFound) }
        return Response(
            status: .ok, headers: [.contentType: type, .cacheControl: "no-cache"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// `Authorization: Bearer <token>` (or `?access_token=`, for EventSource, which cannot set headers) on every path
/// but the health checks, when a token is configured.
struct BearerTokenMiddleware: RouterMiddleware {
    let token: String
    let clients: StreamClients
    let logger: Logger

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        // Health checks are open; the WebSocket route checks the token itself, after the upgrade, so that a refusal
        // is a close code with a reason rather than a bare 400.
        guard !self.token.isEmpty, !request.uri.path.hasPrefix("/v1/health"), request.uri.path != "/v1/ws/events"
        else {
            return try await next(request, context)
        }
        guard Self.authorized(request, self.token) else {
            self.clients.badRequest("unauthorized")
            self.logger.warning(
                "HTTP request to \(EventFilter.printableName(request.uri.path)) refused: missing or wrong bearer token",
                metadata: ["EVENT": "http_unauthorized", "REASON": "unauthorized"])
            throw HTTPError(
                .unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"portsyncd\""],
                message: "a bearer token is required")
        }
        return try await next(request, context)
    }
}

extension BearerTokenMiddleware {
    /// Whether `request` carries `token` (header or `?access_token=`).
    static func authorized(_ request: Request, _ token: String) -> Bool {
        let header = request.headers[.authorization]
        let query = request.uri.queryParameters["access_token"].map(String.init)
        return header == "Bearer \(token)" || query == token
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
