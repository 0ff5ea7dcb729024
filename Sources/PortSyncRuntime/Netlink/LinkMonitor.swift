import Dispatch
import Glibc
import Logging
import PortSyncCore

/// Reads kernel link events and takes each one through decode → SONiC filter → writer, on the port queue.
///
/// The event socket is subscribed to `RTMGRP_LINK` before the start-up dump is taken (statement 11), and the dump
/// goes through `process(datagram:)` exactly like live events. On `ENOBUFS` (the kernel dropped events) it logs
/// SONiC's error, dumps again through the same path and deletes from STATE_DB the ports the kernel no longer
/// has, so Redis equals the kernel afterwards (statement 21's allowed improvement).
///
/// Threading: confined to `queue` (asserted).
final class LinkMonitor: @unchecked Sendable {
    struct Counters {
        var datagrams = 0
        var bytes = 0
        var newLinks = 0
        var delLinks = 0
        var otherMessages = 0
        var accepted = 0
        var ignored: [LinkVerdict.IgnoreReason: Int] = [:]
        var rejected: [LinkVerdict.RejectReason: Int] = [:]
        var malformed: [String: Int] = [:]
        var overruns = 0
        var resyncs = 0
    }

    /// Datagrams read per wake-up before the queue is yielded to Redis replies.
    private static let datagramsPerWakeup = 256

    let queue: DispatchQueue
    private let socket: NetlinkSocket
    private let requester: NetlinkRequester
    private let writer: PortStateWriter
    private let logger: Logger
    private var filter: LinkFilter
    private var source: (any DispatchSourceRead)?
    private var buffer: [UInt8]
    private var nextTrace: UInt64 = 0
    private var loggedMalformedKinds: Set<String> = []
    private var loggedRejectedNames: Set<InterfaceName> = []
    /// An overrun was reported and the socket has not been drained since.
    private var resyncPending = false
    private(set) var counters = Counters()
    private(set) var lastError: String?

    init(
        queue: DispatchQueue, socket: NetlinkSocket, requester: NetlinkRequester, filter: LinkFilter,
        writer: PortStateWriter, logger: Logger
    ) {
        self.queue = queue
        self.socket = socket
        self.requester = requester
        self.filter = filter
        self.writer = writer
        self.logger = logger
        self.buffer = [UInt8](repeating: 0, count: 64 * 1024)
    }

    /// Starts reading the event socket.
    func start() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        let source = DispatchSource.makeReadSource(fileDescriptor: self.socket.fileDescriptor, queue: self.queue)
        source.setEventHandler { [unowned self] in self.readAvailable() }
        self.source = source
        source.resume()
    }

    /// Registers the socket with Dispatch anew. An overrun sets the socket's error, which epoll reports as
    /// `EPOLLERR`, and libdispatch can disarm a read source on it: after each `ENOBUFS` the source is replaced.
    private func restartSource() {
        guard let old = self.source else { return }
        old.setEventHandler(handler: nil)
        old.cancel()
        self.source = nil
        self.start()
    }

    /// A safety net run from the status timer: reads whatever is queued. A working source leaves nothing (one
    /// `recv` returning `EAGAIN`); if something was there, the source missed it and is replaced.
    func pollForMissedEvents() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        guard self.source != nil else { return }
        let before = self.counters.datagrams
        self.readAvailable()
        if self.counters.datagrams != before {
            self.logger.warning(
                "The netlink read source missed \(self.counters.datagrams - before) datagrams; registering it again",
                metadata: ["EVENT": "netlink_source_restart"])
            self.restartSource()
        }
    }

    /// Stops reading (shutdown); what the kernel sends afterwards stays in the socket.
    func stop() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.source?.cancel()
        self.source = nil
    }

    /// Takes one datagram through the pipeline. Returns the names of the accepted ports it mentioned.
    @discardableResult
    func process(datagram: UnsafeRawBufferPointer) -> Set<String> {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.counters.datagrams += 1
        self.counters.bytes += datagram.count
        var mentioned: Set<String> = []
        NetlinkDecoder.forEach(in: datagram) { item in
            switch item {
            case .link(let message):
                self.handle(message, mentioned: &mentioned)
            case .malformed(let error):
                self.counters.malformed[error.kind, default: 0] += 1
                if self.loggedMalformedKinds.insert(error.kind).inserted {
                    self.logger.warning(
                        "Malformed netlink message (\(error)); skipping it and keeping the rest of the datagram",
                        metadata: ["EVENT": "malformed", "REASON": .string(error.kind)])
                }
                self.lastError = "malformed netlink: \(error.kind)"
            case .other(let type):
                if type == NetlinkMessageType.overrun { self.counters.overruns += 1 }
                self.counters.otherMessages += 1
            case .done, .error:
                self.counters.otherMessages += 1
            }
        }
        return mentioned
    }

    private func handle(_ message: LinkMessage, mentioned: inout Set<String>) {
        self.nextTrace &+= 1
        let trace = self.nextTrace
        if message.kind == .newLink { self.counters.newLinks += 1 } else { self.counters.delLinks += 1 }
        let verdict = self.filter.classify(message)
        switch verdict {
        case .accept(let update):
            self.counters.accepted += 1
            mentioned.insert(update.port)
            self.logMessage(message, trace: trace, level: .notice)
            self.writer.apply(update, trace: trace)
        case .ignore(let reason):
            self.counters.ignored[reason, default: 0] += 1
            switch reason {
            case .team, .deleteWithMaster:
                self.logMessage(message, trace: trace, level: .notice)
            case .oldInterface:
                self.logMessage(message, trace: trace, level: .info, suffix: ": old interface, ignoring")
            case .noName, .notAPort:
                break
            }
        case .reject(let reason):
            self.counters.rejected[reason, default: 0] += 1
            if let name = message.name, self.loggedRejectedNames.count < 1024,
                self.loggedRejectedNames.insert(name).inserted
            {
                self.logger.warning(
                    "Interface name \"\(name.escaped)\" cannot be a Redis key part (only A-Z a-z 0-9 . _ -), ignoring",
                    metadata: [
                        "IFINDEX": "\(message.ifindex)", "EVENT": "rejected", "REASON": .string(reason.rawValue),
                        "TRACE_ID": "\(trace)",
                    ])
            }
        }
    }

    /// Statement 26: the information SONiC logs for each message (type, name, admin, oper, MAC, ifindex, master,
    /// kind, flags).
    private func logMessage(_ message: LinkMessage, trace: UInt64, level: Logger.Level, suffix: String = "") {
        guard self.logger.logLevel <= level else { return }
        let name = message.name?.escaped ?? ""
        let type = message.kind == .newLink ? NetlinkMessageType.newLink : NetlinkMessageType.delLink
        var text = "nlmsg type:\(type) key:\(name) admin:\(message.isAdminUp ? 1 : 0) oper:\(message.isOperUp ? 1 : 0)"
        text += " addr:\(message.address?.description ?? "") ifindex:\(message.ifindex) master:\(message.master)"
        if let kind = message.linkKind { text += " type:\(kind.escaped)" }
        text += " flags:\(message.flags.rawValue)" + suffix
        self.logger.log(
            level: level, "\(text)",
            metadata: [
                "PORT": .string(name), "IFINDEX": "\(message.ifindex)",
                "EVENT": message.kind == .newLink ? "newlink" : "dellink", "TRACE_ID": "\(trace)",
            ])
    }

    private func readAvailable() {
        var overrun = false
        defer {
            self.writer.endOfBatch()
            if overrun { self.restartSource() }
        }
        for _ in 0..<Self.datagramsPerWakeup {
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
                _ = self.process(datagram: UnsafeRawBufferPointer(rebasing: raw[0..<count]))
            }
        }
    }

    /// `ENOBUFS`: the kernel dropped events for this socket. It reports this once and then drops every further
    /// event silently until the socket's queue is empty, so the resync dump waits until the queue is drained.
    private func lostEvents() {
        self.counters.overruns += 1
        self.lastError = "netlink ENOBUFS: events lost, resynced"
        self.logger.error(
            "netlink reports out of memory on reading a netlink socket. High possibility of a lost message; dumping every link again once the socket is drained",
            metadata: ["EVENT": "enobufs"])
        self.resyncPending = true
    }

    /// Dumps every link through the pipeline and deletes the ports that are gone from the kernel.
    func resync() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.counters.resyncs += 1
        let datagrams: [[UInt8]]
        do {
            datagrams = try self.requester.dumpLinks()
        } catch {
            self.lastError = "netlink dump: \(error)"
            self.logger.error("Dumping links to resync failed: \(error)", metadata: ["EVENT": "resync_failed"])
            return
        }
        var present: Set<String> = []
        for datagram in datagrams {
            datagram.withUnsafeBytes { raw in present.formUnion(self.process(datagram: raw)) }
        }
        for (port, wanted) in self.writer.state.wanted where !present.contains(port) {
            if case .state = wanted {
                self.nextTrace &+= 1
                self.logger.notice(
                    "Port \(port) is gone from the kernel after lost events; deleting it from state db",
                    metadata: ["PORT": .string(port), "EVENT": "resync_delete"])
                self.writer.apply(.deleted(port: port), trace: self.nextTrace)
            }
        }
        self.writer.endOfBatch()
    }
}
