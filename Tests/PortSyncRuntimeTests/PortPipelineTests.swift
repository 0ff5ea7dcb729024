import Dispatch
import Foundation
import Logging
import PortSyncCore
import Testing

@testable import PortSyncRuntime

/// Bad kernel input through the daemon's own pipeline object, with a real redis-server behind it.
///
/// The kernel never sends malformed link messages on request, so this test builds the datagram by hand and
/// hands it to `PortPipeline.process(datagram:)`, the function the netlink read source calls. Everything after
/// that point (filter, writer, Redis) is real. What it cannot prove: that the kernel's bytes reach `process`
/// unchanged, which the integration tests cover with real veths.
@Suite("PortPipeline with malformed datagrams", .serialized)
struct PortPipelineMalformedTests {
    @Test("Malformed messages are counted per kind and logged once per kind; the rest of the datagram is synced")
    func malformedCountedRestHandled() throws {
        let server = try RedisServer()
        let seed = try RedisBlockingClient(unixSocket: server.socketPath, timeoutMs: 5000)
        _ = try seed.pipeline([RedisCommand("SELECT", "0"), RedisCommand("HSET", "PORT_TABLE:Ethernet4", "lanes", "1")])
        let schema = SonicSchema(databases: SonicDatabases(unixSocketPath: server.socketPath))
        let records = LogRecords()
        let logger = Logger(label: "test") { _ in RecordingLogHandler(records: records) }
        let queue = DispatchQueue(label: "test.port")
        let writer = PortStateWriter(
            queue: queue, schema: schema, socketPath: server.socketPath,
            scripts: try SonicStartup(client: seed, schema: schema, logger: logger).loadScripts(),
            state: PortSyncState(waiting: ["Ethernet4"]), reconnectInitialMs: 10, reconnectMaxMs: 50, logger: logger)
        let pipeline = PortPipeline(
            queue: queue, writer: writer, settings: Config.Pipeline(), oldInterfaces: [], logger: logger)

        var datagram: [UInt8] = []
        datagram += Self.newLink(name: "Ethernet0", mtuBytes: [1, 0])  // IFLA_MTU of 2 bytes: invalid
        datagram += Self.newLink(name: "Ethernet8", mtuBytes: [1, 0, 0])  // the same kind again
        datagram += Self.newLink(name: "Ethernet4", mtuBytes: [0x8C, 0x23, 0, 0])  // valid, MTU 9100
        datagram += [1, 2, 3, 4, 5]  // a truncated header at the end
        let bytes = datagram

        let _: Bool = try onQueue(queue) { done in
            writer.start()
            bytes.withUnsafeBytes { raw in _ = pipeline.process(datagram: raw) }
            writer.endOfBatch()
            writer.whenIdle { done(true) }
        }
        queue.sync {
            #expect(pipeline.messages.malformed == ["invalid_attribute": 2, "truncated_header": 1])
            #expect(pipeline.messages.candidatesSent == 1)
            #expect(pipeline.stages.total(.receive, .reject) == 1, "the truncated header, at framing")
            #expect(pipeline.stages.total(.extract, .reject) == 2, "the two bad MTUs, at extraction")
            #expect(pipeline.stages.total(.write, .done) == 1)
            writer.stop()
        }
        let warnings = records.messages.filter { $0.contains("Malformed netlink message") }
        #expect(warnings.count == 2, "one line per kind: \(warnings)")
        let state = try seed.pipeline([
            RedisCommand("SELECT", "6"), RedisCommand("HGET", "PORT_TABLE|Ethernet4", "mtu"),
        ])
        #expect(state[1].string == "9100")
    }

    @Test("The stage events of one kernel message cover every stage, in order, under its trace id")
    func traceCoversEveryStage() throws {
        let server = try RedisServer()
        let seed = try RedisBlockingClient(unixSocket: server.socketPath, timeoutMs: 5000)
        _ = try seed.pipeline([RedisCommand("SELECT", "0"), RedisCommand("HSET", "PORT_TABLE:Ethernet4", "lanes", "1")])
        let schema = SonicSchema(databases: SonicDatabases(unixSocketPath: server.socketPath))
        let logger = Logger(label: "test") { _ in RecordingLogHandler(records: LogRecords()) }
        let queue = DispatchQueue(label: "test.port")
        let writer = PortStateWriter(
            queue: queue, schema: schema, socketPath: server.socketPath,
            scripts: try SonicStartup(client: seed, schema: schema, logger: logger).loadScripts(),
            state: PortSyncState(waiting: []), reconnectInitialMs: 10, reconnectMaxMs: 50, logger: logger)
        let pipeline = PortPipeline(
            queue: queue, writer: writer, settings: Config.Pipeline(), oldInterfaces: [], logger: logger)
        let bytes =
            Self.newLink(name: "Ethernet0", mtuBytes: [0xDC, 0x05, 0, 0])  // not a port in APPL_DB
            + Self.newLink(name: "Ethernet4", mtuBytes: [0xDC, 0x05, 0, 0])
            + Self.newLink(name: "eth0", mtuBytes: [0xDC, 0x05, 0, 0])
        let _: Bool = try onQueue(queue) { done in
            writer.start()
            bytes.withUnsafeBytes { raw in _ = pipeline.process(datagram: raw) }
            writer.endOfBatch()
            writer.whenIdle { done(true) }
        }
        try queue.sync {
            let all = pipeline.ring.all()
            let traces = Array(Set(all.map(\.trace))).sorted()
            #expect(traces.count == 3)
            let full: [PipelineStage] = [.receive, .prefilter, .extract, .validate, .handoff, .write]
            let first = pipeline.ring.events(trace: try #require(traces.first))
            #expect(first.map(\.stage) == full)
            #expect(first.last?.outcome == .ignore && first.last?.reason == .notInPortTable)
            let second = pipeline.ring.events(trace: traces[1])
            #expect(second.map(\.stage) == full)
            #expect(second.last?.outcome == .done)
            let third = pipeline.ring.events(trace: traces[2])
            #expect(third.map(\.stage) == [.receive, .prefilter])
            #expect(third.last?.reason == .notAPort)
            #expect(zip(second, second.dropFirst()).allSatisfy { $0.timestamp <= $1.timestamp })
            let snapshot = pipeline.snapshot()
            #expect(snapshot.candidatesSent == 2 && snapshot.messages.newlink == 3)
            #expect(snapshot.writer.writes == 1)
            writer.stop()
        }
    }

    /// An RTM_NEWLINK for `name`, flags UP|RUNNING, with an IFLA_MTU attribute whose payload is `mtuBytes`.
    static func newLink(name: String, mtuBytes: [UInt8]) -> [UInt8] {
        var attributes: [UInt8] = []
        func attribute(_ type: UInt16, _ payload: [UInt8]) {
            let length = UInt16(4 + payload.count)
            attributes += withUnsafeBytes(of: length) { Array($0) } + withUnsafeBytes(of: type) { Array($0) }
            attributes += payload + [UInt8](repeating: 0, count: NetlinkLayout.align(payload.count) - payload.count)
        }
        attribute(LinkAttribute.ifname, Array(name.utf8) + [0])
        attribute(LinkAttribute.mtu, mtuBytes)
        var ifinfo: [UInt8] = [0, 0, 0, 0]
        // One ifindex per name, as from the kernel (one ifindex under two names is a rename).
        let ifindex = Int32(name.utf8.reduce(Int32(7)) { ($0 &* 31 &+ Int32($1)) & 0xffff })
        ifinfo += withUnsafeBytes(of: ifindex) { Array($0) }
        ifinfo += withUnsafeBytes(of: InterfaceFlags([.up, .running]).rawValue) { Array($0) }
        ifinfo += [0, 0, 0, 0]
        let length = UInt32(NetlinkLayout.messageHeader + ifinfo.count + attributes.count)
        var message = withUnsafeBytes(of: length) { Array($0) }
        message += withUnsafeBytes(of: NetlinkMessageType.newLink) { Array($0) }
        message += [0, 0] + [UInt8](repeating: 0, count: 8)
        return message + ifinfo + attributes
    }
}

/// Log messages kept in memory (a test backend for swift-log).
final class LogRecords: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    func append(_ message: String) {
        self.lock.lock()
        self.stored.append(message)
        self.lock.unlock()
    }
    var messages: [String] {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.stored
    }
}

struct RecordingLogHandler: LogHandler {
    let records: LogRecords
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }
    func log(event: LogEvent) { self.records.append(event.message.description) }
}
