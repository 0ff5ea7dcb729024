public import Dispatch
import Foundation
import Hummingbird
import HummingbirdWebSocket
public import Logging
import NIOCore
public import PortSyncCore
public import PortSyncRuntime
import Synchronization

/// The HTTP API as a supervised worker: Hummingbird on its own event loops, started and stopped from the worker's
/// queue. A failure to bind (the port is taken) is a worker failure: restarted with backoff, and past the
/// intensity the daemon runs without the API (it is `important`, not critical: the port path does not need it).
public final class HTTPServer: SupervisedWorker, @unchecked Sendable {
    public let name = "http"
    public let criticality = WorkerCriticality.important
    public let queue = DispatchQueue(label: "portsyncd.http")
    let settings: Config.HTTP
    let daemon: any DaemonQueries
    let logger: Logger
    let clients = StreamClients()
    private var task: Task<Void, Never>?

    public init(settings: Config.HTTP, daemon: any DaemonQueries, logger: Logger) {
        self.settings = settings
        self.daemon = daemon
        self.logger = logger
    }

    public func start(_ context: WorkerContext) throws {
        let router = self.makeRouter()
        let settings = self.settings
        let logger = self.logger
        let ws = WebSocketServerConfiguration(
            maxFrameSize: 16 * 1024, autoPing: .enabled(timePeriod: .milliseconds(settings.wsPingMs)))
        let app = Application(
            router: router,
            server: .http1WebSocketUpgrade(
                webSocketRouter: router,
                configuration: .init(
                    // An idle HTTP/1 connection (no request, no response byte) is closed; SSE streams beat well
                    // within it.
                    http1: .init(idleTimeout: .milliseconds(Int64(max(60_000, 2 * settings.sseHeartbeatMs)))),
                    ws: ws)),
            configuration: ApplicationConfiguration(address: .hostname(settings.address, port: settings.port)),
            onServerRunning: { channel in
                let address = channel.localAddress.map { "\($0)" } ?? "?"
                logger.notice(
                    "HTTP API listening on \(address)",
                    metadata: ["EVENT": "http_listening", "HTTP_PORT": "\(channel.localAddress?.port ?? 0)"])
            },
            logger: Logger(label: "portsyncd.http", factory: { _ in SwiftLogNoOpLogHandler() }))
        self.task = Task {
            do {
                try await app.run()
            } catch {
                if !Task.isCancelled { context.fail("HTTP server: \(error)") }
            }
        }
    }

    public func stop() {
        self.task?.cancel()
        self.task = nil
    }

    /// Streaming figures for `/v1/health/streaming` and the metrics.
    public var streaming: StreamClients.Figures { self.clients.figures }
}

/// Stream clients by kind, with a ceiling, and why they ended.
public final class StreamClients: Sendable {
    public struct Figures: Sendable, Hashable, Codable {
        public var sse = 0
        public var websocket = 0
        public var refused = 0
        public var closed: [String: UInt64] = [:]
        public var badRequests: [String: UInt64] = [:]
    }

    private let state = Mutex(Figures())

    /// Takes a slot of `kind` if fewer than `max` clients are connected.
    func admit(_ kind: Kind, max: Int) -> Bool {
        self.state.withLock { figures in
            guard figures.sse + figures.websocket < max else {
                figures.refused += 1
                return false
            }
            switch kind {
            case .sse: figures.sse += 1
            case .websocket: figures.websocket += 1
            }
            return true
        }
    }

    func release(_ kind: Kind, reason: String) {
        self.state.withLock { figures in
            switch kind {
            case .sse: figures.sse -= 1
            case .websocket: figures.websocket -= 1
            }
            figures.closed[reason, default: 0] += 1
        }
    }

    func badRequest(_ reason: String) {
        self.state.withLock { $0.badRequests[reason, default: 0] += 1 }
    }

    var figures: Figures { self.state.withLock { $0 } }

    enum Kind: String {
        case sse
        case websocket
    }
}
