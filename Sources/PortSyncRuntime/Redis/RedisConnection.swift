import CHiredis
import Dispatch
import Glibc
import PortSyncCore

/// One asynchronous hiredis connection driven by Dispatch read and write sources on its owner's serial queue.
///
/// Commands are sent pre-encoded (`redisAsyncFormattedCommand`), replies come back in order, and each reply is
/// handed to the completion given with its command. When the connection drops, every pending completion gets
/// `nil`, in order, and then `onDisconnect` runs once.
///
/// Threading: every method and every callback runs on `queue` (asserted). The type is `@unchecked Sendable`
/// only so that Dispatch handlers can capture it; it is never used from another queue.
final class RedisConnection: @unchecked Sendable {
    typealias Completion = @Sendable (RedisReply?) -> Void

    let queue: DispatchQueue
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private var readSource: (any DispatchSourceRead)?
    private var writeSource: (any DispatchSourceWrite)?
    private var reading = false
    private var writing = false
    /// Completions of commands sent and not answered yet, oldest first (hiredis answers in order).
    private var completions = CompletionQueue()
    private var onConnect: (@Sendable (RedisError?) -> Void)?
    private var onDisconnect: (@Sendable (String) -> Void)?
    private var closed = false

    /// Commands sent and not yet answered.
    var pendingCount: Int { self.completions.count }
    var isConnected: Bool { self.context != nil && !self.closed }

    init(queue: DispatchQueue) { self.queue = queue }

    /// Starts connecting to the unix socket at `path`. `connected` runs once with `nil` or the failure;
    /// after a success, `disconnected` runs once when the connection drops for any reason but `close()`.
    func connect(
        unixSocket path: String, connected: @escaping @Sendable (RedisError?) -> Void,
        disconnected: @escaping @Sendable (String) -> Void
    ) {
        dispatchPrecondition(condition: .onQueue(self.queue))
        // hiredis writes with write(2): a server that went away must give EPIPE, not kill the process.
        signal(SIGPIPE, SIG_IGN)
        guard let context = redisAsyncConnectUnix(path) else {
            connected(RedisError("cannot allocate a Redis context"))
            return
        }
        if context.pointee.err != 0 {
            let reason = context.pointee.errstr.map { String(cString: $0) } ?? "error \(context.pointee.err)"
            redisAsyncFree(context)
            connected(RedisError("cannot connect to Redis at \(path): \(reason)"))
            return
        }
        // Each source watches its own duplicate of hiredis's descriptor, closed by its cancel handler. On Linux a
        // read and a write source on one descriptor share one epoll registration, and a write-readiness event can
        // reach the read source as an empty read and leave it unarmed for the reply that follows (the connection
        // then waits forever). And hiredis closes its own descriptor as soon as it frees the context: a connection
        // opened right after could get the same number while libdispatch still unregisters the old one.
        let readDescriptor = fcntl(context.pointee.c.fd, F_DUPFD_CLOEXEC, 0)
        let writeDescriptor = readDescriptor < 0 ? -1 : fcntl(context.pointee.c.fd, F_DUPFD_CLOEXEC, 0)
        guard readDescriptor >= 0, writeDescriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            if readDescriptor >= 0 { Glibc.close(readDescriptor) }
            redisAsyncFree(context)
            connected(RedisError("cannot watch the Redis connection at \(path): \(reason)"))
            return
        }
        self.context = context
        self.closed = false
        self.onConnect = connected
        self.onDisconnect = disconnected
        // hiredis keeps a +1 on this object until its cleanup hook, so no callback can outlive it.
        let retained = Unmanaged.passRetained(self).toOpaque()
        context.pointee.data = retained
        context.pointee.ev.data = retained
        let read = DispatchSource.makeReadSource(fileDescriptor: readDescriptor, queue: self.queue)
        read.setEventHandler { [unowned self] in
            if let context = self.context { redisAsyncHandleRead(context) }
        }
        read.setCancelHandler { Glibc.close(readDescriptor) }
        let write = DispatchSource.makeWriteSource(fileDescriptor: writeDescriptor, queue: self.queue)
        write.setEventHandler { [unowned self] in
            if let context = self.context { redisAsyncHandleWrite(context) }
        }
        write.setCancelHandler { Glibc.close(writeDescriptor) }
        self.readSource = read
        self.writeSource = write
        context.pointee.ev.addRead = { data in RedisConnection.from(data)?.setReading(true) }
        context.pointee.ev.delRead = { data in RedisConnection.from(data)?.setReading(false) }
        context.pointee.ev.addWrite = { data in RedisConnection.from(data)?.setWriting(true) }
        context.pointee.ev.delWrite = { data in RedisConnection.from(data)?.setWriting(false) }
        context.pointee.ev.cleanup = { data in RedisConnection.from(data)?.cleanup() }
        redisAsyncSetConnectCallback(context) { context, status in
            guard let context, let connection = RedisConnection.from(context.pointee.data) else { return }
            let callback = connection.onConnect
            connection.onConnect = nil
            if status == REDIS_OK {
                callback?(nil)
            } else {
                let reason = context.pointee.errstr.map { String(cString: $0) } ?? "status \(status)"
                callback?(RedisError("cannot connect to Redis: \(reason)"))
            }
        }
        redisAsyncSetDisconnectCallback(context) { context, status in
            guard let context, let connection = RedisConnection.from(context.pointee.data) else { return }
            let reason = context.pointee.errstr.map { String(cString: $0) } ?? ""
            connection.disconnected(reason: status == REDIS_OK ? "closed" : (reason.isEmpty ? "lost" : reason))
        }
    }

    /// Queues `command`; `completion` gets its reply, or `nil` if the connection drops first.
    /// Returns `false` (and does not call `completion`) when not connected.
    @discardableResult
    func send(_ command: RedisCommand, completion: @escaping Completion) -> Bool {
        self.send(encoded: command.encoded, completion: completion)
    }

    /// Queues an already RESP-encoded command.
    @discardableResult
    func send(encoded: [UInt8], completion: @escaping Completion) -> Bool {
        dispatchPrecondition(condition: .onQueue(self.queue))
        guard let context = self.context, !self.closed else { return false }
        let status = encoded.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                redisAsyncFormattedCommand(
                    context,
                    { context, reply, _ in
                        guard let context, let connection = RedisConnection.from(context.pointee.data) else { return }
                        connection.completions.popFirst()?(RedisReply(hiredis: reply))
                    }, nil, chars.baseAddress, chars.count)
            }
        }
        guard status == REDIS_OK else { return false }
        self.completions.append(completion)
        return true
    }

    /// Writes what is buffered now, instead of on the next turn of the queue (lower latency for a batch).
    func flush() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        if let context = self.context, !self.closed, self.writing { redisAsyncHandleWrite(context) }
    }

    /// Closes the connection; pending completions get `nil`. `onDisconnect` is not called.
    func close() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        guard let context = self.context, !self.closed else { return }
        self.closed = true
        self.onDisconnect = nil
        redisAsyncFree(context)
    }

    // MARK: hiredis hooks (all on `queue`)

    private static func from(_ data: UnsafeMutableRawPointer?) -> RedisConnection? {
        guard let data else { return nil }
        return Unmanaged<RedisConnection>.fromOpaque(data).takeUnretainedValue()
    }

    private func setReading(_ on: Bool) {
        guard on != self.reading, let source = self.readSource else { return }
        self.reading = on
        if on { source.resume() } else { source.suspend() }
    }

    private func setWriting(_ on: Bool) {
        guard on != self.writing, let source = self.writeSource else { return }
        self.writing = on
        if on { source.resume() } else { source.suspend() }
    }

    private func disconnected(reason: String) {
        let callback = self.onDisconnect
        self.onDisconnect = nil
        let connectCallback = self.onConnect
        self.onConnect = nil
        // Completions were already failed by hiredis (each got a NULL reply) before this runs.
        self.queue.async {
            connectCallback?(RedisError("cannot connect to Redis: \(reason)"))
            callback?(reason)
        }
    }

    /// hiredis is freeing the context: cancel the sources (resumed first: a suspended source must not be
    /// released) and drop hiredis's +1 once the current callback has returned.
    private func cleanup() {
        for source in [self.readSource as (any DispatchSourceProtocol)?, self.writeSource] {
            guard let source else { continue }
            source.cancel()
        }
        if !self.reading { self.readSource?.resume() }
        if !self.writing { self.writeSource?.resume() }
        self.readSource = nil
        self.writeSource = nil
        self.reading = false
        self.writing = false
        self.context = nil
        let retained = Unmanaged.passUnretained(self)
        self.queue.async { retained.release() }
    }
}

/// A FIFO of completions that does not shift an array on every pop.
private struct CompletionQueue {
    private var items: [RedisConnection.Completion?] = []
    private var head = 0

    var count: Int { self.items.count - self.head }

    mutating func append(_ item: @escaping RedisConnection.Completion) { self.items.append(item) }

    mutating func popFirst() -> RedisConnection.Completion? {
        guard self.head < self.items.count else { return nil }
        let item = self.items[self.head]
        self.items[self.head] = nil
        self.head += 1
        if self.head > 1024 && self.head * 2 > self.items.count {
            self.items.removeFirst(self.head)
            self.head = 0
        }
        return item
    }
}
