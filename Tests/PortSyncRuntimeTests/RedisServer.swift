import Foundation
import Glibc

/// A real redis-server on a private unix socket, for one test. Started with keyspace notifications on, as SONiC
/// runs it. `stop()` kills it (SIGKILL, like a crash); `start()` again brings a new, empty server up on the same
/// socket.
final class RedisServer: @unchecked Sendable {
    let directory: URL
    var socketPath: String { self.directory.appendingPathComponent("redis.sock").path }
    private var process: Process?

    init() throws {
        self.directory = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("psd-redis-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        try self.start()
    }

    /// Starts redis-server and returns once it logs that it accepts connections.
    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = [
            "--port", "0", "--unixsocket", self.socketPath, "--unixsocketperm", "700", "--save", "",
            "--appendonly", "no", "--notify-keyspace-events", "AKE", "--databases", "100",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        // Wait for the line redis-server prints once it listens (an event, not a timer).
        var seen = Data()
        let handle = output.fileHandleForReading
        // Redis 7 says "Ready to accept connections" or "ready to accept connections at <socket>".
        while !String(decoding: seen, as: UTF8.self).lowercased().contains("ready to accept connections") {
            let chunk = handle.availableData
            if chunk.isEmpty { throw TestFailure("redis-server exited before accepting connections") }
            seen.append(chunk)
        }
        // Keep reading so redis-server never blocks on a full pipe.
        handle.readabilityHandler = { handle in _ = handle.availableData }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    func kill() {
        guard let process = self.process else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
        try? FileManager.default.removeItem(atPath: self.socketPath)
    }

    deinit {
        self.kill()
        try? FileManager.default.removeItem(at: self.directory)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` on `queue` and waits (with a deadline) until it calls its `done` argument.
func onQueue<T: Sendable>(
    _ queue: DispatchQueue, timeout: TimeInterval = 10,
    _ body: @escaping @Sendable (@escaping @Sendable (T) -> Void) -> Void
) throws -> T {
    let semaphore = DispatchSemaphore(value: 0)
    let box = ResultBox<T>()
    queue.async {
        body { value in
            box.set(value)
            semaphore.signal()
        }
    }
    guard semaphore.wait(timeout: .now() + timeout) == .success, let value = box.value else {
        throw TestFailure("timed out after \(timeout) s")
    }
    return value
}

final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T?
    func set(_ value: T) {
        self.lock.lock()
        if self.stored == nil { self.stored = value }
        self.lock.unlock()
    }
    var value: T? {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.stored
    }
}
