import Dispatch
import Glibc
import Logging
package import PortSyncCore

/// How fast the Redis writer writes, for `portsyncd-bench redis-writer`: the real `PortStateWriter` (hiredis async
/// on Dispatch, on its own serial queue) writing STATE_DB port updates into a Redis server over a unix socket,
/// pipelined as the daemon pipelines them.
///
/// APPL_DB is seeded with every port first, so each update is one conditional write that lands as one `HSET` of
/// four fields in STATE_DB: the count of updates acknowledged per second is in HSET-equivalents per second. The
/// writer is fed the way the pipeline's pump feeds it: whenever it has room, as many updates as fit. It logs at
/// `warning` (the per-write `notice` lines SONiC asks for are the log's cost, not the writer's). In `async` mode
/// the updates alternate between high (a state change) and medium (an MTU change), so two senders share the work.
package enum WriterThroughput {
    package struct Result: Sendable {
        /// Updates given to the writer.
        package var updates: Int
        /// Writes Redis acknowledged as applied (`HSET`s in STATE_DB).
        package var written: Int
        /// From the first update to the last reply.
        package var seconds: Double

        package var perSecond: Double { self.seconds > 0 ? Double(self.written) / self.seconds : 0 }
    }

    /// Writes `updates` updates, round robin over `ports` ports (each flips its port's oper state, as a flap
    /// does), with at most `maxInFlight` writes in flight; throws if Redis cannot be reached or set up.
    package static func measure(
        socketPath: String, ports: Int, updates: Int, maxInFlight: Int, mode: BatchSendMode = .sync,
        timeoutSeconds: Int = 120
    ) throws -> Result {
        let schema = SonicSchema(databases: SonicDatabases(unixSocketPath: socketPath))
        let logger = Logger(label: "portsyncd-bench") { _ in SwiftLogNoOpLogHandler() }
        let names = (0..<ports).map { "Ethernet\($0 * 4)" }
        let client = try RedisBlockingClient(unixSocket: socketPath, timeoutMs: 10_000)
        var seed = [schema.select(schema.databases.appl)]
        seed += names.map { RedisCommand("HSET", schema.applPortKey($0), "admin_status", "up") }
        seed += [schema.select(schema.databases.state)]
        seed += names.map { RedisCommand("DEL", schema.statePortKey($0)) }
        for reply in try client.pipeline(seed) where reply.isError { throw RedisError("seeding failed: \(reply)") }
        let scripts = try SonicStartup(client: client, schema: schema, logger: logger).loadScripts()

        let queue = DispatchQueue(label: "portsyncd-bench.writer")
        let writer = PortStateWriter(
            queue: queue, schema: schema, socketPath: socketPath, scripts: scripts,
            state: PortSyncState(waiting: []), reconnectInitialMs: 100, reconnectMaxMs: 1000, logger: logger)
        writer.maxInFlight = maxInFlight
        writer.sendMode = mode
        let run = Run(writer: writer, names: names, updates: updates)
        let done = DispatchSemaphore(value: 0)
        queue.async {
            writer.start()
            writer.whenIdle { run.begin { done.signal() } }
        }
        guard done.wait(timeout: .now() + .seconds(timeoutSeconds)) == .success else {
            queue.sync { writer.stop() }
            throw RedisError("the writer did not finish \(updates) updates in \(timeoutSeconds) s")
        }
        return queue.sync {
            writer.stop()
            return Result(updates: updates, written: run.written, seconds: run.seconds)
        }
    }

    /// One measurement, confined to the writer's queue.
    private final class Run: @unchecked Sendable {
        let writer: PortStateWriter
        let names: [String]
        let updates: Int
        var next = 0
        var answered = 0
        var written = 0
        var started: UInt64 = 0
        var seconds = 0.0
        var finished: () -> Void = {}

        init(writer: PortStateWriter, names: [String], updates: Int) {
            self.writer = writer
            self.names = names
            self.updates = updates
        }

        func begin(_ finished: @escaping () -> Void) {
            self.finished = finished
            self.writer.onWriteCompleted = { [unowned self] _, outcome, _ in
                self.answered += 1
                if outcome == .done { self.written += 1 }
                if self.answered == self.updates {
                    self.seconds = Double(MonotonicClock.nowMicroseconds() - self.started) / 1_000_000
                    self.finished()
                }
            }
            self.writer.onRoom = { [unowned self] in self.feed() }
            self.started = MonotonicClock.nowMicroseconds()
            self.feed()
            self.writer.endOfBatch()
        }

        /// As the pump: as many updates as the writer has room for (hiredis writes them when the socket is
        /// writable, as for the daemon).
        func feed() {
            while self.next < self.updates {
                let priority: HandoffPriority = self.next % 2 == 0 ? .high : .medium
                guard self.writer.hasRoom(for: priority) else { break }
                let port = self.names[self.next % self.names.count]
                let up = (self.next / self.names.count) % 2 == 0
                self.writer.apply(
                    .state(port: port, PortOperState(adminUp: true, operUp: up, mtu: 9100)), trace: UInt64(self.next),
                    priority: priority)
                self.next += 1
            }
        }
    }
}
