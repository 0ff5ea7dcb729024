/// The STATE_DB writes of several ports as one call of `SonicScripts.conditionalStateSetBatch`, encoded in RESP as
/// ports are added, with no per-argument array.
///
/// A port is four arguments (name, `netdev_oper_status`, `admin_status`, `mtu`) appended to one buffer; `encoded`
/// puts the command's head before them. `stateFields` gives the same values the single-port command writes.
public struct StateWriteBatch: Sendable {
    /// Ports in the batch.
    public private(set) var count = 0
    private var body: [UInt8] = []

    public init() {}

    public var isEmpty: Bool { self.count == 0 }

    /// Adds one port's write.
    public mutating func append(port: String, state: PortOperState) {
        var port = port
        port.withUTF8 { Self.appendArgument(UnsafeRawBufferPointer($0), to: &self.body) }
        self.body.append(contentsOf: state.operUp ? Self.up : Self.down)
        self.body.append(contentsOf: state.adminUp ? Self.up : Self.down)
        var digits: (UInt64, UInt64) = (0, 0)
        let mtu = withUnsafeMutableBytes(of: &digits) { raw in
            var start = raw.count
            var rest = state.mtu
            repeat {
                start -= 1
                raw[start] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            } while rest > 0 && start > 0
            return (start, raw.count - start)
        }
        withUnsafeBytes(of: &digits) { raw in
            Self.appendArgument(UnsafeRawBufferPointer(rebasing: raw[mtu.0..<(mtu.0 + mtu.1)]), to: &self.body)
        }
        self.count += 1
    }

    /// `up` and `down` as RESP bulk strings.
    private static let up: [UInt8] = Array("$2\r\nup\r\n".utf8)
    private static let down: [UInt8] = Array("$4\r\ndown\r\n".utf8)

    /// Empties the batch, keeping its buffer.
    public mutating func removeAll() {
        self.body.removeAll(keepingCapacity: true)
        self.count = 0
    }

    /// `EVALSHA <sha> 0 <APPL_DB id> <STATE_DB id> <APPL_DB prefix> <STATE_DB prefix>` and every port's four
    /// arguments, in RESP.
    public func encoded(schema: SonicSchema, scriptSHA: String = SonicScripts.conditionalStateSetBatchSHA) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(self.body.count + 128)
        buffer.append(UInt8(ascii: "*"))
        RedisCommand.appendDecimal(7 + 4 * self.count, to: &buffer)
        buffer.append(contentsOf: [13, 10])
        Self.appendArgument("EVALSHA".utf8, to: &buffer)
        Self.appendArgument(scriptSHA.utf8, to: &buffer)
        Self.appendArgument("0".utf8, to: &buffer)
        Self.appendArgument(String(schema.databases.appl.id).utf8, to: &buffer)
        Self.appendArgument(String(schema.databases.state.id).utf8, to: &buffer)
        Self.appendArgument(schema.applPortKey("").utf8, to: &buffer)
        Self.appendArgument(schema.statePortKey("").utf8, to: &buffer)
        buffer.append(contentsOf: self.body)
        return buffer
    }

    private static func appendArgument(_ bytes: some Collection<UInt8>, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "$"))
        RedisCommand.appendDecimal(bytes.count, to: &buffer)
        buffer.append(13)
        buffer.append(10)
        buffer.append(contentsOf: bytes)
        buffer.append(13)
        buffer.append(10)
    }
}
