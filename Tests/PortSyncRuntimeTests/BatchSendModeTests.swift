import Dispatch
import Foundation
import Glibc
import Logging
import PortSyncCore
import Testing

@testable import PortSyncRuntime

/// `pipeline.batch_send_mode`: how the hand-off is drained into Redis, and per-port order in both modes, retries
/// included, through the daemon's own `PortPipeline` and `PortStateWriter` against a real redis-server.
///
/// Redis's error replies here are real: a STATE_DB key holding a string makes the `HSET` fail with `WRONGTYPE`,
/// which is how a write that Redis refuses reaches the writer; deleting the key lets the next attempt through. No
/// test double is used. What the kernel would send is built by hand (`newLink`) and given to
/// `PortPipeline.process(datagram:)`, the function the netlink read source calls. Redis's own record of what it
/// executed, in order, comes from a `MONITOR` connection.
@Suite("Batch send modes (real redis-server)", .serialized)
struct BatchSendModeTests {
    /// A pipeline and its writer on one queue, connected to `server`, with `ports` in APPL_DB.
    final class Rig: @unchecked Sendable {
        let server: RedisServer
        let queue = DispatchQueue(label: "test.port")
        let writer: PortStateWriter
        let pipeline: PortPipeline
        let client: RedisBlockingClient
        let schema: SonicSchema

        init(mode: BatchSendMode, ports: [String], window: Int, retries: Int = 3, retryDelayUs: Int = 100) throws {
            self.server = try RedisServer()
            self.schema = SonicSchema(databases: SonicDatabases(unixSocketPath: self.server.socketPath))
            self.client = try RedisBlockingClient(unixSocket: self.server.socketPath, timeoutMs: 5000)
            _ = try self.client.pipeline(
                [RedisCommand("SELECT", "0")] + ports.map { RedisCommand("HSET", "PORT_TABLE:\($0)", "lanes", "1") })
            let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
            self.writer = PortStateWriter(
                queue: self.queue, schema: self.schema, socketPath: self.server.socketPath,
                scripts: try SonicStartup(client: self.client, schema: self.schema, logger: logger).loadScripts(),
                state: PortSyncState(waiting: []), reconnectInitialMs: 10, reconnectMaxMs: 50, logger: logger)
            self.writer.maxInFlight = window
            self.writer.maxRetries = retries
            self.writer.retryDelayMicros = retryDelayUs
            var settings = Config.Pipeline()
            settings.batchSendMode = mode.rawValue
            settings.writerMaxInFlight = window
            self.pipeline = PortPipeline(
                queue: self.queue, writer: self.writer, settings: settings, oldInterfaces: [], logger: logger)
            let _: Bool = try onQueue(self.queue) { [writer] done in
                writer.start()
                writer.whenIdle { done(true) }
            }
        }

        /// Takes one datagram through the pipeline (on the port queue, as the read source does).
        func process(_ datagram: [UInt8]) {
            datagram.withUnsafeBytes { raw in _ = self.pipeline.process(datagram: raw) }
        }

        /// Waits until every accepted update has left the hand-off and is answered.
        func waitIdle() throws {
            let _: Bool = try onQueue(self.queue, timeout: 30) { done in
                self.writer.endOfBatch()
                self.whenDrained { done(true) }
            }
        }

        private func whenDrained(_ body: @escaping () -> Void) {
            self.writer.whenIdle {
                self.pipeline.pump()
                self.writer.endOfBatch()
                if self.pipeline.isDrained && self.writer.pendingCount == 0 {
                    body()
                } else {
                    self.whenDrained(body)
                }
            }
        }

        /// STATE_DB `PORT_TABLE|<port>`.
        func stateRow(_ port: String) throws -> [String: String] {
            let replies = try self.client.pipeline([
                RedisCommand("SELECT", "6"), RedisCommand("HGETALL", "PORT_TABLE|\(port)"),
            ])
            var row: [String: String] = [:]
            for pair in replies[1].fieldValuePairs ?? [] {
                row[String(decoding: pair.field, as: UTF8.self)] = String(decoding: pair.value, as: UTF8.self)
            }
            return row
        }

        deinit { self.queue.sync { self.writer.stop() } }
    }

    /// An `RTM_NEWLINK` for `name`: admin up, oper up or down, with `mtu`.
    static func newLink(_ name: String, operUp: Bool, mtu: UInt32) -> [UInt8] {
        var attributes: [UInt8] = []
        func attribute(_ type: UInt16, _ payload: [UInt8]) {
            attributes += withUnsafeBytes(of: UInt16(4 + payload.count)) { Array($0) }
            attributes += withUnsafeBytes(of: type) { Array($0) }
            attributes += payload + [UInt8](repeating: 0, count: NetlinkLayout.align(payload.count) - payload.count)
        }
        attribute(LinkAttribute.ifname, Array(name.utf8) + [0])
        attribute(LinkAttribute.mtu, withUnsafeBytes(of: mtu) { Array($0) })
        let flags: InterfaceFlags = operUp ? [.up, .running] : [.up]
        // One ifindex per name, as from the kernel (one ifindex under two names is a rename).
        let ifindex = Int32(name.utf8.reduce(Int32(100)) { ($0 &* 31 &+ Int32($1)) & 0xffff })
        var ifinfo: [UInt8] = [0, 0, 1, 0] + withUnsafeBytes(of: ifindex) { Array($0) }
        ifinfo += withUnsafeBytes(of: flags.rawValue) { Array($0) } + [0xFF, 0xFF, 0xFF, 0xFF]
        let length = UInt32(NetlinkLayout.messageHeader + ifinfo.count + attributes.count)
        return withUnsafeBytes(of: length) { Array($0) } + withUnsafeBytes(of: NetlinkMessageType.newLink) { Array($0) }
            + [UInt8](repeating: 0, count: 10) + ifinfo + attributes
    }

    static func row(operUp: Bool, mtu: UInt32) -> [String: String] {
        ["state": "ok", "netdev_oper_status": operUp ? "up" : "down", "admin_status": "up", "mtu": "\(mtu)"]
    }

    @Test("The batched script's EVALSHA name is the SHA-1 Redis computes for it")
    func scriptName() throws {
        let server = try RedisServer()
        let client = try RedisBlockingClient(unixSocket: server.socketPath, timeoutMs: 5000)
        let reply = try client.run(RedisCommand("SCRIPT", "LOAD", SonicScripts.conditionalStateSetBatch))
        #expect(reply.string == SonicScripts.conditionalStateSetBatchSHA)
    }

    // MARK: - Draining

    /// A window of one write per sender. Five MTU changes (medium) fill the window and queue; a state change of
    /// another port (high) comes next. In `sync` mode it waits for the one shared window; in `async` mode it leaves
    /// at once on the high sender while the medium ones still wait.
    @Test("async: each priority has its own sender; a backlog of medium writes does not hold a high one back")
    func asyncDrainsEachPriority() throws {
        let ports = (0..<6).map { "Ethernet\($0 * 4)" }
        for mode in BatchSendMode.allCases {
            let rig = try Rig(mode: mode, ports: ports, window: 1)
            defer { rig.server.kill() }  // the rig's closures keep it alive: stop its redis-server explicitly
            // Every port seen once (a first sighting is a state change: high).
            rig.queue.sync { rig.process(ports.flatMap { Self.newLink($0, operUp: true, mtu: 9100) }) }
            try rig.waitIdle()
            let (queuedAfterMedium, queuedAfterHigh) = rig.queue.sync {
                rig.process(ports.prefix(5).flatMap { Self.newLink($0, operUp: true, mtu: 1500) })
                let medium = rig.pipeline.queuedCount
                rig.process(Self.newLink(ports[5], operUp: false, mtu: 9100))
                return (medium, rig.pipeline.queuedCount)
            }
            #expect(queuedAfterMedium == 4, "\(mode): one medium write in flight, four waiting")
            switch mode {
            case .sync: #expect(queuedAfterHigh == 5, "sync: the high write waits for the shared window")
            case .async: #expect(queuedAfterHigh == 4, "async: the high write is in flight on its own sender")
            }
            try rig.waitIdle()
            for port in ports.prefix(5) { #expect(try rig.stateRow(port) == Self.row(operUp: true, mtu: 1500)) }
            #expect(try rig.stateRow(ports[5]) == Self.row(operUp: false, mtu: 9100))
        }
    }

    // MARK: - Per-port order

    /// Redis refuses the write of a port's MTU change (a medium write); at that moment the key is repaired and a
    /// state change of the same port (a high write, on another sender in `async` mode) arrives. The retry, due
    /// after `send_retry_delay_us`, must not bring the older state back: the port ends with its latest state, and
    /// Redis never executes an older write of the port after a newer one.
    @Test(
        "A retried write never lands after a newer write of its port (both modes)",
        arguments: BatchSendMode.allCases)
    func retryKeepsPortOrder(mode: BatchSendMode) throws {
        let port = "Ethernet0"
        let rig = try Rig(mode: mode, ports: [port], window: 4, retries: 3, retryDelayUs: 20_000)
        defer { rig.server.kill() }
        let monitor = try RedisMonitor(socketPath: rig.server.socketPath)
        rig.queue.sync { rig.process(Self.newLink(port, operUp: true, mtu: 1300)) }
        try rig.waitIdle()
        // The next write of the port will be refused: its STATE_DB key now holds a string.
        _ = try rig.client.pipeline([RedisCommand("SELECT", "6"), RedisCommand("SET", "PORT_TABLE|\(port)", "x")])
        let refused = ResultBox<Bool>()
        rig.queue.sync {
            let record = rig.writer.onWriteCompleted
            rig.writer.onWriteCompleted = { trace, outcome, reason in
                record(trace, outcome, reason)
                guard outcome == .reject, refused.value == nil else { return }
                refused.set(true)
                // Repair the key, and the port changes state again right away.
                _ = try? rig.client.pipeline([RedisCommand("SELECT", "6"), RedisCommand("DEL", "PORT_TABLE|\(port)")])
                rig.process(Self.newLink(port, operUp: false, mtu: 1401))
                rig.writer.endOfBatch()
            }
            rig.process(Self.newLink(port, operUp: true, mtu: 1400))
        }
        try rig.waitIdle()
        // The retry is due 20 ms after the refusal; whether it is sent or skipped, its time passes before the
        // check (the writer is idle only once nothing is in flight, and a skipped retry sends nothing).
        try Self.waitUntilRetryWindowPassed(rig)
        #expect(refused.value == true, "Redis refused the first write")
        #expect(try rig.stateRow(port) == Self.row(operUp: false, mtu: 1401))
        let mtus = try monitor.stateWrites(of: port, syncingWith: rig.client)
        #expect(mtus.last == "1401", "\(mode): the last write Redis executed is the latest state: \(mtus)")
        #expect(mtus == mtus.sorted(), "\(mode): writes of \(port) executed out of order: \(mtus)")
    }

    /// Many ports, each changing over and over (state flips, high, alternate with MTU changes, medium), with tiny
    /// windows so that the hand-off backs up and a port's writes are often in flight on one sender when a later
    /// one is taken by another; a quarter of the ports have their first writes refused and retried. Every port
    /// ends with its latest state, and Redis executed each port's writes in the order they were made.
    @Test("Per-port order under load and retries", arguments: BatchSendMode.allCases)
    func perPortOrderUnderLoad(mode: BatchSendMode) throws {
        let ports = (0..<64).map { "Ethernet\($0 * 4)" }
        let rounds = 40
        let rig = try Rig(mode: mode, ports: ports, window: 16, retries: 100, retryDelayUs: 200)
        defer { rig.server.kill() }
        let monitor = try RedisMonitor(socketPath: rig.server.socketPath)
        let broken = ports.enumerated().filter { $0.offset % 4 == 0 }.map { "PORT_TABLE|\($0.element)" }
        _ = try rig.client.pipeline([RedisCommand("SELECT", "6")] + broken.map { RedisCommand("SET", $0, "x") })
        let refusals = ResultBox<Int>()
        rig.queue.sync {
            let record = rig.writer.onWriteCompleted
            var count = 0
            rig.writer.onWriteCompleted = { trace, outcome, reason in
                record(trace, outcome, reason)
                guard outcome == .reject else { return }
                count += 1
                // After a few refusals, repair the keys: the retries then go through.
                if count == 3 * broken.count {
                    refusals.set(count)
                    _ = try? rig.client.pipeline([RedisCommand("SELECT", "6")] + broken.map { RedisCommand("DEL", $0) })
                }
            }
        }
        for round in 0..<rounds {
            // The MTU grows with every round; the state flips every other round.
            let mtu = UInt32(1000 + round)
            let datagram = ports.flatMap { Self.newLink($0, operUp: (round / 2) % 2 == 0, mtu: mtu) }
            rig.queue.sync { rig.process(datagram) }
        }
        try rig.waitIdle()
        try Self.waitUntilRetryWindowPassed(rig)
        #expect(refusals.value != nil, "Redis refused writes and they were retried")
        let last = UInt32(1000 + rounds - 1)
        for port in ports {
            #expect(try rig.stateRow(port) == Self.row(operUp: ((rounds - 1) / 2) % 2 == 0, mtu: last), "\(port)")
        }
        let writes = try monitor.allStateWrites(syncingWith: rig.client)
        for port in ports {
            let mtus = (writes[port] ?? []).compactMap { Int($0) }
            #expect(mtus == mtus.sorted() && mtus.last == Int(last), "\(mode): \(port) executed \(mtus)")
        }
    }

    /// Lets any retry still pending fire: waits, on the port queue, for a timer longer than the retry delay, then
    /// for the writer to be idle again.
    static func waitUntilRetryWindowPassed(_ rig: Rig) throws {
        let _: Bool = try onQueue(rig.queue) { done in
            let delay = DispatchTimeInterval.microseconds(rig.writer.retryDelayMicros * 4 + 10_000)
            rig.queue.asyncAfter(deadline: .now() + delay) { done(true) }
        }
        try rig.waitIdle()
    }
}

/// A `MONITOR` connection to a redis-server: every command it executes, in order, as it reports them.
final class RedisMonitor: @unchecked Sendable {
    private let descriptor: Int32
    private let lock = NSLock()
    private var lines: [String] = []
    private var partial: [UInt8] = []
    /// Signalled whenever lines arrive.
    private let arrived = DispatchSemaphore(value: 0)
    private let reader: Thread

    init(socketPath: String) throws {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(descriptor)
            throw TestFailure("socket path too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.enumerated() { raw[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            close(descriptor)
            throw TestFailure("connect: errno \(errno)")
        }
        self.descriptor = descriptor
        let command = Array("MONITOR\r\n".utf8)
        guard command.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == command.count else {
            close(descriptor)
            throw TestFailure("MONITOR could not be sent")
        }
        let box = LineSink()
        self.reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count <= 0 { break }
                box.monitor?.received(buffer[0..<count])
            }
        }
        box.monitor = self
        self.reader.start()
        // MONITOR answers +OK before it reports anything.
        try self.waitFor { $0.contains("OK") }
    }

    deinit {
        shutdown(self.descriptor, Int32(SHUT_RDWR))
        close(self.descriptor)
    }

    private func received(_ bytes: ArraySlice<UInt8>) {
        self.lock.lock()
        defer { self.lock.unlock() }
        self.partial += bytes
        while let end = self.partial.firstIndex(of: 10) {
            let line = String(decoding: self.partial[..<end], as: UTF8.self)
            self.lines.append(line.hasSuffix("\r") ? String(line.dropLast()) : line)
            self.partial.removeSubrange(...end)
        }
        self.arrived.signal()
    }

    /// Waits, as lines arrive (30 s at most), until a line received so far satisfies `condition`.
    private func waitFor(_ condition: (String) -> Bool) throws {
        let deadline = DispatchTime.now() + .seconds(30)
        while true {
            self.lock.lock()
            let found = self.lines.contains(where: condition)
            self.lock.unlock()
            if found { return }
            guard self.arrived.wait(timeout: deadline) == .success else {
                throw TestFailure("MONITOR did not report what was expected")
            }
        }
    }

    /// Every STATE_DB `HSET PORT_TABLE|<port>` Redis executed so far, as each port's `mtu` values in order. To be
    /// sure MONITOR has reported everything, `client` sends a marker command and this waits to see it.
    func allStateWrites(syncingWith client: RedisBlockingClient) throws -> [String: [String]] {
        let marker = "psd-monitor-sync-\(UUID().uuidString)"
        _ = try client.pipeline([RedisCommand("ECHO", marker)])
        try self.waitFor { $0.contains(marker) }
        self.lock.lock()
        let lines = self.lines
        self.lock.unlock()
        var writes: [String: [String]] = [:]
        for line in lines {
            let arguments = Self.arguments(of: line)
            guard arguments.count == 10, arguments[0].uppercased() == "HSET", arguments[1].hasPrefix("PORT_TABLE|"),
                arguments[8] == "mtu"
            else { continue }
            writes[String(arguments[1].dropFirst("PORT_TABLE|".count)), default: []].append(arguments[9])
        }
        return writes
    }

    func stateWrites(of port: String, syncingWith client: RedisBlockingClient) throws -> [String] {
        try self.allStateWrites(syncingWith: client)[port] ?? []
    }

    /// The quoted arguments of a MONITOR line (`+<time> [<db> <client>] "A" "B" …`); names here need no unescaping.
    static func arguments(of line: String) -> [String] {
        guard let open = line.firstIndex(of: "]") else { return [] }
        return line[line.index(after: open)...].split(separator: "\"").enumerated()
            .filter { $0.offset % 2 == 1 }.map { String($0.element) }
    }
}

/// The reader thread's way back to the monitor (set once the monitor exists).
private final class LineSink: @unchecked Sendable {
    weak var monitor: RedisMonitor?
}
