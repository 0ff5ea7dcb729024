extension TOMLParser {
    /// The value that starts here. `depth` is where it would sit (an array or inline table deeper than
    /// `Options.maximumDepth` is an error, which bounds the recursion). Only arrays and inline tables recurse, and
    /// through this small function: the scalars' larger frames are never on the stack more than once.
    mutating func value(depth: Int) throws(TOMLError) -> TOMLValue {
        let position = self.position(at: self.offset)
        switch self.peek() {
        case TOMLSyntax.leftBracket?:
            return TOMLValue(.array(try self.array(depth: depth)), at: position)
        case TOMLSyntax.leftBrace?:
            return TOMLValue(.table(try self.inlineTable(depth: depth, position: position)), at: position)
        default:
            return TOMLValue(try self.scalar(), at: position)
        }
    }

    /// A string, boolean, number, date or time.
    private mutating func scalar() throws(TOMLError) -> TOMLValue.Content {
        guard let byte = self.peek() else { throw self.error("value", "expected value, saw end of file") }
        switch byte {
        case TOMLSyntax.quote:
            return .string(try self.basicString(multiline: self.next(is: "\"\"\"")))
        case TOMLSyntax.apostrophe:
            return .string(try self.literalString(multiline: self.next(is: "'''")))
        case UInt8(ascii: "t") where self.next(is: "true"):
            self.offset += 4
            return .boolean(true)
        case UInt8(ascii: "f") where self.next(is: "false"):
            self.offset += 5
            return .boolean(false)
        default:
            break
        }
        if let special = self.specialFloat() { return .float(special) }
        if TOMLSyntax.isDigit(byte) || byte == TOMLSyntax.plus || byte == TOMLSyntax.minus {
            if TOMLSyntax.isDigit(byte), let dateTime = try self.dateTime() { return .dateTime(dateTime) }
            return try self.number()
        }
        throw self.error("value", "expected value, saw \(self.saw())")
    }

    // MARK: Arrays and inline tables

    /// `[ value, value, ]`: any types, newlines and comments between the values, a trailing comma allowed.
    private mutating func array(depth: Int) throws(TOMLError) -> [TOMLValue] {
        guard depth <= self.options.maximumDepth else {
            throw self.error("array", "arrays and tables nest deeper than \(self.options.maximumDepth) levels")
        }
        self.offset += 1
        var elements: [TOMLValue] = []
        while true {
            try self.skipArraySpace()
            if self.peek() == TOMLSyntax.rightBracket {
                self.offset += 1
                return elements
            }
            elements.append(try self.value(depth: depth + 1))
            try self.skipArraySpace()
            switch self.peek() {
            case TOMLSyntax.rightBracket?:
                self.offset += 1
                return elements
            case TOMLSyntax.comma?:
                self.offset += 1
            default:
                throw self.error("array", "expected ',' or ']' after a value, saw \(self.saw())")
            }
        }
    }

    /// Blanks, newlines and comments, which arrays allow between their values.
    private mutating func skipArraySpace() throws(TOMLError) {
        while let byte = self.peek() {
            if byte == TOMLSyntax.space || byte == TOMLSyntax.tab || byte == TOMLSyntax.newline {
                self.offset += 1
            } else if byte == TOMLSyntax.hash {
                try self.skipComment()
            } else {
                return
            }
        }
    }

    /// `{ key = value, a.b = value }` on one line, without a trailing comma; complete once closed.
    private mutating func inlineTable(depth: Int, position: TOMLPosition) throws(TOMLError) -> TOMLTable {
        let scope = "inline table"
        guard depth <= self.options.maximumDepth else {
            throw self.error(scope, "arrays and tables nest deeper than \(self.options.maximumDepth) levels")
        }
        self.offset += 1
        let table = TOMLTableBuilder(definition: .inline, position: position, depth: depth)
        self.skipBlanks()
        if self.peek() == TOMLSyntax.rightBrace {
            self.offset += 1
            return table.table()
        }
        while true {
            guard let byte = self.peek(), TOMLSyntax.startsKey(byte) else {
                let after = self.bytes[..<self.offset].last { $0 != TOMLSyntax.space && $0 != TOMLSyntax.tab }
                let what = after == TOMLSyntax.comma ? " (no comma after the last pair)" : ""
                throw self.error(scope, "expected a key\(what), saw \(self.saw())")
            }
            try self.keyValue(into: table, scope: scope)
            self.skipBlanks()
            switch self.peek() {
            case TOMLSyntax.rightBrace?:
                self.offset += 1
                return table.table()
            case TOMLSyntax.comma?:
                self.offset += 1
                self.skipBlanks()
            default:
                throw self.error(scope, "expected ',' or '}' on the same line, saw \(self.saw())")
            }
        }
    }

    // MARK: Numbers

    /// `inf`, `nan`, with an optional sign.
    private mutating func specialFloat() -> Double? {
        let signed = self.peek() == TOMLSyntax.plus || self.peek() == TOMLSyntax.minus
        let negative = self.peek() == TOMLSyntax.minus
        if signed { self.offset += 1 }
        if self.next(is: "inf") {
            self.offset += 3
            return negative ? -Double.infinity : Double.infinity
        }
        if self.next(is: "nan") {
            self.offset += 3
            return negative ? -Double.nan : Double.nan
        }
        if signed { self.offset -= 1 }
        return nil
    }

    /// A decimal, hexadecimal (`0x`), octal (`0o`) or binary (`0b`) integer, or a float.
    private mutating func number() throws(TOMLError) -> TOMLValue.Content {
        let start = self.offset
        if self.peek() == UInt8(ascii: "0"), let prefix = self.peek(1), let (radix, name) = Self.radix(prefix) {
            self.offset += 2
            guard let first = self.peek(), TOMLSyntax.isDigit(first, radix: radix) else {
                throw self.error(
                    "integer", "expected \(name) digit after '0\(Character(Unicode.Scalar(prefix)))', saw \(self.saw())"
                )
            }
            let digitsStart = self.offset
            try self.digits(radix: radix, scope: "integer")
            return .integer(try self.integer(digitsStart, radix: radix, negative: false, literal: start))
        }
        let negative = self.peek() == TOMLSyntax.minus
        if self.peek() == TOMLSyntax.plus || negative { self.offset += 1 }
        guard let first = self.peek(), TOMLSyntax.isDigit(first) else {
            throw self.error("number", "expected a digit after the sign, saw \(self.saw())")
        }
        let digitsStart = self.offset
        if first == UInt8(ascii: "0") {
            self.offset += 1
            if let next = self.peek(), TOMLSyntax.isDigit(next) || next == TOMLSyntax.underscore {
                throw self.error("integer", "leading zeros are not allowed", at: digitsStart)
            }
        } else {
            try self.digits(radix: 10, scope: "integer")
        }
        var isFloat = false
        if self.peek() == TOMLSyntax.dot {
            self.offset += 1
            guard let digit = self.peek(), TOMLSyntax.isDigit(digit) else {
                throw self.error("floating-point number", "expected a digit after '.', saw \(self.saw())")
            }
            try self.digits(radix: 10, scope: "floating-point number")
            isFloat = true
        }
        if self.peek() == UInt8(ascii: "e") || self.peek() == UInt8(ascii: "E") {
            self.offset += 1
            if self.peek() == TOMLSyntax.plus || self.peek() == TOMLSyntax.minus { self.offset += 1 }
            guard let digit = self.peek(), TOMLSyntax.isDigit(digit) else {
                throw self.error("floating-point number", "expected a digit in the exponent, saw \(self.saw())")
            }
            try self.digits(radix: 10, scope: "floating-point number")
            isFloat = true
        }
        guard isFloat else {
            return .integer(try self.integer(digitsStart, radix: 10, negative: negative, literal: start))
        }
        let text = String(
            decoding: self.bytes[start..<self.offset].filter { $0 != TOMLSyntax.underscore }, as: UTF8.self)
        guard let float = Double(text) else {
            throw self.error("floating-point number", "'\(text)' is not a number", at: start)
        }
        return .float(float)
    }

    /// The radix an integer's prefix letter (`0x`, `0o`, `0b`) gives, and its digits' name.
    private static func radix(_ letter: UInt8) -> (Int, String)? {
        switch letter {
        case UInt8(ascii: "x"): (16, "a hexadecimal")
        case UInt8(ascii: "o"): (8, "an octal")
        case UInt8(ascii: "b"): (2, "a binary")
        default: nil
        }
    }

    /// Digits of `radix`, each `_` between two of them; the first is known to be one.
    private mutating func digits(radix: Int, scope: String) throws(TOMLError) {
        while let byte = self.peek() {
            if TOMLSyntax.isDigit(byte, radix: radix) {
                self.offset += 1
            } else if byte == TOMLSyntax.underscore {
                guard let next = self.peek(1), TOMLSyntax.isDigit(next, radix: radix) else {
                    throw self.error(scope, "'_' must stand between two digits")
                }
                self.offset += 1
            } else {
                return
            }
        }
    }

    /// The integer of the digits from `start` to here, or an error if it is beyond 64 bits.
    private mutating func integer(_ start: Int, radix: Int, negative: Bool, literal: Int) throws(TOMLError) -> Int64 {
        var value: Int64 = 0
        for byte in self.bytes[start..<self.offset] {
            guard let digit = TOMLSyntax.digitValue(byte, radix: radix) else { continue }
            let shifted = value.multipliedReportingOverflow(by: Int64(radix))
            let next =
                negative
                ? shifted.partialValue.subtractingReportingOverflow(Int64(digit))
                : shifted.partialValue.addingReportingOverflow(Int64(digit))
            guard !shifted.overflow, !next.overflow else {
                let text = String(decoding: self.bytes[literal..<self.offset], as: UTF8.self)
                throw self.error("integer", "'\(text)' is not representable in 64 bits")
            }
            value = next.partialValue
        }
        return value
    }
}
