import CMnl
import Dispatch
import Logging
import PortSyncCore

/// The netlink reader and pipeline, as a critical worker on the port queue.
///
/// The first start adopts what start-up built (the event socket was subscribed before the start-up dump, statement
/// 11). A restart after a failure opens new sockets, subscribes, and dumps every link through the pipeline,
/// deleting from STATE_DB the ports that went away meanwhile: Redis equals the kernel again.
final class NetlinkWorker: SupervisedWorker, @unchecked Sendable {
    let name = "netlink"
    let criticality = WorkerCriticality.critical
    let queue: DispatchQueue
    private let monitor: LinkMonitor
    private let receiveBufferBytes: Int
    private let logger: Logger
    private var adopted = false
    private var housekeeping: (any DispatchSourceTimer)?

    init(monitor: LinkMonitor, receiveBufferBytes: Int, logger: Logger) {
        self.queue = monitor.queue
        self.monitor = monitor
        self.receiveBufferBytes = receiveBufferBytes
        self.logger = logger
    }

    func start(_ context: WorkerContext) throws {
        self.monitor.onFailure = { reason in context.fail(reason) }
        if self.adopted {
            let events = try NetlinkSocket(groups: UInt32(RTMGRP_LINK))
            try events.setNonBlocking()
            _ = events.setReceiveBuffer(bytes: self.receiveBufferBytes)
            let requester = try NetlinkRequester()
            self.monitor.replaceSockets(events: events, requester: requester)
            self.monitor.start()
            self.logger.notice(
                "Netlink sockets opened again; dumping every link to catch up", metadata: ["WORKER": "netlink"])
            self.monitor.resync()
        } else {
            self.adopted = true  // start-up has started the monitor
        }
        // A safety net for a read source that missed a wake-up.
        self.housekeeping = DispatchSource.repeating(on: self.queue, every: .seconds(1), leeway: .milliseconds(100)) {
            [monitor] in monitor.pollForMissedEvents()
        }
    }

    func stop() {
        self.housekeeping?.cancel()
        self.housekeeping = nil
        self.monitor.onFailure = { _ in }
        self.monitor.stop()
    }
}

/// The Redis writer, as a critical worker on the port queue. A lost connection is not a failure (the writer
/// reconnects by itself with backoff); Redis refusing `PortInitDone` is (statement 27). A restart reconnects and
/// writes the latest state of every port again.
final class RedisWorker: SupervisedWorker, @unchecked Sendable {
    let name = "redis"
    let criticality = WorkerCriticality.critical
    let queue: DispatchQueue
    private let writer: PortStateWriter
    private var adopted = false
    private var housekeeping: (any DispatchSourceTimer)?

    init(writer: PortStateWriter) {
        self.queue = writer.queue
        self.writer = writer
    }

    func start(_ context: WorkerContext) throws {
        self.writer.onFatal = { reason in context.fail(reason) }
        if self.adopted {
            self.writer.restart()
        } else {
            self.adopted = true  // start-up has connected the writer
        }
        self.housekeeping = DispatchSource.repeating(on: self.queue, every: .seconds(1), leeway: .milliseconds(100)) {
            [writer] in writer.checkIdle()
        }
    }

    func stop() {
        self.housekeeping?.cancel()
        self.housekeeping = nil
        self.writer.onFatal = { _ in }
        self.writer.stop()
    }
}
