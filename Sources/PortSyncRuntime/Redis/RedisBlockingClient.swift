import CHiredis
import Glibc
import PortSyncCore

/// A blocking hiredis connection for the start-up sequence only, where every step needs the previous one's
/// answer and nothing else runs yet. It pipelines: `pipeline(_:)` sends every command, then reads every reply.
/// The long-running port path uses `RedisConnection` (async, on Dispatch) instead.
final class RedisBlockingClient {
    private let context: UnsafeMutablePointer<redisContext>

    /// Connects to the unix socket at `path`, failing after `timeoutMs` for connect and each read or write.
    init(unixSocket path: String, timeoutMs: Int) throws(RedisError) {
        let timeout = timeval(tv_sec: timeoutMs / 1000, tv_usec: (timeoutMs % 1000) * 1000)
        guard let context = redisConnectUnixWithTimeout(path, timeout) else {
            throw RedisError("cannot allocate a Redis context")
        }
        if context.pointee.err != 0 {
            let reason = Self.errorString(context)
            redisFree(context)
            throw RedisError("cannot connect to Redis at \(path): \(reason)")
        }
        _ = redisSetTimeout(context, timeout)
        self.context = context
    }

    deinit { redisFree(self.context) }

    /// Sends every command, then reads every reply, in order. An error reply is returned as `.error`; a lost
    /// connection or a timeout throws.
    func pipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        for command in commands {
            let encoded = command.encoded
            let status = encoded.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { chars in
                    redisAppendFormattedCommand(self.context, chars.baseAddress, chars.count)
                }
            }
            if status != REDIS_OK { throw RedisError("Redis write failed: \(Self.errorString(self.context))") }
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(self.context, &raw) == REDIS_OK, let reply = RedisReply(hiredis: raw) else {
                throw RedisError("Redis read failed: \(Self.errorString(self.context))")
            }
            freeReplyObject(raw)
            replies.append(reply)
        }
        return replies
    }

    /// One command; an error reply throws.
    @discardableResult
    func run(_ command: RedisCommand) throws(RedisError) -> RedisReply {
        let reply = try self.pipeline([command])[0]
        if case .error(let message) = reply { throw RedisError("\(command.name) failed: \(message)") }
        return reply
    }

    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }
}
