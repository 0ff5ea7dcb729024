import Dispatch
import Foundation
import PortSyncCore
import Testing

@testable import PortSyncRuntime

/// The asynchronous hiredis connection on Dispatch, against a real redis-server.
@Suite("RedisConnection (real redis-server)", .serialized)
struct RedisConnectionTests {
    @Test("10 000 pipelined commands are answered in order")
    func pipelinedOrder() throws {
        let server = try RedisServer()
        let queue = DispatchQueue(label: "test.redis")
        let connection = RedisConnection(queue: queue)
        let replies: [Int64] = try onQueue(queue) { done in
            connection.connect(
                unixSocket: server.socketPath,
                connected: { error in
                    guard error == nil else { return done([]) }
                    let box = ReplyCollector()
                    for _ in 0..<10_000 {
                        connection.send(RedisCommand("INCR", "counter")) { reply in
                            box.append(reply?.integer ?? -1)
                            if box.count == 10_000 { done(box.values) }
                        }
                    }
                    connection.flush()
                }, disconnected: { _ in })
        }
        #expect(replies == Array(1...10_000))
        queue.sync { connection.close() }
    }

    @Test("A killed server fails every pending command with nil, then reports the disconnect once")
    func serverKilled() throws {
        let server = try RedisServer()
        let queue = DispatchQueue(label: "test.redis")
        let connection = RedisConnection(queue: queue)
        let answered = ReplyCollector()
        let disconnects = ReplyCollector()
        let sent = 50_000
        let reason: String = try onQueue(queue, timeout: 20) { done in
            connection.connect(
                unixSocket: server.socketPath,
                connected: { error in
                    guard error == nil else { return done("connect failed") }
                    for index in 0..<sent {
                        connection.send(RedisCommand("SET", "key\(index)", String(repeating: "x", count: 512))) {
                            reply in answered.append(reply == nil ? 0 : 1)
                        }
                    }
                    connection.flush()
                    server.kill()
                },
                disconnected: { reason in
                    disconnects.append(1)
                    done(reason)
                })
        }
        #expect(!reason.isEmpty)
        try queue.sync {
            #expect(answered.count == sent, "every command got its completion")
            #expect(answered.values.contains(0), "commands in flight at the kill got nil")
            #expect(disconnects.count == 1)
            #expect(connection.pendingCount == 0)
            #expect(!connection.send(RedisCommand("PING")) { _ in }, "a dead connection refuses new commands")
            _ = try #require(Optional(connection))
        }
    }

    @Test("Connecting to a socket nobody listens on fails with a clear error")
    func connectRefused() throws {
        let queue = DispatchQueue(label: "test.redis")
        let connection = RedisConnection(queue: queue)
        let message: String = try onQueue(queue) { done in
            connection.connect(
                unixSocket: "/nonexistent/redis.sock", connected: { error in done(error?.message ?? "connected") },
                disconnected: { _ in })
        }
        #expect(message.contains("/nonexistent/redis.sock"))
    }
}

/// Collects values from callbacks on one queue (a lock keeps the test's reads honest).
final class ReplyCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [Int64] = []
    func append(_ value: Int64) {
        self.lock.lock()
        self.stored.append(value)
        self.lock.unlock()
    }
    var values: [Int64] {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.stored
    }
    var count: Int { self.values.count }
}
