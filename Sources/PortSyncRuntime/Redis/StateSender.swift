import Dispatch
import PortSyncCore

/// One Redis connection of the `PortStateWriter`, with the batch of port writes it is filling and the writes it has
/// taken that are not answered yet.
///
/// Port state writes queue in `batch` and leave as one script call (`SonicScripts.conditionalStateSetBatch`) when
/// the batch is full, before any other command on this connection (so the connection's order is the order things
/// were asked), or at the end of the queue's current turn.
///
/// Threading: confined to the writer's queue; `@unchecked Sendable` only so that Dispatch handlers can capture it.
final class StateSender: @unchecked Sendable {
    /// One port write: sent (or queued in the batch) and not answered yet.
    struct Write {
        var port: String
        var trace: UInt64
        var update: PortUpdate
        /// The sender whose window the write counts against (the one that took it from the hand-off).
        var taker: Int
    }

    let connection: RedisConnection
    /// State writes waiting for the batch to be sent, in order, and their encoding.
    var batch: [Write] = []
    var encoded = StateWriteBatch()
    /// A flush of the batch is scheduled for the end of the queue's turn.
    var flushScheduled = false
    /// Port writes this sender took and Redis has not answered (wherever they were carried).
    var taken = 0

    init(queue: DispatchQueue) { self.connection = RedisConnection(queue: queue) }

    /// Queues a state write; returns whether the batch is full and must be sent now.
    func append(_ write: Write, state: PortOperState) -> Bool {
        self.batch.append(write)
        self.encoded.append(port: write.port, state: state)
        return self.batch.count >= StateSender.maxBatch
    }

    /// The batch's writes and its RESP encoding; the batch is empty afterwards.
    func takeBatch(schema: SonicSchema) -> (writes: [Write], command: [UInt8])? {
        guard !self.batch.isEmpty else { return nil }
        let writes = self.batch
        let command = self.encoded.encoded(schema: schema)
        self.batch.removeAll(keepingCapacity: true)
        self.encoded.removeAll()
        return (writes, command)
    }

    /// Commands sent and not answered, and writes still in the batch: nothing is pending when both are 0.
    var isIdle: Bool { self.connection.pendingCount == 0 && self.batch.isEmpty }

    /// The most ports in one script call.
    static let maxBatch = 128
}
