/// A TOML 1.0 parser: text in, a table of values with their positions out, or a `TOMLError` with the line and
/// column of the first problem. Every input ends in one or the other: nothing traps, integers beyond 64 bits are
/// errors, and recursion (arrays and inline tables only) is bounded by `Options.maximumDepth`: at 128 levels a
/// debug build needs under 1 MiB of stack, and the threads that read the configuration have 8 MiB.
///
/// ```swift
/// let table = try TOMLParser.parse("[log]\nlevel = \"info\"\n")
/// table["log"]?.table?["level"]?.string  // "info"
/// ```
///
/// It works on the UTF-8 bytes, with CRLF read as LF (inside multi-line strings too). Where TOML leaves a choice:
/// a leading byte order mark is skipped; a float too large for a Double is infinite, as IEEE 754 rounds it; a
/// fraction of a second finer than nanoseconds is truncated; a leap second (`:60`) is refused.
public struct TOMLParser {
    public struct Options: Sendable {
        /// How deep tables and arrays may nest (the document is depth 0; `a = [[1]]` reaches depth 2).
        public var maximumDepth: Int
        /// Whether strings and keys may hold U+0000 (`"\u0000"`), which TOML allows.
        public var allowsNUL: Bool

        public init(maximumDepth: Int = 128, allowsNUL: Bool = true) {
            self.maximumDepth = maximumDepth
            self.allowsNUL = allowsNUL
        }
    }

    public static func parse(_ text: String, options: Options = Options()) throws(TOMLError) -> TOMLTable {
        var parser = TOMLParser(text: text, options: options)
        return try parser.document()
    }

    let bytes: [UInt8]
    let options: Options
    /// The next byte to read.
    var offset: Int
    /// Where `position(at:)` last counted to, so that counting forward is linear over the whole text.
    private var counted: (offset: Int, position: TOMLPosition)
    private let start: Int

    private init(text: String, options: Options) {
        let source = Array(text.utf8)
        var bytes: [UInt8] = []
        if source.contains(TOMLSyntax.carriageReturn) {
            bytes.reserveCapacity(source.count)
            var index = 0
            while index < source.count {
                if source[index] == TOMLSyntax.carriageReturn, index + 1 < source.count,
                    source[index + 1] == TOMLSyntax.newline
                {
                    index += 1
                }
                bytes.append(source[index])
                index += 1
            }
        } else {
            bytes = source
        }
        self.bytes = bytes
        self.options = options
        self.start = bytes.starts(with: [0xef, 0xbb, 0xbf]) ? 3 : 0
        self.offset = self.start
        self.counted = (self.start, TOMLPosition(line: 1, column: 1))
    }

    // MARK: Positions and errors

    /// The line and column of byte `target` (columns count Unicode scalars).
    mutating func position(at target: Int) -> TOMLPosition {
        if target < self.counted.offset { self.counted = (self.start, TOMLPosition(line: 1, column: 1)) }
        var (index, position) = self.counted
        let end = min(target, self.bytes.count)
        while index < end {
            let byte = self.bytes[index]
            if byte == TOMLSyntax.newline {
                position = TOMLPosition(line: position.line + 1, column: 1)
            } else if byte & 0xc0 != 0x80 {
                position.column += 1
            }
            index += 1
        }
        if target > end { position.column += target - end }
        self.counted = (index, position)
        return position
    }

    /// A syntax error at `target` (the current byte by default): "Error while parsing <scope>: <detail>".
    mutating func error(_ scope: String, _ detail: String, at target: Int? = nil) -> TOMLError {
        TOMLError(.syntax, at: self.position(at: target ?? self.offset), "Error while parsing \(scope): \(detail)")
    }

    /// What is at `target`, for "saw …": `'x'`, `a newline`, `end of file` or `U+0001`.
    func saw(_ target: Int? = nil) -> String {
        let index = target ?? self.offset
        guard index < self.bytes.count else { return "end of file" }
        let byte = self.bytes[index]
        if byte == TOMLSyntax.newline { return "a newline" }
        if TOMLSyntax.isControl(byte) { return TOMLSyntax.scalarName(UInt32(byte)) }
        var length = 1
        while index + length < self.bytes.count, length < 4, self.bytes[index + length] & 0xc0 == 0x80 { length += 1 }
        return "'" + String(decoding: self.bytes[index..<(index + length)], as: UTF8.self) + "'"
    }

    func peek(_ distance: Int = 0) -> UInt8? {
        let index = self.offset + distance
        return index < self.bytes.count ? self.bytes[index] : nil
    }

    func next(is text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard self.offset + count <= self.bytes.count else { return false }
        return text.withUTF8Buffer { expected in
            (0..<count).allSatisfy { self.bytes[self.offset + $0] == expected[$0] }
        }
    }

    mutating func skipBlanks() {
        while let byte = self.peek(), byte == TOMLSyntax.space || byte == TOMLSyntax.tab { self.offset += 1 }
    }

    /// Skips a comment, if one starts here, up to (not including) the end of its line.
    mutating func skipComment() throws(TOMLError) {
        guard self.peek() == TOMLSyntax.hash else { return }
        self.offset += 1
        while let byte = self.peek(), byte != TOMLSyntax.newline {
            if TOMLSyntax.isControl(byte) && byte != TOMLSyntax.tab {
                throw self.error("comment", "\(TOMLSyntax.scalarName(UInt32(byte))) is not allowed in a comment")
            }
            self.offset += 1
        }
    }

    // MARK: The document

    private mutating func document() throws(TOMLError) -> TOMLTable {
        let root = TOMLTableBuilder(definition: .root, position: TOMLPosition(line: 1, column: 1), depth: 0)
        var current = root
        while true {
            self.skipBlanks()
            guard let byte = self.peek() else { break }
            if byte == TOMLSyntax.newline {
                self.offset += 1
                continue
            }
            let (scope, what): (String, String)
            if byte == TOMLSyntax.leftBracket {
                (scope, what) = ("table header", "the header")
                current = try self.header(root)
            } else if byte == TOMLSyntax.hash {
                (scope, what) = ("comment", "the comment")
            } else if TOMLSyntax.startsKey(byte) {
                (scope, what) = ("key-value pair", "the value")
                try self.keyValue(into: current, scope: scope)
            } else {
                throw self.error("statement", "expected a key, a [table] header or a comment, saw \(self.saw())")
            }
            self.skipBlanks()
            try self.skipComment()
            if let end = self.peek() {
                guard end == TOMLSyntax.newline else {
                    throw self.error(scope, "expected a comment or a newline after \(what), saw \(self.saw())")
                }
                self.offset += 1
            }
        }
        return root.table()
    }

    /// `key = value`, added to `table`.
    mutating func keyValue(into table: TOMLTableBuilder, scope: String) throws(TOMLError) {
        let key = try self.key(scope)
        guard self.peek() == TOMLSyntax.equals else {
            throw self.error(scope, "expected '=' after the key, saw \(self.saw())")
        }
        self.offset += 1
        self.skipBlanks()
        let valueOffset = self.offset
        let value = try self.value(depth: table.depth + key.parts.count)
        try self.insert(value, at: key, valueOffset: valueOffset, into: table, scope: scope)
    }

    // MARK: Keys

    struct Key {
        struct Part {
            var name: String
            /// The first byte of the part.
            var offset: Int
        }

        var parts: [Part]
        var offset: Int

        /// The key as written up to `index`, for messages.
        func text(through index: Int) -> String {
            TOMLKeyText.dotted(self.parts[...index].map(\.name))
        }
    }

    /// A bare, quoted or dotted key; the blanks after it are skipped.
    mutating func key(_ scope: String) throws(TOMLError) -> Key {
        var key = Key(parts: [], offset: self.offset)
        while true {
            let partOffset = self.offset
            let name: String
            switch self.peek() {
            case TOMLSyntax.quote?:
                name = try self.basicString(multiline: false)
            case TOMLSyntax.apostrophe?:
                name = try self.literalString(multiline: false)
            case let byte? where TOMLSyntax.isBareKeyByte(byte):
                while let byte = self.peek(), TOMLSyntax.isBareKeyByte(byte) { self.offset += 1 }
                name = String(decoding: self.bytes[partOffset..<self.offset], as: UTF8.self)
            default:
                throw self.error(scope, "expected a bare key (A-Z a-z 0-9 _ -) or a quoted key, saw \(self.saw())")
            }
            key.parts.append(Key.Part(name: name, offset: partOffset))
            self.skipBlanks()
            guard self.peek() == TOMLSyntax.dot else { return key }
            self.offset += 1
            self.skipBlanks()
        }
    }
}

/// The bytes TOML's grammar names.
enum TOMLSyntax {
    static let newline = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")
    static let tab = UInt8(ascii: "\t")
    static let space = UInt8(ascii: " ")
    static let hash = UInt8(ascii: "#")
    static let equals = UInt8(ascii: "=")
    static let dot = UInt8(ascii: ".")
    static let comma = UInt8(ascii: ",")
    static let quote = UInt8(ascii: "\"")
    static let apostrophe = UInt8(ascii: "'")
    static let backslash = UInt8(ascii: "\\")
    static let leftBracket = UInt8(ascii: "[")
    static let rightBracket = UInt8(ascii: "]")
    static let leftBrace = UInt8(ascii: "{")
    static let rightBrace = UInt8(ascii: "}")
    static let underscore = UInt8(ascii: "_")
    static let plus = UInt8(ascii: "+")
    static let minus = UInt8(ascii: "-")
    static let colon = UInt8(ascii: ":")

    static func isBareKeyByte(_ byte: UInt8) -> Bool {
        Self.isDigit(byte, radix: 36) || byte == Self.underscore || byte == Self.minus
    }

    static func startsKey(_ byte: UInt8) -> Bool {
        Self.isBareKeyByte(byte) || byte == Self.quote || byte == Self.apostrophe
    }

    /// U+0000 to U+001F and U+007F.
    static func isControl(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == 0x7f
    }

    /// The value of `byte` as a digit in `radix` (2, 8, 10, 16; 36 for "any ASCII letter or digit"), if it is one.
    static func digitValue(_ byte: UInt8, radix: Int) -> Int? {
        let value: Int
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): value = Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): value = Int(byte - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = Int(byte - UInt8(ascii: "A")) + 10
        default: return nil
        }
        return value < radix ? value : nil
    }

    static func isDigit(_ byte: UInt8, radix: Int = 10) -> Bool {
        Self.digitValue(byte, radix: radix) != nil
    }

    /// `U+001F`.
    static func scalarName(_ value: UInt32) -> String {
        let hex = String(value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
}
