import Dispatch
import Foundation
import Logging
import PortSyncCore
import Testing

@testable import PortSyncRuntime

/// The STATE_DB writer against a real redis-server, including a server crash and restart.
@Suite("PortStateWriter (real redis-server)", .serialized)
struct PortStateWriterTests {
    let schema = SonicSchema(databases: SonicDatabases(unixSocketPath: nil))

    private func seedApplDB(_ server: RedisServer, ports: [String]) throws {
        let client = try RedisBlockingClient(unixSocket: server.socketPath, timeoutMs: 5000)
        _ = try client.pipeline(
            [RedisCommand("SELECT", "0")] + ports.map { RedisCommand("HSET", "PORT_TABLE:\($0)", "admin_status", "up") }
        )
    }

    private func stateDB(_ server: RedisServer, _ port: String) throws -> [String: String] {
        let client = try RedisBlockingClient(unixSocket: server.socketPath, timeoutMs: 5000)
        let replies = try client.pipeline([RedisCommand("SELECT", "6"), RedisCommand("HGETALL", "PORT_TABLE|\(port)")])
        var result: [String: String] = [:]
        for pair in replies[1].fieldValuePairs ?? [] {
            result[String(decoding: pair.field, as: UTF8.self)] = String(decoding: pair.value, as: UTF8.self)
        }
        return result
    }

    private func makeWriter(
        _ server: RedisServer, queue: DispatchQueue, waiting: Set<String>, reconnectMs: (Int, Int) = (10, 50)
    ) throws -> PortStateWriter {
        let client = try RedisBlockingClient(unixSocket: server.socketPath, timeoutMs: 5000)
        let startup = SonicStartup(client: client, schema: self.schema, logger: Logger(label: "test"))
        return PortStateWriter(
            queue: queue, schema: self.schema, socketPath: server.socketPath, scripts: try startup.loadScripts(),
            state: PortSyncState(waiting: waiting), reconnectInitialMs: reconnectMs.0, reconnectMaxMs: reconnectMs.1,
            logger: Logger(label: "test"))
    }

    @Test("s18: a port in APPL_DB gets one HSET; a port not in APPL_DB gets nothing and stays awaited")
    func conditionalWrite() throws {
        let server = try RedisServer()
        try self.seedApplDB(server, ports: ["Ethernet0"])
        let queue = DispatchQueue(label: "test.port")
        let writer = try self.makeWriter(server, queue: queue, waiting: ["Ethernet0", "Ethernet4"])
        let _: Bool = try onQueue(queue) { done in
            writer.start()
            writer.apply(.state(port: "Ethernet0", PortOperState(adminUp: true, operUp: false, mtu: 9100)), trace: 1)
            writer.apply(.state(port: "Ethernet4", PortOperState(adminUp: true, operUp: true, mtu: 1500)), trace: 2)
            writer.endOfBatch()
            writer.whenIdle { done(true) }
        }
        #expect(
            try self.stateDB(server, "Ethernet0")
                == ["state": "ok", "netdev_oper_status": "down", "admin_status": "up", "mtu": "9100"])
        #expect(try self.stateDB(server, "Ethernet4").isEmpty)
        queue.sync {
            #expect(writer.state.waiting == ["Ethernet4"])
            #expect(writer.state.initDone == .pending)
            writer.stop()
        }
    }

    @Test("Redis killed and restarted: the writer reconnects and writes the latest state of every port again")
    func reconnectResync() throws {
        let server = try RedisServer()
        let ports = (0..<16).map { "Ethernet\($0 * 4)" }
        try self.seedApplDB(server, ports: ports)
        let queue = DispatchQueue(label: "test.port")
        // Reconnecting no sooner than 2 s after the loss: the test restarts redis-server and seeds APPL_DB (what
        // orchagent does after a database restart) well within that, so the writer never meets an empty APPL_DB.
        let writer = try self.makeWriter(server, queue: queue, waiting: Set(ports), reconnectMs: (2000, 4000))
        let _: Bool = try onQueue(queue) { done in
            writer.start()
            for port in ports {
                writer.apply(.state(port: port, PortOperState(adminUp: true, operUp: true, mtu: 9100)), trace: 0)
            }
            writer.endOfBatch()
            writer.whenIdle { done(true) }
        }
        queue.sync { #expect(writer.state.initDone == .written) }

        server.kill()
        // Changes while Redis is down are recorded, not lost.
        queue.sync {
            writer.apply(.state(port: "Ethernet0", PortOperState(adminUp: false, operUp: false, mtu: 1500)), trace: 0)
            writer.apply(.deleted(port: "Ethernet4"), trace: 0)
            writer.endOfBatch()
        }
        try server.start()
        try self.seedApplDB(server, ports: ports)  // orchagent's part after a database restart
        let _: Bool = try onQueue(queue, timeout: 20) { done in writer.whenIdle { done(true) } }

        #expect(
            try self.stateDB(server, "Ethernet0")
                == ["state": "ok", "netdev_oper_status": "down", "admin_status": "down", "mtu": "1500"])
        #expect(try self.stateDB(server, "Ethernet4").isEmpty)
        for port in ports.dropFirst(2) {
            #expect(try self.stateDB(server, port)["netdev_oper_status"] == "up", "\(port)")
        }
        // PortInitDone is written once per process (statement 10), and PortConfigDone never by the writer.
        let client = try RedisBlockingClient(unixSocket: server.socketPath, timeoutMs: 5000)
        let keys = try client.pipeline([RedisCommand("SELECT", "0"), RedisCommand("KEYS", "*Port*Done*")])
        #expect(keys[1].array?.isEmpty == true)
        queue.sync {
            #expect(writer.counters.reconnects == 1)
            writer.stop()
        }
    }
}
