import Dispatch
import Glibc
import Logging
import PortSyncCore

/// Reads kernel link events from the netlink socket into the `PortPipeline`, on the port queue.
///
/// The event socket is subscribed to `RTMGRP_LINK` before the start-up dump is taken (statement 11), and the dump
/// goes through the pipeline exactly like live events. On `ENOBUFS` (the kernel dropped events) it logs SONiC's
/// error, drains the socket, dumps again through the same path and deletes from STATE_DB the ports the kernel no
/// longer has, so Redis equals the kernel afterwards (statement 21's allowed improvement).
///
/// Threading: confined to `queue` (asserted).
final class LinkMonitor: @unchecked Sendable {
    /// Datagrams read per wake-up before the queue is yielded to Redis replies.
    private static let datagramsPerWakeup = 256

    let queue: DispatchQueue
    private var socket: NetlinkSocket
    private var requester: NetlinkRequester
    private let writer: PortStateWriter
    let pipeline: PortPipeline
    private let logger: Logger
    private var source: (any DispatchSourceRead)?
    private var paused = false
    private var buffer: [UInt8]
    /// An overrun was reported and the socket has not been drained since.
    private var resyncPending = false
    private(set) var overruns = 0
    private(set) var resyncs = 0
    private(set) var lastError: String?
    /// A failure this monitor cannot handle itself (the socket fails, a dump fails): the supervisor restarts the
    /// netlink worker, which opens new sockets and resyncs.
    var onFailure: (String) -> Void = { _ in }

    init(
        queue: DispatchQueue, socket: NetlinkSocket, requester: NetlinkRequester, pipeline: PortPipeline,
        writer: PortStateWriter, logger: Logger
    ) {
        self.queue = queue
        self.socket = socket
        self.requester = requester
        self.pipeline = pipeline
        self.writer = writer
        self.logger = logger
        self.buffer = [UInt8](repeating: 0, count: 64 * 1024)
        pipeline.onIntake = { [unowned self] open in self.setIntake(open) }
        pipeline.onResyncNeeded = { [unowned self] in self.resync() }
    }

    /// Starts reading the event socket.
    func start() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        let source = DispatchSource.makeReadSource(fileDescriptor: self.socket.fileDescriptor, queue: self.queue)
        source.setEventHandler { [unowned self] in self.readAvailable() }
        self.source = source
        source.resume()
        if self.paused { source.suspend() }
    }

    /// Stops reading (shutdown); what the kernel sends afterwards stays in the socket.
    func stop() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        guard let source = self.source else { return }
        source.cancel()
        if self.paused { source.resume() }  // a suspended source must not be released
        self.source = nil
    }

    /// New sockets after a restart of the netlink worker (the old ones close when released). Call `start()` and
    /// `resync()` next: events sent while no socket was open are only known from the dump.
    func replaceSockets(events: NetlinkSocket, requester: NetlinkRequester) {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.stop()
        self.socket = events
        self.requester = requester
        self.resyncPending = false
    }

    /// Pauses or resumes reading: the hand-off is full under the `block` policy, or has room again.
    private func setIntake(_ open: Bool) {
        guard open == self.paused else { return }
        self.paused = !open
        if let source = self.source {
            if open { source.resume() } else { source.suspend() }
        }
        self.logger.info(
            open ? "Hand-off has room again; reading netlink" : "Hand-off full; pausing netlink reads (block policy)",
            metadata: ["EVENT": open ? "intake_resumed" : "intake_paused"])
    }

    /// Registers the socket with Dispatch anew. An overrun sets the socket's error, which epoll reports as
    /// `EPOLLERR`, and libdispatch can disarm a read source on it: after each `ENOBUFS` the source is replaced.
    private func restartSource() {
        guard self.source != nil else { return }
        self.stop()
        self.start()
    }

    /// A safety net run from the status timer: reads whatever is queued. A working source leaves nothing (one
    /// `recv` returning `EAGAIN`); if something was there, the source missed it and is replaced.
    func pollForMissedEvents() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        guard self.source != nil, !self.paused else { return }
        let before = self.pipeline.messages.datagrams
        self.readAvailable()
        if self.pipeline.messages.datagrams != before {
            self.logger.warning(
                "The netlink read source missed \(self.pipeline.messages.datagrams - before) datagrams; registering it again",
                metadata: ["EVENT": "netlink_source_restart"])
            self.restartSource()
        }
    }

    private func readAvailable() {
        var overrun = false
        // Busy from here until the writes this read makes are answered (the writer then says idle).
        self.writer.gate?.set(busy: true)
        defer {
            self.writer.endOfBatch()
            self.writer.gate?.set(busy: self.writer.awaitingReplies)
            if overrun { self.restartSource() }
        }
        for _ in 0..<Self.datagramsPerWakeup where !self.paused {
            let result: ReadResult
            do {
                result = try self.buffer.withUnsafeMutableBytes { raw in try self.socket.receive(into: raw) }
            } catch let error as SystemError where error.errno == ENOBUFS {
                overrun = true
                self.lostEvents()
                continue
            } catch {
                self.lastError = "netlink: \(error)"
                self.logger.error("Reading the netlink socket failed: \(error)", metadata: ["EVENT": "netlink_error"])
                self.onFailure("reading the netlink socket: \(error)")
                break
            }
            guard case .bytes(let count) = result else {
                // The queue is empty now, and so the kernel has cleared the socket's congestion: only from here
                // on is every event delivered again, so the resync dump is taken now, not at the ENOBUFS.
                if self.resyncPending {
                    self.resyncPending = false
                    self.resync()
                }
                break
            }
            self.buffer.withUnsafeBytes { raw in
                _ = self.pipeline.process(datagram: UnsafeRawBufferPointer(rebasing: raw[0..<count]))
            }
        }
    }

    /// `ENOBUFS`: the kernel dropped events for this socket. It reports this once and then drops every further
    /// event silently until the socket's queue is empty, so the resync dump waits until the queue is drained.
    private func lostEvents() {
        self.overruns += 1
        self.lastError = "netlink ENOBUFS: events lost, resynced"
        self.logger.error(
            "netlink reports out of memory on reading a netlink socket. High possibility of a lost message; dumping every link again once the socket is drained",
            metadata: ["EVENT": "enobufs"])
        self.resyncPending = true
    }

    /// Dumps every link through the pipeline and deletes the ports that are gone from the kernel.
    func resync() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.resyncs += 1
        let datagrams: [[UInt8]]
        do {
            datagrams = try self.requester.dumpLinks()
        } catch {
            self.lastError = "netlink dump: \(error)"
            self.logger.error("Dumping links to resync failed: \(error)", metadata: ["EVENT": "resync_failed"])
            self.onFailure("dumping links: \(error)")
            return
        }
        var present: Set<String> = []
        for datagram in datagrams {
            datagram.withUnsafeBytes { raw in
                present.formUnion(self.pipeline.process(datagram: raw, reconciling: true))
            }
        }
        for (port, wanted) in self.writer.state.wanted where !present.contains(port) {
            if case .state = wanted {
                self.logger.notice(
                    "Port \(port) is gone from the kernel after lost events; deleting it from state db",
                    metadata: ["PORT": .string(port), "EVENT": "resync_delete"])
                self.pipeline.reconcileDeleted(port)
            }
        }
        self.writer.endOfBatch()
    }
}
