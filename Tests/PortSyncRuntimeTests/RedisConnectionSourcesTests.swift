import Dispatch
import Foundation
import PortSyncCore
import Testing

@testable import PortSyncRuntime

/// Several asynchronous connections on one queue, as the writer opens them in `async` mode, against a real
/// redis-server: every command is answered.
///
/// On Linux a Dispatch read source and write source on one descriptor share one epoll registration; a write event
/// could then reach the read source as an empty read and leave it unarmed, so a reply that arrived just after was
/// never read. Three connections opened at once, each sending as soon as the last one is up, made it happen in most
/// rounds; each source now watches its own duplicate of the descriptor.
@Suite("RedisConnection: several connections on one queue (real redis-server)", .serialized)
struct RedisConnectionSourcesTests {
    @Test("Three connections opened at once, commands sent as the last one comes up: every reply arrives")
    func everyReplyArrives() throws {
        let server = try RedisServer()
        let queue = DispatchQueue(label: "test.redis")
        for round in 0..<40 {
            let replies: Int = try onQueue(queue, timeout: 5) { done in
                let connections = (0..<3).map { _ in RedisConnection(queue: queue) }
                let counter = ReplyCollector()
                let up = ReplyCollector()
                for connection in connections {
                    connection.connect(
                        unixSocket: server.socketPath,
                        connected: { error in
                            guard error == nil else { return done(-1) }
                            up.append(1)
                            guard up.count == connections.count else { return }
                            for target in connections {
                                for command in [RedisCommand("SELECT", "6"), RedisCommand("PING")] {
                                    target.send(command) { reply in
                                        counter.append(reply == nil ? -1 : 1)
                                        guard counter.count == 2 * connections.count else { return }
                                        for connection in connections { connection.close() }
                                        done(counter.values.filter { $0 == 1 }.count)
                                    }
                                }
                            }
                        }, disconnected: { _ in })
                }
                // As the writer's end of a batch does: connects are completed here, not on a later event.
                for connection in connections { connection.flush() }
            }
            #expect(replies == 6, "round \(round)")
        }
    }
}
