import Dispatch
import Logging
import PortSyncCore

/// Follows what SONiC changes under a running daemon (contract statements 33 and 34): APPL_DB flushed (swss
/// restarted, `config reload`, Redis restarted empty) and CONFIG_DB `LOGGER|portsyncd` (`swssloglevel`).
///
/// It asks Redis every `intervalMs` over its own blocking connection, on its own queue: one pipelined round trip
/// (`EXISTS` of `PortConfigDone`'s final and temporary hashes, `HMGET` of `LOGGER|portsyncd`), nothing on the port
/// path. Keyspace notifications would not do for the flush: `FLUSHDB`, which swss.sh uses, sends none, and
/// a subscription would still need this check for a server started without `notify-keyspace-events`.
///
/// A flush is `PortConfigDone` gone from both hashes after it was seen in one. orchagent's pop moves a key's
/// fields from the temporary hash to the final one inside one Lua call, so a key being popped is never missing
/// from both: a pop is not a flush. The watcher reports a flush once, then waits to see `PortConfigDone` again
/// (the daemon's cold sync writes it) before it can report another.
///
/// Threading: confined to `queue`.
final class SonicWatcher: SupervisedWorker, @unchecked Sendable {
    let name = "sonic"
    let criticality = WorkerCriticality.important
    let queue = DispatchQueue(label: "portsyncd.sonic")

    /// What one look at Redis found.
    struct Observation: Sendable, Equatable {
        var portConfigDone: Bool
        var logLevel: String?
        var logOutput: String?
    }

    private let socketPath: String
    private let schema: SonicSchema
    private let logger: Logger
    private let intervalMs: Int
    /// `PortConfigDone` is gone from APPL_DB (runs on the watcher's queue).
    private let flushed: @Sendable () -> Void
    /// `LOGGER|portsyncd` changed: its `LOGLEVEL` and `LOGOUTPUT` (runs on the watcher's queue).
    private let logSettings: @Sendable (String?, String?) -> Void

    // Queue only.
    private var client: RedisBlockingClient?
    private var timer: (any DispatchSourceTimer)?
    private var armed = false
    private var last: Observation?
    private var lastFailure: String?
    private(set) var flushesSeen = 0

    /// - Parameters:
    ///   - armed: whether `PortConfigDone` is known to be in APPL_DB now (start-up wrote it or saw it), so that a
    ///     flush before the first look counts.
    ///   - logSettings: `LOGGER|portsyncd`'s `LOGLEVEL` and `LOGOUTPUT` as start-up applied them: only a change
    ///     from these is applied (a reload may have set the level since).
    init(
        socketPath: String, schema: SonicSchema, intervalMs: Int, armed: Bool,
        applied: (level: String?, output: String?), logger: Logger,
        flushed: @escaping @Sendable () -> Void, logSettings: @escaping @Sendable (String?, String?) -> Void
    ) {
        self.socketPath = socketPath
        self.armed = armed
        self.last = Observation(portConfigDone: armed, logLevel: applied.level, logOutput: applied.output)
        self.schema = schema
        self.intervalMs = intervalMs
        self.logger = logger
        self.flushed = flushed
        self.logSettings = logSettings
    }

    func start(_ context: WorkerContext) throws {
        self.timer?.cancel()
        self.timer = DispatchSource.repeating(on: self.queue, every: .milliseconds(self.intervalMs)) {
            [unowned self] in
            self.look()
        }
    }

    func stop() {
        self.timer?.cancel()
        self.timer = nil
        self.client = nil
    }

    /// After a cold sync that failed: report the next absence again.
    func rearm() {
        self.queue.async { self.armed = true }
    }

    private func look() {
        let observation: Observation
        do {
            observation = try self.observe()
            self.lastFailure = nil
        } catch {
            // Redis down or hung: nothing is known, so nothing is decided. The writer reports the connection.
            self.client = nil
            if self.lastFailure != error.message {
                self.lastFailure = error.message
                self.logger.debug(
                    "Cannot look at APPL_DB and LOGGER|portsyncd: \(error.message)", metadata: ["WORKER": "sonic"])
            }
            return
        }
        if observation.portConfigDone {
            self.armed = true
        } else if self.armed {
            self.armed = false
            self.flushesSeen += 1
            self.flushed()
        }
        if observation.logLevel != self.last?.logLevel || observation.logOutput != self.last?.logOutput {
            self.logSettings(observation.logLevel, observation.logOutput)
        }
        self.last = observation
    }

    private func observe() throws(RedisError) -> Observation {
        let client: RedisBlockingClient
        if let existing = self.client {
            client = existing
        } else {
            client = try RedisBlockingClient(unixSocket: self.socketPath, timeoutMs: 1000)
            self.client = client
        }
        let done = SonicSchema.portConfigDone
        let replies = try client.pipeline([
            self.schema.select(self.schema.databases.appl),
            RedisCommand("EXISTS", self.schema.applPortKey(done), self.schema.applProducerKey(done)),
            self.schema.select(self.schema.databases.config),
            RedisCommand("HMGET", self.schema.loggerKey, "LOGLEVEL", "LOGOUTPUT"),
        ])
        for reply in replies {
            if case .error(let message) = reply { throw RedisError(message) }
        }
        guard let count = replies[1].integer, let fields = replies[3].array, fields.count == 2 else {
            throw RedisError("unexpected replies \(replies)")
        }
        return Observation(portConfigDone: count > 0, logLevel: fields[0].string, logOutput: fields[1].string)
    }
}
