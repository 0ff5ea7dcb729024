/// A kernel interface name held inline (at most 15 bytes, as `IFNAMSIZ` allows), so decoding and filtering a
/// link message allocates nothing. It keeps the kernel's bytes exactly, which need not be UTF-8.
public struct InterfaceName: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The largest name the kernel allows (`IFNAMSIZ - 1`).
    public static let maxLength = NetlinkLayout.ifnamsiz - 1

    private var low: UInt64 = 0
    private var high: UInt64 = 0
    /// The number of bytes in the name.
    public private(set) var count: Int = 0

    /// A name from its bytes; `nil` if empty or longer than `maxLength`.
    public init?(bytes: some Collection<UInt8>) {
        guard !bytes.isEmpty, bytes.count <= Self.maxLength else { return nil }
        var index = 0
        for byte in bytes {
            self.setByte(byte, at: index)
            index += 1
        }
        self.count = index
    }

    /// A name from raw bytes, read as two words; `nil` if empty or longer than `maxLength`.
    @inline(__always)
    init?(raw bytes: UnsafeRawBufferPointer) {
        let count = bytes.count
        guard count > 0, count <= Self.maxLength else { return nil }
        if count >= 8 {
            self.low = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
            // Bytes 8..<count are the top ones of the word that ends the name.
            let tail = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self))
            self.high = count == 8 ? 0 : tail >> UInt64((16 - count) * 8)
        } else {
            for index in 0..<count { self.setByte(bytes[index], at: index) }
        }
        self.count = count
    }

    /// A name from a string's UTF-8; `nil` if empty or longer than `maxLength` bytes.
    public init?(_ string: String) {
        self.init(bytes: Array(string.utf8))
    }

    @inline(__always)
    private mutating func setByte(_ byte: UInt8, at index: Int) {
        if index < 8 {
            self.low |= UInt64(byte) << (UInt64(index) * 8)
        } else {
            self.high |= UInt64(byte) << (UInt64(index - 8) * 8)
        }
    }

    /// The byte at `index` (`0 ..< count`).
    @inline(__always)
    public func byte(at index: Int) -> UInt8 {
        if index < 8 {
            return UInt8(truncatingIfNeeded: self.low >> (UInt64(index) * 8))
        }
        return UInt8(truncatingIfNeeded: self.high >> (UInt64(index - 8) * 8))
    }

    /// The name's bytes.
    public var bytes: [UInt8] { (0..<self.count).map { self.byte(at: $0) } }

    /// Whether the name starts with the ASCII `prefix` (a byte compare, case sensitive).
    public func hasPrefix(_ prefix: StaticString) -> Bool {
        let length = prefix.utf8CodeUnitCount
        guard length <= self.count else { return false }
        return prefix.withUTF8Buffer { buffer in
            for index in 0..<length where buffer[index] != self.byte(at: index) {
                return false
            }
            return true
        }
    }

    /// The name as a string. Only meaningful for valid UTF-8; use `escaped` for logs. Names of up to 15 bytes
    /// fit Swift's small-string storage, so this allocates nothing.
    public var string: String {
        withUnsafeBytes(of: (self.low.littleEndian, self.high.littleEndian)) { raw in
            String(decoding: UnsafeRawBufferPointer(rebasing: raw[0..<self.count]), as: UTF8.self)
        }
    }

    /// Whether `body` holds for both words of the name, given each word (little-endian: byte `i` in bits `8i`) and
    /// the high bits of the byte lanes the name uses in it (`0x80` per used byte).
    @inline(__always)
    func allWords(_ body: (_ word: UInt64, _ lanes: UInt64) -> Bool) -> Bool {
        let highs: UInt64 = 0x8080_8080_8080_8080
        let lowLanes = self.count >= 8 ? highs : highs & ((1 << UInt64(self.count * 8)) &- 1)
        let highLanes = self.count <= 8 ? 0 : highs & ((1 << UInt64((self.count - 8) * 8)) &- 1)
        return body(self.low, lowLanes) && (highLanes == 0 || body(self.high, highLanes))
    }

    /// `PortHash` of the name's bytes (the same as of its string's UTF-8).
    @inline(__always)
    func portHash(seed: UInt64) -> UInt64 {
        PortHash.hash(low: self.low, high: self.high, count: self.count, seed: seed)
    }

    /// The name for a log line: printable ASCII as it is, every other byte as `\xNN`.
    public var escaped: String {
        var result = ""
        for byte in self.bytes {
            if byte >= 0x21 && byte < 0x7F && byte != UInt8(ascii: "\\") {
                result.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16)
                result += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return result
    }

    public var description: String { self.escaped }

    public static func < (lhs: InterfaceName, rhs: InterfaceName) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}
