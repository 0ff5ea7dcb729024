public import Dispatch
import Foundation
import Glibc
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
public import Logging
import NIOCore
import NIOPosix
public import PortSyncCore
public import PortSyncRuntime
import ServiceLifecycle
import Synchronization

/// The HTTP API as a supervised worker: Hummingbird on its own event loops, started and stopped from the worker's
/// queue. A failure to bind (the port is taken) is a worker failure: restarted with backoff, and past the
/// intensity the daemon runs without the API (it is `important`, not critical: the port path does not need it).
public final class HTTPServer: DrainableWorker, ReloadableWorker, @unchecked Sendable {
    public let name = "http"
    public let criticality = WorkerCriticality.important
    public let queue = DispatchQueue(label: "portsyncd.http")
    let settings: Config.HTTP
    let daemon: any DaemonQueries
    let logger: Logger
    let clients = StreamClients()
    let executors = LoopExecutors()
    /// The bearer token in force: replaced on reload.
    let token: BearerToken
    /// Every connection's figures and limits.
    let connections: HTTPConnections
    private var task: Task<Void, Never>?
    private var group: ServiceGroup?

    public init(settings: Config.HTTP, daemon: any DaemonQueries, logger: Logger) {
        self.settings = settings
        self.daemon = daemon
        self.logger = logger
        self.token = BearerToken(settings.bearerToken)
        self.connections = HTTPConnections(
            limit: Self.connectionLimit(settings.maxConnections, logger: logger),
            headTimeoutMs: settings.requestHeadTimeoutMs, logger: logger)
    }

    /// A reload replaces the bearer token (`http.bearer_token`, or the content of `http.bearer_token_file`).
    public func update(_ config: Config) {
        if self.token.replace(with: config.http.bearerToken) {
            let none = config.http.bearerToken.isEmpty ? ": none any more" : ""
            self.logger.notice(
                "HTTP bearer token replaced\(none)",
                metadata: ["EVENT": "http_token_replaced"])
        }
    }

    /// `http.max_connections`, or fewer if the descriptor limit cannot hold that many with room for the port path:
    /// the soft limit is raised towards the hard one first.
    static func connectionLimit(_ wanted: Int, logger: Logger) -> Int {
        let reserve = 256
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return wanted }
        let needed = rlim_t(wanted + reserve)
        if limit.rlim_cur < needed {
            var raised = limit
            raised.rlim_cur = min(needed, limit.rlim_max)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        guard limit.rlim_cur < needed else { return wanted }
        let allowed = max(16, Int(clamping: limit.rlim_cur) - reserve)
        logger.warning(
            """
            http.max_connections = \(wanted) does not fit the descriptor limit (\(limit.rlim_cur)); serving at most \
            \(allowed) connections (raise LimitNOFILE=)
            """,
            metadata: ["EVENT": "http_fd_limit"])
        return allowed
    }

    public func start(_ context: WorkerContext) throws {
        let settings = self.settings
        // The event loops write the event stream (`StreamSink`): below the port path when the CPUs are busy.
        // Linux keeps a nice value per thread, and `setpriority(PRIO_PROCESS, 0, …)` sets the calling thread's.
        let nice = Int32(settings.threadNice)
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
            loop.execute { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, nice) }
        }
        let router = self.makeRouter()
        let logger = self.logger
        let ws = WebSocketServerConfiguration(
            maxFrameSize: 16 * 1024, autoPing: .enabled(timePeriod: .milliseconds(settings.wsPingMs)))
        // A kept-alive connection with no request in progress; a stream in progress is never idle.
        let http1 = HTTP1Channel.Configuration(
            idleTimeout: .milliseconds(Int64(settings.idleTimeoutMs)),
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: HTTPLimits.maxHeaderBytes, maxHeaderListSize: HTTPLimits.maxHeaderBytes,
                maxHeaderFieldCount: HTTPLimits.maxHeaderCount))
        let connections = self.connections
        let clients = self.clients
        // Without the WebSocket stream, plain HTTP/1: the stream's path is then an ordinary 404.
        let server: HTTPServerBuilder
        if settings.websocket {
            let responder = router.buildResponder()
            server = HTTPServerBuilder { answer in
                GuardedChildChannel(
                    inner: HTTP1WebSocketUpgradeChannel(
                        responder: answer, webSocketResponder: responder, configuration: .init(http1: http1, ws: ws)),
                    connections: connections, clients: clients, webSocketPath: Self.webSocketPath)
            }
        } else {
            server = HTTPServerBuilder { answer in
                GuardedChildChannel(
                    inner: HTTP1Channel(responder: answer, configuration: http1), connections: connections,
                    clients: clients, webSocketPath: nil)
            }
        }
        let app = Application(
            router: router,
            server: server,
            configuration: ApplicationConfiguration(address: .hostname(settings.address, port: settings.port)),
            onServerRunning: { channel in
                // Out of descriptors, the listening socket pauses instead of waking its event loop again and again.
                try? await channel.eventLoop.submit {
                    try channel.pipeline.syncOperations.addHandler(
                        AcceptGuard(connections: connections), position: .first)
                }.get()
                let address = channel.localAddress.map { "\($0)" } ?? "?"
                logger.notice(
                    "HTTP API listening on \(address)",
                    metadata: ["EVENT": "http_listening", "HTTP_PORT": "\(channel.localAddress?.port ?? 0)"])
            },
            logger: Logger(label: "portsyncd.http", factory: { _ in SwiftLogNoOpLogHandler() }))
        let group = ServiceGroup(
            configuration: .init(
                services: [app], logger: Logger(label: "portsyncd.http", factory: { _ in SwiftLogNoOpLogHandler() })))
        self.group = group
        self.task = Task {
            do {
                try await group.run()
            } catch {
                if !Task.isCancelled { context.fail("HTTP server: \(error)") }
            }
        }
    }

    public func stop() {
        self.task?.cancel()
        self.task = nil
        self.group = nil
    }

    /// A graceful shutdown of the server: no new connections, in-flight responses (the streams, which end after
    /// their `shutdown` event) finish and are flushed; then `done`, or after `timeoutMs` whatever is left.
    public func drain(timeoutMs: Int, _ done: @escaping @Sendable () -> Void) {
        self.queue.async {
            guard let group = self.group, let task = self.task else { return done() }
            let once = Once(done)
            Task {
                await group.triggerGracefulShutdown()
                await task.value
                once.run()
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(timeoutMs)) { once.run() }
        }
    }

    /// Streaming figures for `/v1/health/streaming` and the metrics.
    public var streaming: StreamClients.Figures { self.clients.figures }
}

/// A flag set once, read from any task.
final class Flag: Sendable {
    private let state = Mutex(false)
    func set() { self.state.withLock { $0 = true } }
    var isSet: Bool { self.state.withLock { $0 } }
}

/// Runs a closure at most once, from whichever caller comes first.
final class Once: Sendable {
    private let body: Mutex<(@Sendable () -> Void)?>

    init(_ body: @escaping @Sendable () -> Void) { self.body = Mutex(body) }

    func run() {
        let body = self.body.withLock { body -> (@Sendable () -> Void)? in
            defer { body = nil }
            return body
        }
        body?()
    }
}

/// Stream clients by kind, with a ceiling, and why they ended.
public final class StreamClients: Sendable {
    public struct Figures: Sendable, Hashable, Codable {
        public var sse = 0
        public var websocket = 0
        public var refused = 0
        public var closed: [String: UInt64] = [:]
        public var badRequests: [String: UInt64] = [:]

        enum CodingKeys: String, CodingKey {
            case sse, websocket, refused, closed
            case badRequests = "bad_requests"
        }
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
