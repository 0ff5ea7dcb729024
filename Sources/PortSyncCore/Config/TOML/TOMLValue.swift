/// Where something is written in a TOML text: a 1-based line and a 1-based column counted in Unicode scalars.
public struct TOMLPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public static func < (lhs: TOMLPosition, rhs: TOMLPosition) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    public var description: String { "\(self.line):\(self.column)" }
}

/// One TOML value and where it is written.
///
/// Equality compares what the values hold, not where they are written: a value parsed from a text equals the same
/// value built by hand.
public struct TOMLValue: Sendable, Equatable, CustomStringConvertible {
    public enum Content: Sendable {
        case string(String)
        case integer(Int64)
        case float(Double)
        case boolean(Bool)
        /// An offset date-time, a local date-time, a local date or a local time.
        case dateTime(TOMLDateTime)
        case array([TOMLValue])
        case table(TOMLTable)
    }

    public var content: Content
    /// Where the value starts: its first character, the `[` of a header for a table defined by one, or the start of
    /// the key-value pair for a table made by dotted keys.
    public var position: TOMLPosition

    public init(_ content: Content, at position: TOMLPosition = TOMLPosition(line: 1, column: 1)) {
        self.content = content
        self.position = position
    }

    public static func == (lhs: TOMLValue, rhs: TOMLValue) -> Bool {
        switch (lhs.content, rhs.content) {
        case (.string(let a), .string(let b)): a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.integer(let a), .integer(let b)): a == b
        case (.float(let a), .float(let b)): a == b || (a.isNaN && b.isNaN)
        case (.boolean(let a), .boolean(let b)): a == b
        case (.dateTime(let a), .dateTime(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.table(let a), .table(let b)): a == b
        default: false
        }
    }

    /// The type's name in error messages: table, array, string, integer, floating-point number, bool, date, time or
    /// date-time.
    public var typeName: String {
        switch self.content {
        case .string: "string"
        case .integer: "integer"
        case .float: "floating-point number"
        case .boolean: "bool"
        case .dateTime(let value):
            switch value.kind {
            case .localDate: "date"
            case .localTime: "time"
            case .localDateTime, .offsetDateTime: "date-time"
            }
        case .array: "array"
        case .table: "table"
        }
    }

    public var string: String? {
        if case .string(let value) = self.content { value } else { nil }
    }

    public var integer: Int64? {
        if case .integer(let value) = self.content { value } else { nil }
    }

    public var float: Double? {
        if case .float(let value) = self.content { value } else { nil }
    }

    public var boolean: Bool? {
        if case .boolean(let value) = self.content { value } else { nil }
    }

    public var dateTime: TOMLDateTime? {
        if case .dateTime(let value) = self.content { value } else { nil }
    }

    public var array: [TOMLValue]? {
        if case .array(let value) = self.content { value } else { nil }
    }

    public var table: TOMLTable? {
        if case .table(let value) = self.content { value } else { nil }
    }

    public var description: String {
        switch self.content {
        case .string(let value): "\"" + String(value.unicodeScalars.map { $0.escapedForTOML }.joined()) + "\""
        case .integer(let value): String(value)
        case .float(let value): value.isNaN ? "nan" : value.isInfinite ? (value < 0 ? "-inf" : "inf") : "\(value)"
        case .boolean(let value): String(value)
        case .dateTime(let value): value.description
        case .array(let values): "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .table(let table): table.description
        }
    }
}

/// A TOML table: keys in the order they are first written, each with where it is written and its value.
///
/// Keys are compared scalar by scalar, as TOML does (`"é"` written precomposed and decomposed are two keys), and
/// equality ignores order and positions.
public struct TOMLTable: Sendable, Equatable, CustomStringConvertible {
    /// How a table came to be.
    public enum Definition: Sendable, Hashable {
        /// The document itself.
        case root
        /// A `[name]` header, or one `[[name]]` of an array of tables.
        case header
        /// Only named on the way to another table (`a` of `[a.b]`), never defined itself.
        case implicit
        /// Dotted keys (`a.b = 1` makes the table `a`).
        case dottedKeys
        /// `{ … }`, complete as written.
        case inline
    }

    public struct Entry: Sendable {
        public var key: String
        /// Where the key is first written: the start of its key-value pair (the whole dotted key), or the `[` of the
        /// header that names it.
        public var keyPosition: TOMLPosition
        public var value: TOMLValue

        public init(key: String, keyPosition: TOMLPosition, value: TOMLValue) {
            self.key = key
            self.keyPosition = keyPosition
            self.value = value
        }
    }

    public var definition: Definition
    public private(set) var entries: [Entry] = []
    private var index: [[Unicode.Scalar]: Int] = [:]

    public init(definition: Definition = .inline) {
        self.definition = definition
    }

    /// A table of `pairs` (a later duplicate key replaces the earlier value).
    public init(_ pairs: [(String, TOMLValue)], definition: Definition = .inline) {
        self.definition = definition
        for (key, value) in pairs { self[key] = value }
    }

    public var keys: [String] { self.entries.map(\.key) }
    public var count: Int { self.entries.count }
    public var isEmpty: Bool { self.entries.isEmpty }

    public func entry(_ key: String) -> Entry? {
        self.index[Array(key.unicodeScalars)].map { self.entries[$0] }
    }

    public subscript(key: String) -> TOMLValue? {
        get { self.entry(key)?.value }
        set {
            let scalars = Array(key.unicodeScalars)
            if let slot = self.index[scalars] {
                if let newValue {
                    self.entries[slot].value = newValue
                } else {
                    self.entries.remove(at: slot)
                    self.index = [:]
                    for (offset, entry) in self.entries.enumerated() {
                        self.index[Array(entry.key.unicodeScalars)] = offset
                    }
                }
            } else if let newValue {
                self.append(Entry(key: key, keyPosition: newValue.position, value: newValue))
            }
        }
    }

    /// Adds an entry; the key must not be in the table yet.
    mutating func append(_ entry: Entry) {
        self.index[Array(entry.key.unicodeScalars)] = self.entries.count
        self.entries.append(entry)
    }

    public static func == (lhs: TOMLTable, rhs: TOMLTable) -> Bool {
        lhs.count == rhs.count && lhs.entries.allSatisfy { entry in rhs.entry(entry.key)?.value == entry.value }
    }

    public var description: String {
        "{" + self.entries.map { "\(TOMLKeyText.quoted($0.key)) = \($0.value)" }.joined(separator: ", ") + "}"
    }
}

/// An offset date-time, a local date-time, a local date or a local time, in its parts.
public struct TOMLDateTime: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case offsetDateTime, localDateTime, localDate, localTime
    }

    public struct Date: Sendable, Hashable {
        public var year: Int
        public var month: Int
        public var day: Int

        public init(year: Int, month: Int, day: Int) {
            self.year = year
            self.month = month
            self.day = day
        }
    }

    public struct Time: Sendable, Hashable {
        public var hour: Int
        public var minute: Int
        public var second: Int
        /// The fraction of the second; digits beyond nanoseconds are truncated, as TOML allows.
        public var nanosecond: Int

        public init(hour: Int, minute: Int, second: Int, nanosecond: Int = 0) {
            self.hour = hour
            self.minute = minute
            self.second = second
            self.nanosecond = nanosecond
        }
    }

    public var date: Date?
    public var time: Time?
    /// Minutes east of UTC (`Z` is 0); nil for a local value.
    public var offsetMinutes: Int?

    public init(date: Date?, time: Time?, offsetMinutes: Int? = nil) {
        self.date = date
        self.time = time
        self.offsetMinutes = offsetMinutes
    }

    public var kind: Kind {
        if self.date == nil { return .localTime }
        if self.time == nil { return .localDate }
        return self.offsetMinutes == nil ? .localDateTime : .offsetDateTime
    }

    /// RFC 3339: `1979-05-27T07:32:00.5-07:00`, `1979-05-27`, `07:32:00`; the fraction without trailing zeros and a
    /// zero offset as `Z`.
    public var description: String {
        var text = ""
        if let date = self.date {
            text += Self.digits(date.year, 4) + "-" + Self.digits(date.month, 2) + "-" + Self.digits(date.day, 2)
        }
        if let time = self.time {
            if !text.isEmpty { text += "T" }
            text += Self.digits(time.hour, 2) + ":" + Self.digits(time.minute, 2) + ":" + Self.digits(time.second, 2)
            if time.nanosecond > 0 {
                var fraction = Self.digits(time.nanosecond, 9)
                while fraction.hasSuffix("0") { fraction.removeLast() }
                text += "." + fraction
            }
        }
        if let offset = self.offsetMinutes {
            if offset == 0 {
                text += "Z"
            } else {
                let magnitude = abs(offset)
                text += (offset < 0 ? "-" : "+") + Self.digits(magnitude / 60, 2) + ":" + Self.digits(magnitude % 60, 2)
            }
        }
        return text
    }

    private static func digits(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
}

/// How keys and strings are spelt back in messages and descriptions.
enum TOMLKeyText {
    /// `key` as a bare key if it can be one, else as a basic string.
    static func quoted(_ key: String) -> String {
        let bare =
            !key.isEmpty && key.unicodeScalars.allSatisfy { $0.isASCII && TOMLSyntax.isBareKeyByte(UInt8($0.value)) }
        return bare ? key : "\"" + key.unicodeScalars.map(\.escapedForTOML).joined() + "\""
    }

    /// A dotted key, each part as `quoted` spells it.
    static func dotted(_ parts: [String]) -> String {
        parts.map(Self.quoted).joined(separator: ".")
    }
}

extension Unicode.Scalar {
    /// The scalar as it would be written inside a TOML basic string.
    fileprivate var escapedForTOML: String {
        switch self {
        case "\"": "\\\""
        case "\\": "\\\\"
        case "\n": "\\n"
        case "\t": "\\t"
        case "\r": "\\r"
        default:
            if self.value < 0x20 || self.value == 0x7f {
                "\\u" + String(repeating: "0", count: 4 - String(self.value, radix: 16).count)
                    + String(self.value, radix: 16, uppercase: true)
            } else {
                String(self)
            }
        }
    }
}
