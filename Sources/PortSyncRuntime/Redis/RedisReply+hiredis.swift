import CHiredis
import PortSyncCore

extension RedisReply {
    /// Converts hiredis's reply tree; `nil` in, `nil` out (hiredis passes `NULL` when the connection dropped).
    init?(hiredis raw: UnsafeMutableRawPointer?) {
        guard let raw else { return nil }
        self.init(reply: raw.assumingMemoryBound(to: redisReply.self))
    }

    init(reply pointer: UnsafeMutablePointer<redisReply>) {
        let reply = pointer.pointee
        switch reply.type {
        case REDIS_REPLY_STRING:
            self = .bulk(Self.bytes(reply.str, reply.len))
        case REDIS_REPLY_STATUS:
            self = .status(String(decoding: Self.bytes(reply.str, reply.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: Self.bytes(reply.str, reply.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(reply.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(Int(reply.elements))
            if let elements = reply.element {
                for index in 0..<Int(reply.elements) {
                    if let element = elements[index] {
                        items.append(RedisReply(reply: element))
                    } else {
                        items.append(.null)
                    }
                }
            }
            self = .array(items)
        default:
            self = .null
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> [UInt8] {
        guard let pointer, length > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }
}

/// A Redis error reply or a lost connection, as seen by a caller.
public struct RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { self.message }
}
