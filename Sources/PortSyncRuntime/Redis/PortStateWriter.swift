import Dispatch
import Logging
import PortSyncCore

/// Writes port state to STATE_DB (and `PortInitDone` to APPL_DB) over one asynchronous Redis connection, and
/// keeps Redis equal to the daemon's view across connection loss.
///
/// Every accepted update is recorded in `PortSyncState` first and then sent, pipelined, in arrival order, so
/// per-port order is the connection's order. When the connection drops, the writer reconnects with exponential
/// backoff and writes the latest wanted state of every port again. It never sends `PortConfigDone` or copies
/// CONFIG_DB again: those are start-up writes (statement 27).
///
/// Threading: confined to `queue` (the port queue); asserted on entry.
final class PortStateWriter: @unchecked Sendable {
    struct Counters {
        var stateWrites = 0
        var stateDeletes = 0
        var notInPortTable = 0
        var errorReplies = 0
        var reconnects = 0
        var resyncedPorts = 0
        var retries = 0
    }

    let queue: DispatchQueue
    private let schema: SonicSchema
    private let socketPath: String
    private let scripts: SonicScriptHashes
    private let logger: Logger
    private let backoff: (initialMs: Int, maxMs: Int)
    private var connection: RedisConnection
    private var connected = false
    private var stopped = false
    private var nextDelayMs: Int
    private var idleWaiters: [() -> Void] = []
    /// Called when Redis refuses a write SONiC treats as fatal (statement 27); it ends the process.
    var onFatal: (String) -> Void = { _ in }
    /// Called once per port write when its reply is in (the pipeline's `write` stage): the trace, the outcome and
    /// the reason. Room has been freed in the window when it runs.
    var onWriteCompleted: (UInt64, StageOutcome, StageReason) -> Void = { _, _, _ in }
    /// Redis commands in flight at most before `hasRoom` turns false.
    var maxInFlight = 1024
    /// Error replies to a port write are retried this many times, after `retryDelayMicros`, with the port's latest
    /// wanted state (never an older one, so per-port order holds).
    var maxRetries = 3
    var retryDelayMicros = 100
    private var retries: [String: Int] = [:]
    /// From sending a port write to its reply, in µs.
    private(set) var latency = LatencyHistogram()
    /// The trace of the last write sent per port: a retry is only for the newest one.
    private var lastSent: [String: UInt64] = [:]
    /// The trace of the latest update recorded per port: a resync writes it under that trace.
    private var lastTrace: [String: UInt64] = [:]

    private(set) var state: PortSyncState
    private(set) var counters = Counters()
    private(set) var lastError: String?
    /// What the status line says about Redis.
    private(set) var connectionState = "connecting"

    init(
        queue: DispatchQueue, schema: SonicSchema, socketPath: String, scripts: SonicScriptHashes,
        state: PortSyncState, reconnectInitialMs: Int, reconnectMaxMs: Int, logger: Logger
    ) {
        self.queue = queue
        self.schema = schema
        self.socketPath = socketPath
        self.scripts = scripts
        self.state = state
        self.logger = logger
        self.backoff = (reconnectInitialMs, reconnectMaxMs)
        self.nextDelayMs = reconnectInitialMs
        self.connection = RedisConnection(queue: queue)
    }

    /// Connected, as far as both the writer and hiredis know (hiredis may have dropped the connection a moment
    /// before the writer hears of it).
    var isConnected: Bool { self.connected && self.connection.isConnected }
    /// Commands sent and not yet answered.
    var pendingCount: Int { self.connection.pendingCount }

    /// Whether another update can be taken now. While disconnected, updates are only recorded (the reconnect
    /// writes the latest of each port), so there is always room.
    var hasRoom: Bool { !self.isConnected || self.connection.pendingCount < self.maxInFlight }

    /// Connects (and keeps reconnecting after any loss) until `stop()`.
    func start() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.connect()
    }

    /// Records `update` and writes it if connected (otherwise the reconnect writes it).
    func apply(_ update: PortUpdate, trace: UInt64) {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.state.record(update)
        self.lastTrace[update.port] = trace
        guard self.isConnected else { return }
        self.send(update, trace: trace)
    }

    /// The end of a batch of kernel messages: write `PortInitDone` if its time has come, then flush.
    func endOfBatch() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.writeInitDoneIfReady()
        self.connection.flush()
    }

    /// Runs `body` once nothing is in flight and the connection is up (every recorded update is in Redis).
    func whenIdle(_ body: @escaping () -> Void) {
        dispatchPrecondition(condition: .onQueue(self.queue))
        if self.isConnected && self.connection.pendingCount == 0 {
            body()
        } else {
            self.idleWaiters.append(body)
        }
    }

    /// Runs the idle waiters if nothing is in flight (a periodic safety net besides the per-reply check).
    func checkIdle() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.replyDone()
    }

    /// Stops reconnecting and closes the connection.
    func stop() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.stopped = true
        self.connection.close()
        self.connected = false
    }

    /// Starts again after `stop()` (a supervisor restart): a new connection, and the latest state of every port
    /// written again once it is up, as after a lost connection.
    func restart() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.stopped = false
        self.connected = false
        self.state.connectionLost()
        self.counters.reconnects += 1
        self.connectionState = "reconnecting (restart)"
        self.nextDelayMs = self.backoff.initialMs
        self.connect()
    }

    // MARK: Writes

    private func send(_ update: PortUpdate, trace: UInt64) {
        self.lastSent[update.port] = trace
        let sentAt = MonotonicClock.nowMicroseconds()
        switch update {
        case .state(let port, let operState):
            let command = self.schema.conditionalStateSet(
                port: port, state: operState, scriptSHA: self.scripts.stateSet)
            self.issue(command) { [self] reply in
                self.latency.record(MonotonicClock.nowMicroseconds() &- sentAt)
                self.stateReply(reply, port: port, trace: trace, update: update)
            }
        case .deleted(let port):
            self.issue(self.schema.stateDelete(port: port)) { [self] reply in
                guard let reply else { return }  // connection lost: the reconnect writes everything again
                self.latency.record(MonotonicClock.nowMicroseconds() &- sentAt)
                if case .error(let message) = reply {
                    self.errorReply(message, port: port, trace: trace)
                } else {
                    self.retries[port] = nil
                    self.onWriteCompleted(trace, .done, .none)
                    self.counters.stateDeletes += 1
                    self.logger.notice(
                        "Delete \(port)(ok) from state db",
                        metadata: ["PORT": .string(port), "EVENT": "dellink", "TRACE_ID": "\(trace)"])
                }
            }
        }
    }

    private func stateReply(_ reply: RedisReply?, port: String, trace: UInt64, update: PortUpdate) {
        guard let reply else { return }  // connection lost: the reconnect writes everything again
        switch reply {
        case .integer(1):
            self.retries[port] = nil
            self.onWriteCompleted(trace, .done, .none)
            self.counters.stateWrites += 1
            self.state.stateWriteCompleted(port: port, applied: true)
            if case .state(_, let operState) = update {
                self.logger.notice(
                    "Publish \(port)(ok:\(operState.operUp ? "up" : "down")) to state db",
                    metadata: ["PORT": .string(port), "EVENT": "newlink", "TRACE_ID": "\(trace)"])
            }
        case .integer:
            self.retries[port] = nil
            self.onWriteCompleted(trace, .ignore, .notInPortTable)
            self.counters.notInPortTable += 1
            self.state.stateWriteCompleted(port: port, applied: false)
            self.logger.notice(
                "Cannot find \(port) in port table",
                metadata: ["PORT": .string(port), "EVENT": "newlink", "TRACE_ID": "\(trace)"])
        case .error(let message) where message.hasPrefix("NOSCRIPT"):
            // Someone flushed the script cache: load it again and retry, still in order on this connection.
            self.loadScripts()
            if self.state.wanted[port] != nil { self.send(update, trace: trace) }
        case .error(let message):
            self.errorReply(message, port: port, trace: trace)
        default:
            self.errorReply("unexpected reply \(reply)", port: port, trace: trace)
        }
        self.writeInitDoneIfReady()
    }

    private func errorReply(_ message: String, port: String, trace: UInt64) {
        self.counters.errorReplies += 1
        self.lastError = "Redis: \(message)"
        self.onWriteCompleted(trace, .reject, .redisError)
        let attempt = self.retries[port, default: 0] + 1
        if attempt <= self.maxRetries, self.lastSent[port] == trace {
            self.retries[port] = attempt
            self.counters.retries += 1
            self.queue.asyncAfter(deadline: .now() + .microseconds(self.retryDelayMicros)) { [self] in
                // Only if nothing newer for the port went out meanwhile, and with its latest wanted state.
                guard self.isConnected, self.lastSent[port] == trace, let wanted = self.state.wanted[port] else {
                    return
                }
                switch wanted {
                case .state(let operState): self.send(.state(port: port, operState), trace: trace)
                case .deleted: self.send(.deleted(port: port), trace: trace)
                }
                self.connection.flush()
            }
            return
        }
        self.retries[port] = nil
        self.logger.error(
            "Redis refused the write for \"\(port)\": \(message)",
            metadata: ["PORT": .string(port), "TRACE_ID": "\(trace)"])
    }

    private func writeInitDoneIfReady() {
        guard self.isConnected, self.state.takeInitDoneIfReady() else { return }
        let appl = self.schema.databases.appl
        self.issue(self.schema.select(appl)) { _ in }
        let command = self.schema.producerSet(
            key: SonicSchema.portInitDone, fields: [(Array("lanes".utf8), Array("0".utf8))],
            scriptSHA: self.scripts.producerSet)
        self.issue(command) { [self] reply in
            guard let reply else { return }  // connection lost: the reconnect writes everything again
            let success = !reply.isError
            self.state.initDoneCompleted(success: success)
            if success {
                self.logger.notice("PortInitDone written", metadata: ["EVENT": "port_init_done"])
            } else {
                // Statement 27: Redis refusing PortInitDone is fatal (systemd restarts the service, which then
                // reconciles). A lost connection is not: the write is retried after the reconnect.
                self.lastError = "PortInitDone: \(reply)"
                self.onFatal("Redis refused PortInitDone: \(reply)")
            }
        }
        self.issue(self.schema.select(self.schema.databases.state)) { _ in }
    }

    /// Sends `command`; `handler` gets the reply (`nil`: the connection dropped), then idle waiters are checked.
    private func issue(_ command: RedisCommand, _ handler: @escaping @Sendable (RedisReply?) -> Void) {
        self.connection.send(command) { [self] reply in
            handler(reply)
            // A nil reply means hiredis is tearing the connection down (it fails every pending command before it
            // lets go of the context): nothing is idle then, whatever the count says.
            if reply != nil { self.replyDone() }
        }
    }

    private func replyDone() {
        guard self.isConnected, self.connection.pendingCount == 0, !self.idleWaiters.isEmpty else { return }
        let waiters = self.idleWaiters
        self.idleWaiters = []
        for waiter in waiters { waiter() }
    }

    // MARK: Connection

    private func loadScripts() {
        self.issue(RedisCommand("SCRIPT", "LOAD", SonicScripts.conditionalStateSet)) { _ in }
        self.issue(RedisCommand("SCRIPT", "LOAD", SonicScripts.producerSet)) { _ in }
    }

    private func connect() {
        guard !self.stopped else { return }
        self.connection = RedisConnection(queue: self.queue)
        self.connection.connect(
            unixSocket: self.socketPath,
            connected: { [self] error in
                if let error {
                    self.connectFailed(error.message)
                } else {
                    self.didConnect()
                }
            },
            disconnected: { [self] reason in
                self.connectionLost(reason)
            })
    }

    private func didConnect() {
        let wasReconnect = self.counters.reconnects > 0 || self.connectionState != "connecting"
        self.connected = true
        self.connectionState = "connected"
        self.nextDelayMs = self.backoff.initialMs
        self.issue(self.schema.select(self.schema.databases.state)) { _ in }
        self.loadScripts()
        let resync = self.state.resync
        if wasReconnect {
            self.counters.resyncedPorts += resync.count
            self.logger.notice(
                "Reconnected to Redis; writing the latest state of \(resync.count) ports again",
                metadata: ["EVENT": "redis_reconnected"])
        }
        for update in resync { self.send(update, trace: self.lastTrace[update.port] ?? 0) }
        self.writeInitDoneIfReady()
        // Not flushed here: this runs inside hiredis's write handler, which writes the buffer when it returns.
        self.replyDone()
    }

    private func connectFailed(_ reason: String) {
        self.connected = false
        self.connectionState = "down (\(reason))"
        self.lastError = reason
        self.scheduleReconnect(reason)
    }

    private func connectionLost(_ reason: String) {
        guard !self.stopped else { return }
        self.connected = false
        self.state.connectionLost()
        self.counters.reconnects += 1
        self.connectionState = "down (\(reason))"
        self.lastError = "Redis connection lost: \(reason)"
        self.logger.error(
            "Lost the Redis connection (\(reason)); reconnecting", metadata: ["EVENT": "redis_disconnected"])
        self.scheduleReconnect(reason)
    }

    private func scheduleReconnect(_ reason: String) {
        guard !self.stopped else { return }
        let delay = self.nextDelayMs
        self.nextDelayMs = min(self.nextDelayMs * 2, self.backoff.maxMs)
        self.logger.warning(
            "Redis at \(self.socketPath) is unreachable (\(reason)); retrying in \(delay) ms",
            metadata: ["EVENT": "redis_retry"])
        self.queue.asyncAfter(deadline: .now() + .milliseconds(delay)) { [self] in self.connect() }
    }
}

/// The SHA1 of each script as Redis reported it when loaded at start-up.
struct SonicScriptHashes: Sendable {
    var producerSet: String
    var stateSet: String
}
