/// One Redis command as its argument vector, byte exact.
///
/// Arguments are never interpolated into a command line, so no interface name or CONFIG_DB value can change a
/// command or form another key.
public struct RedisCommand: Sendable, Hashable, CustomStringConvertible {
    public var arguments: [[UInt8]]

    public init(_ arguments: [[UInt8]]) { self.arguments = arguments }

    public init(_ arguments: [String]) { self.arguments = arguments.map { Array($0.utf8) } }

    public init(_ arguments: String...) { self.init(arguments) }

    /// The command name, upper-cased (for logs and metrics).
    public var name: String { self.arguments.first.map { String(decoding: $0, as: UTF8.self).uppercased() } ?? "" }

    /// The RESP encoding (`*N\r\n$len\r\narg\r\n…`), appended to `buffer`.
    public func encode(into buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "*"))
        Self.appendDecimal(self.arguments.count, to: &buffer)
        buffer.append(contentsOf: [13, 10])
        for argument in self.arguments {
            buffer.append(UInt8(ascii: "$"))
            Self.appendDecimal(argument.count, to: &buffer)
            buffer.append(contentsOf: [13, 10])
            buffer.append(contentsOf: argument)
            buffer.append(contentsOf: [13, 10])
        }
    }

    /// The RESP encoding as a new buffer.
    public var encoded: [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 + self.arguments.reduce(0) { $0 + $1.count + 16 })
        self.encode(into: &buffer)
        return buffer
    }

    /// Appends `value` in decimal (`value` is a length or a count: never negative).
    static func appendDecimal(_ value: Int, to buffer: inout [UInt8]) {
        if value < 10 {
            buffer.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: max(value, 0)))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { raw in
            var start = raw.count
            var rest = value
            while rest > 0 && start > 0 {
                start -= 1
                raw[start] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            }
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[start...]))
        }
    }

    /// Arguments joined by spaces, non-printable bytes escaped (for debug logs).
    public var description: String {
        self.arguments.map { argument in
            argument.map { byte in
                byte >= 0x20 && byte < 0x7F ? String(Unicode.Scalar(byte)) : "\\x" + String(byte, radix: 16)
            }.joined()
        }.joined(separator: " ")
    }
}

/// A Redis reply, converted from hiredis's `redisReply` at the boundary.
public enum RedisReply: Sendable, Hashable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
    case array([RedisReply])

    /// The bulk or status payload as a string.
    public var string: String? {
        switch self {
        case .bulk(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }

    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    public var array: [RedisReply]? {
        if case .array(let items) = self { return items }
        return nil
    }

    public var isError: Bool {
        if case .error = self { return true }
        return false
    }

    /// An `HGETALL` reply as ordered field/value pairs.
    public var fieldValuePairs: [(field: [UInt8], value: [UInt8])]? {
        guard case .array(let items) = self, items.count % 2 == 0 else { return nil }
        var pairs: [(field: [UInt8], value: [UInt8])] = []
        pairs.reserveCapacity(items.count / 2)
        var index = 0
        while index < items.count {
            guard case .bulk(let field) = items[index], case .bulk(let value) = items[index + 1] else { return nil }
            pairs.append((field, value))
            index += 2
        }
        return pairs
    }
}
