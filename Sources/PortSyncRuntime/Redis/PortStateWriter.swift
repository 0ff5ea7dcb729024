import Dispatch
import Logging
import PortSyncCore

/// Writes port state to STATE_DB (and `PortInitDone` to APPL_DB) over asynchronous Redis connections, and keeps
/// Redis equal to the daemon's view across connection loss.
///
/// Every accepted update is recorded in `PortSyncState` first and then sent, pipelined, in arrival order. State
/// writes are batched: the writes of one turn of the queue (at most `StateSender.maxBatch`) leave as one call of
/// `SonicScripts.conditionalStateSetBatch`, which lands in Redis exactly what one conditional write per port would
/// (one `HSET` per port whose APPL_DB entry exists), at a fraction of the cost of one script call per port.
///
/// **Senders** (`pipeline.batch_send_mode`). `sync`: one connection carries everything. `async`: one connection
/// per priority (high, medium, low), each with its own window of `maxInFlight` writes, so a backlog of less urgent
/// writes neither fills the window of the urgent ones nor queues them behind it. Per-port order holds in both: a
/// port's writes in flight all ride one connection (a later write of the port joins the connection of the earlier
/// ones until they are answered), and a retry is only ever of the port's latest state, sent only if nothing newer
/// went out meanwhile. `PortInitDone`, deletes of a resync and the rewrite after a reconnect use the first
/// connection.
///
/// When a connection drops, the writer closes the others, reconnects with exponential backoff and writes the latest
/// wanted state of every port again. It never sends `PortConfigDone` or copies CONFIG_DB again: those are start-up
/// writes (statement 27).
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

    /// What the writer remembers of one port besides its wanted state.
    private struct PortWrites {
        /// The trace of the last write sent: a retry is only for the newest one.
        var lastSent: UInt64 = 0
        /// The trace of the latest update recorded: a resync writes it under that trace.
        var lastTrace: UInt64 = 0
        /// Error replies retried in a row.
        var retries = 0
        /// Writes in flight, and the sender carrying them (all of them ride one connection).
        var inFlight = 0
        var carrier = 0
    }

    let queue: DispatchQueue
    private let schema: SonicSchema
    private let socketPath: String
    private let scripts: SonicScriptHashes
    private let logger: Logger
    private let backoff: (initialMs: Int, maxMs: Int)
    private var senders: [StateSender] = []
    /// Connections of the current attempt that said they are up.
    private var connectedSenders = 0
    private var connected = false
    private var stopped = false
    private var nextDelayMs: Int
    private var idleWaiters: [() -> Void] = []
    private var ports: [String: PortWrites] = [:]
    /// Called when Redis refuses a write SONiC treats as fatal (statement 27); it ends the process.
    var onFatal: (String) -> Void = { _ in }
    /// Called once per port write when its reply is in (the pipeline's `write` stage): the trace, the outcome and
    /// the reason. The write's room in the window has been freed when it runs.
    var onWriteCompleted: (UInt64, StageOutcome, StageReason) -> Void = { _, _, _ in }
    /// Called after each reply that freed room (once per batch of writes, after their `onWriteCompleted`): the
    /// pipeline takes from the hand-off then.
    var onRoom: () -> Void = {}
    /// Port writes in flight at most per sender before `hasRoom` turns false.
    var maxInFlight = 1024
    /// Error replies to a port write are retried this many times, after `retryDelayMicros`, with the port's latest
    /// wanted state (never an older one, so per-port order holds).
    var maxRetries = 3
    var retryDelayMicros = 100
    /// `sync`: one connection; `async`: one per priority. Read when connecting: set it before `start()`.
    var sendMode = BatchSendMode.sync
    /// From sending a port write to its reply, in µs.
    private(set) var latency = LatencyHistogram()

    private(set) var state: PortSyncState
    /// When each sender's unanswered commands were sent, and whether Redis keeps one waiting too long.
    private var outstanding: [OutstandingWrites] = []
    private(set) var stall = RedisStallTracker(thresholdMicros: 1_000_000)
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
    }

    /// Connected, as far as both the writer and hiredis know (hiredis may have dropped a connection a moment
    /// before the writer hears of it).
    var isConnected: Bool {
        self.connected && !self.senders.isEmpty && self.senders.allSatisfy { $0.connection.isConnected }
    }

    /// Port writes sent (or batched) and not yet answered.
    var pendingCount: Int { self.senders.reduce(0) { $0 + $1.taken } }

    /// Set to busy while port writes await Redis's replies (the stream's fan-out steps aside meanwhile).
    var gate: PortPathGate?

    /// Whether port writes are out and their replies awaited (while connected: a lost connection answers none).
    var awaitingReplies: Bool { self.pendingCount > 0 && self.isConnected }

    /// Whether another update can be taken now (in `async` mode: by any sender). While disconnected, updates are
    /// only recorded (the reconnect writes the latest of each port), so there is always room.
    var hasRoom: Bool { !self.isConnected || self.senders.contains { $0.taken < self.maxInFlight } }

    /// Whether the sender of `priority` can take another update (`sync`: the one sender, whatever the priority).
    func hasRoom(for priority: HandoffPriority) -> Bool {
        !self.isConnected || self.senders[self.senderIndex(priority)].taken < self.maxInFlight
    }

    /// Connects (and keeps reconnecting after any loss) until `stop()`.
    func start() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.connect()
    }

    /// Records `update` and writes it if connected (otherwise the reconnect writes it); in `async` mode it counts
    /// against the window of `priority`'s sender.
    func apply(_ update: PortUpdate, trace: UInt64, priority: HandoffPriority = .high) {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.state.record(update)
        let connected = self.isConnected
        self.send(update, trace: trace, taker: connected ? self.senderIndex(priority) : nil)
    }

    /// The end of a batch of kernel messages: write `PortInitDone` if its time has come, then send everything.
    func endOfBatch() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.writeInitDoneIfReady()
        for index in self.senders.indices {
            self.flush(index)
            self.senders[index].connection.flush()
        }
    }

    /// Runs `body` once nothing is in flight and the connection is up (every recorded update is in Redis).
    func whenIdle(_ body: @escaping () -> Void) {
        dispatchPrecondition(condition: .onQueue(self.queue))
        if self.isIdle {
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

    /// Stops reconnecting and closes the connections.
    func stop() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.stopped = true
        self.closeAll()
        self.connected = false
    }

    /// Starts again after `stop()` (a supervisor restart): new connections, and the latest state of every port
    /// written again once they are up, as after a lost connection.
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

    private var isIdle: Bool { self.isConnected && self.senders.allSatisfy(\.isIdle) }

    /// The sender of `priority`: the one sender in `sync` mode.
    private func senderIndex(_ priority: HandoffPriority) -> Int {
        self.senders.count > 1 ? priority.rawValue : 0
    }

    /// Notes the write of `update` for its port and, when `taker` is given (connected), queues it on the
    /// connection carrying the port's writes in flight, else on the taker's own.
    private func send(_ update: PortUpdate, trace: UInt64, taker: Int?) {
        let port = update.port
        let carrier = Self.noteSent(&self.ports[port, default: PortWrites()], trace: trace, taker: taker)
        guard let taker else { return }
        self.senders[taker].taken += 1
        let write = StateSender.Write(port: port, trace: trace, update: update, taker: taker)
        switch update {
        case .state(_, let operState):
            if self.senders[carrier].append(write, state: operState) {
                self.flush(carrier)
            } else {
                self.scheduleFlush(carrier)
            }
        case .deleted:
            self.flush(carrier)
            let sentAt = MonotonicClock.nowMicroseconds()
            self.issue(self.schema.stateDelete(port: port), on: carrier) { [self] reply in
                guard let reply else { return }  // connection lost: the reconnect writes everything again
                self.latency.record(MonotonicClock.nowMicroseconds() &- sentAt)
                self.answered(write)
                if case .error(let message) = reply {
                    self.errorReply(message, write)
                } else {
                    self.ports[port]?.retries = 0
                    self.counters.stateDeletes += 1
                    self.onWriteCompleted(trace, .done, .none)
                    self.logger.notice(
                        "Delete \(port)(ok) from state db",
                        metadata: ["PORT": .string(port), "EVENT": "dellink", "TRACE_ID": "\(trace)"])
                }
                self.onRoom()
            }
        }
    }

    /// Notes a write of the port (sent when `taker` is given) and returns the sender to carry it: the one already
    /// carrying the port's writes in flight, else the taker's own.
    private static func noteSent(_ writes: inout PortWrites, trace: UInt64, taker: Int?) -> Int {
        writes.lastTrace = trace
        guard let taker else { return 0 }
        writes.lastSent = trace
        if writes.inFlight == 0 { writes.carrier = taker }
        writes.inFlight += 1
        return writes.carrier
    }

    /// Sends the batch of sender `index` at the end of this turn of the queue (unless it leaves earlier).
    private func scheduleFlush(_ index: Int) {
        guard !self.senders[index].flushScheduled else { return }
        self.senders[index].flushScheduled = true
        let sender = self.senders[index]
        self.queue.async { [self] in
            sender.flushScheduled = false
            // A reconnect may have replaced the senders since: only this sender's own batch goes.
            guard let current = self.senders.firstIndex(where: { $0 === sender }) else { return }
            self.flush(current)
            sender.connection.flush()
        }
    }

    /// Sends the batch of sender `index` now, as one script call.
    private func flush(_ index: Int) {
        guard let (writes, command) = self.senders[index].takeBatch(schema: self.schema) else { return }
        let sentAt = MonotonicClock.nowMicroseconds()
        self.send(encoded: command, on: index) { [self] reply in
            guard let reply else { return }  // connection lost: the reconnect writes everything again
            let elapsed = MonotonicClock.nowMicroseconds() &- sentAt
            for _ in writes { self.latency.record(elapsed) }
            switch reply {
            case .array(let results):
                guard case .bulk(let outcomes) = results.first, outcomes.count == writes.count else {
                    for write in writes {
                        self.answered(write)
                        self.errorReply("unexpected reply \(reply)", write)
                    }
                    break
                }
                var errors = results.dropFirst().makeIterator()
                for (write, outcome) in zip(writes, outcomes) {
                    switch outcome {
                    case UInt8(ascii: "1"): self.written(write)
                    case UInt8(ascii: "0"): self.notInPortTable(write)
                    default:
                        self.answered(write)
                        let error = errors.next()
                        if case .error(let message) = error {
                            self.errorReply(message, write)
                        } else {
                            self.errorReply("unexpected reply \(error.map(String.init(describing:)) ?? "")", write)
                        }
                    }
                }
            case .error(let message) where message.hasPrefix("NOSCRIPT"):
                // Someone flushed the script cache: load it again and send each port's latest state, still in
                // order on this connection, unless something newer for the port went out meanwhile.
                self.loadScripts(on: index)
                for write in writes {
                    self.answered(write)
                    if self.ports[write.port]?.lastSent == write.trace { self.resendLatest(of: write) }
                }
            case .error(let message):
                for write in writes {
                    self.answered(write)
                    self.errorReply(message, write)
                }
            default:
                for write in writes {
                    self.answered(write)
                    self.errorReply("unexpected reply \(reply)", write)
                }
            }
            self.writeInitDoneIfReady()
            self.onRoom()
        }
    }

    /// A write's reply is in: its room and its port's connection are free again.
    private func answered(_ write: StateSender.Write) {
        self.senders[write.taker].taken -= 1
        self.ports[write.port]?.inFlight -= 1
    }

    /// Redis wrote the port's state (statement 18).
    private func written(_ write: StateSender.Write) {
        self.senders[write.taker].taken -= 1
        Self.noteAnswered(&self.ports[write.port], succeeded: true)
        self.counters.stateWrites += 1
        self.state.stateWriteCompleted(port: write.port, applied: true)
        self.onWriteCompleted(write.trace, .done, .none)
        if case .state(_, let operState) = write.update {
            self.logger.notice(
                "Publish \(write.port)(ok:\(operState.operUp ? "up" : "down")) to state db",
                metadata: ["PORT": .string(write.port), "EVENT": "newlink", "TRACE_ID": "\(write.trace)"])
        }
    }

    /// APPL_DB has no such port: nothing was written, and the port is not seen (statement 18).
    private func notInPortTable(_ write: StateSender.Write) {
        self.senders[write.taker].taken -= 1
        Self.noteAnswered(&self.ports[write.port], succeeded: true)
        self.counters.notInPortTable += 1
        self.state.stateWriteCompleted(port: write.port, applied: false)
        self.onWriteCompleted(write.trace, .ignore, .notInPortTable)
        self.logger.notice(
            "Cannot find \(write.port) in port table",
            metadata: ["PORT": .string(write.port), "EVENT": "newlink", "TRACE_ID": "\(write.trace)"])
    }

    private static func noteAnswered(_ writes: inout PortWrites?, succeeded: Bool) {
        writes?.inFlight -= 1
        if succeeded { writes?.retries = 0 }
    }

    private func errorReply(_ message: String, _ write: StateSender.Write) {
        let port = write.port
        let trace = write.trace
        self.counters.errorReplies += 1
        self.lastError = "Redis: \(message)"
        let attempt = (self.ports[port]?.retries ?? 0) + 1
        if attempt <= self.maxRetries, self.ports[port]?.lastSent == trace {
            self.ports[port]?.retries = attempt
            self.counters.retries += 1
            self.queue.asyncAfter(deadline: .now() + .microseconds(self.retryDelayMicros)) { [self] in
                // Only if nothing newer for the port went out meanwhile, and with its latest wanted state.
                guard self.isConnected, self.ports[port]?.lastSent == trace else { return }
                self.resendLatest(of: write)
                self.endOfBatch()
            }
            self.onWriteCompleted(trace, .reject, .redisError)
            return
        }
        self.onWriteCompleted(trace, .reject, .redisError)
        self.ports[port]?.retries = 0
        self.logger.error(
            "Redis refused the write for \"\(port)\": \(message)",
            metadata: ["PORT": .string(port), "TRACE_ID": "\(trace)"])
    }

    /// Sends the latest wanted state of `write`'s port again, under `write`'s trace, counted against its taker.
    private func resendLatest(of write: StateSender.Write) {
        guard self.isConnected, let wanted = self.state.wanted[write.port] else { return }
        let taker = min(write.taker, self.senders.count - 1)
        switch wanted {
        case .state(let operState): self.send(.state(port: write.port, operState), trace: write.trace, taker: taker)
        case .deleted: self.send(.deleted(port: write.port), trace: write.trace, taker: taker)
        }
    }

    /// A cold start again (statement 33): see `PortSyncState.restartCold`. `PortInitDone` is written once every
    /// configured port is seen again.
    func restartCold(waiting: Set<String>, forgetting old: Set<String>) {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.state.restartCold(waiting: waiting, forgetting: old)
        for port in old { self.ports[port] = nil }
        self.writeInitDoneIfReady()
        for index in self.senders.indices { self.flush(index) }
    }

    /// How long the oldest unanswered command has waited at `now` (µs); 0 when none waits.
    func oldestWaitMicros(now: UInt64) -> UInt64 {
        guard let oldest = self.outstanding.compactMap(\.oldest).min() else { return 0 }
        return now &- oldest
    }

    /// The stall threshold (`redis.stall_threshold_ms`).
    func setStallThreshold(milliseconds: Int) {
        self.stall.thresholdMicros = UInt64(max(0, milliseconds)) * 1000
    }

    /// Looks at the oldest unanswered command now (the reports do, and each reply while stalled): a stall begins
    /// or ends.
    func checkStall(now: UInt64) {
        let oldest = self.outstanding.compactMap(\.oldest).min()
        if let change = self.stall.check(oldest: oldest, now: now) { self.report(change) }
    }

    private func report(_ change: RedisStallTracker.Change) {
        switch change {
        case .began(let waiting):
            self.lastError = "Redis stalled: a write unanswered for \(waiting / 1000) ms"
            self.logger.error(
                "Redis has not answered a write for \(waiting / 1000) ms (threshold \(self.stall.thresholdMicros / 1000) ms): stalled; keeping the connection and every state",
                metadata: ["EVENT": "redis_stalled", "WAIT_MS": "\(waiting / 1000)"])
        case .ended(let lasted):
            self.logger.notice(
                "Redis stall over after \(lasted / 1000) ms",
                metadata: ["EVENT": "redis_recovered", "WAIT_MS": "\(lasted / 1000)"])
        }
    }

    private func writeInitDoneIfReady() {
        guard self.isConnected, self.state.takeInitDoneIfReady() else { return }
        let appl = self.schema.databases.appl
        self.issue(self.schema.select(appl), on: 0) { _ in }
        let command = self.schema.producerSet(
            key: SonicSchema.portInitDone, fields: [(Array("lanes".utf8), Array("0".utf8))],
            scriptSHA: self.scripts.producerSet)
        self.issue(command, on: 0) { [self] reply in
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
        self.issue(self.schema.select(self.schema.databases.state), on: 0) { _ in }
    }

    /// Sends `command` on sender `index`, after its batch (the connection's order is the order of the asks).
    private func issue(
        _ command: RedisCommand, on index: Int, _ handler: @escaping @Sendable (RedisReply?) -> Void
    ) {
        self.flush(index)
        self.send(encoded: command.encoded, on: index, handler)
    }

    /// Sends an encoded command; `handler` gets the reply (`nil`: the connection dropped), then idle waiters are
    /// checked.
    private func send(
        encoded: [UInt8], on index: Int, _ handler: @escaping @Sendable (RedisReply?) -> Void
    ) {
        let sender = self.senders[index]
        self.outstanding[index].sent(at: MonotonicClock.nowMicroseconds())
        sender.connection.send(encoded: encoded) { [self] reply in
            if reply != nil, index < self.senders.count, self.senders[index] === sender,
                let sent = self.outstanding[index].answered()
            {
                let now = MonotonicClock.nowMicroseconds()
                if let change = self.stall.answered(sent: sent, now: now) { self.report(change) }
                if self.stall.stalledSince != nil { self.checkStall(now: now) }
            }
            handler(reply)
            // A nil reply means hiredis is tearing the connection down (it fails every pending command before it
            // lets go of the context): nothing is idle then, whatever the count says.
            if reply != nil { self.replyDone() }
            self.gate?.set(busy: self.awaitingReplies)
        }
    }

    private func replyDone() {
        guard self.isIdle, !self.idleWaiters.isEmpty else { return }
        let waiters = self.idleWaiters
        self.idleWaiters = []
        for waiter in waiters { waiter() }
    }

    // MARK: Connection

    private func loadScripts(on index: Int) {
        self.issue(RedisCommand("SCRIPT", "LOAD", SonicScripts.conditionalStateSetBatch), on: index) { _ in }
        self.issue(RedisCommand("SCRIPT", "LOAD", SonicScripts.producerSet), on: index) { _ in }
    }

    private func connect() {
        guard !self.stopped else { return }
        self.closeAll()
        let count = self.sendMode == .async ? HandoffPriority.allCases.count : 1
        let senders = (0..<count).map { _ in StateSender(queue: self.queue) }
        self.senders = senders
        self.outstanding = Array(repeating: OutstandingWrites(), count: count)
        self.connectedSenders = 0
        for sender in senders {
            // A connection that failed at once has closed this attempt: open no more of it.
            guard self.senders.contains(where: { $0 === sender }) else { break }
            sender.connection.connect(
                unixSocket: self.socketPath,
                connected: { [self] error in
                    // Only the current attempt counts.
                    guard self.senders.contains(where: { $0 === sender }) else { return }
                    if let error {
                        self.connectFailed(error.message)
                    } else {
                        self.connectedSenders += 1
                        if self.connectedSenders == self.senders.count { self.didConnect() }
                    }
                },
                disconnected: { [self] reason in
                    guard self.senders.contains(where: { $0 === sender }) else { return }
                    self.connectionLost(reason)
                })
        }
    }

    /// Closes every connection of the current attempt (pending completions get `nil`) and forgets the senders.
    private func closeAll() {
        let senders = self.senders
        self.senders = []
        self.outstanding = []
        // A lost connection is reported as such, not as a stall.
        self.checkStall(now: MonotonicClock.nowMicroseconds())
        for sender in senders { sender.connection.close() }
        for key in self.ports.keys { self.ports[key]?.inFlight = 0 }
    }

    private func didConnect() {
        let wasReconnect = self.counters.reconnects > 0 || self.connectionState != "connecting"
        self.connected = true
        self.connectionState = "connected"
        self.nextDelayMs = self.backoff.initialMs
        for index in self.senders.indices {
            self.issue(self.schema.select(self.schema.databases.state), on: index) { _ in }
        }
        self.loadScripts(on: 0)
        let resync = self.state.resync
        if wasReconnect {
            self.counters.resyncedPorts += resync.count
            self.logger.notice(
                "Reconnected to Redis; writing the latest state of \(resync.count) ports again",
                metadata: ["EVENT": "redis_reconnected"])
        }
        for update in resync { self.send(update, trace: self.ports[update.port]?.lastTrace ?? 0, taker: 0) }
        self.writeInitDoneIfReady()
        for index in self.senders.indices { self.flush(index) }
        // Not flushed to the socket here: this runs inside hiredis's write handler, which writes the buffer when
        // it returns (the other connections' handlers write theirs).
        self.replyDone()
    }

    private func connectFailed(_ reason: String) {
        self.closeAll()
        self.connected = false
        self.connectionState = "down (\(reason))"
        self.lastError = reason
        self.scheduleReconnect(reason)
    }

    private func connectionLost(_ reason: String) {
        guard !self.stopped else { return }
        self.closeAll()
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
