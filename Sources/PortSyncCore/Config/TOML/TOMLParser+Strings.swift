extension TOMLParser {
    /// A basic string, `"…"` or `"""…"""`, with its escapes; the parser is at its first quote.
    mutating func basicString(multiline: Bool) throws(TOMLError) -> String {
        self.offset += multiline ? 3 : 1
        if multiline && self.peek() == TOMLSyntax.newline { self.offset += 1 }
        var result: [UInt8] = []
        var segment = self.offset
        while true {
            guard let byte = self.peek() else { throw self.error("string", "unterminated string, saw end of file") }
            switch byte {
            case TOMLSyntax.quote:
                if !multiline {
                    result += self.bytes[segment..<self.offset]
                    self.offset += 1
                    return String(decoding: result, as: UTF8.self)
                }
                if self.next(is: "\"\"\"") {
                    result += self.bytes[segment..<self.offset]
                    self.offset += 3
                    self.closingQuotes(TOMLSyntax.quote, into: &result)
                    return String(decoding: result, as: UTF8.self)
                }
                self.offset += 1
            case TOMLSyntax.backslash:
                result += self.bytes[segment..<self.offset]
                try self.escape(multiline: multiline, into: &result)
                segment = self.offset
            case TOMLSyntax.newline where multiline:
                self.offset += 1
            default:
                try self.refuseControl(byte, multiline: multiline)
                self.offset += 1
            }
        }
    }

    /// A literal string, `'…'` or `'''…'''`: no escapes; the parser is at its first apostrophe.
    mutating func literalString(multiline: Bool) throws(TOMLError) -> String {
        self.offset += multiline ? 3 : 1
        if multiline && self.peek() == TOMLSyntax.newline { self.offset += 1 }
        let start = self.offset
        while true {
            guard let byte = self.peek() else { throw self.error("string", "unterminated string, saw end of file") }
            if byte == TOMLSyntax.apostrophe && (!multiline || self.next(is: "'''")) {
                var result = Array(self.bytes[start..<self.offset])
                self.offset += multiline ? 3 : 1
                if multiline { self.closingQuotes(TOMLSyntax.apostrophe, into: &result) }
                return String(decoding: result, as: UTF8.self)
            }
            if !(multiline && byte == TOMLSyntax.newline) { try self.refuseControl(byte, multiline: multiline) }
            self.offset += 1
        }
    }

    /// One or two quotes right before a multi-line string's closing three belong to the string (`""""a""""`).
    private mutating func closingQuotes(_ quote: UInt8, into result: inout [UInt8]) {
        for _ in 0..<2 where self.peek() == quote {
            result.append(quote)
            self.offset += 1
        }
    }

    /// Control characters other than tab must be escaped; a newline ends a one-line string too early.
    private mutating func refuseControl(_ byte: UInt8, multiline: Bool) throws(TOMLError) {
        guard TOMLSyntax.isControl(byte), byte != TOMLSyntax.tab else { return }
        if byte == TOMLSyntax.newline {
            throw self.error("string", "unterminated string, saw end of line")
        }
        let name = TOMLSyntax.scalarName(UInt32(byte))
        throw self.error("string", "\(name) must be written as an escape (\\u\(name.dropFirst(2)))")
    }

    /// The escape at the backslash here: `\b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX`, and in a multi-line string a
    /// backslash ending a line, which drops the line break and the blanks and newlines after it.
    private mutating func escape(multiline: Bool, into result: inout [UInt8]) throws(TOMLError) {
        let start = self.offset
        guard let letter = self.peek(1) else {
            throw self.error("string", "unterminated string, saw end of file", at: start + 1)
        }
        self.offset += 2
        let simple: UInt8? =
            switch letter {
            case UInt8(ascii: "b"): 0x08
            case UInt8(ascii: "t"): 0x09
            case UInt8(ascii: "n"): 0x0a
            case UInt8(ascii: "f"): 0x0c
            case UInt8(ascii: "r"): 0x0d
            case TOMLSyntax.quote, TOMLSyntax.backslash: letter
            default: nil
            }
        if let simple {
            result.append(simple)
            return
        }
        switch letter {
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let count = letter == UInt8(ascii: "u") ? 4 : 8
            var value: UInt32 = 0
            for index in 0..<count {
                guard let byte = self.peek(index), let digit = TOMLSyntax.digitValue(byte, radix: 16) else {
                    throw self.error(
                        "string",
                        "expected \(count) hexadecimal digits after '\\\(Character(Unicode.Scalar(letter)))', saw \(self.saw(self.offset + index))"
                    )
                }
                value = value << 4 | UInt32(digit)
            }
            self.offset += count
            guard let scalar = Unicode.Scalar(value) else {
                throw self.error(
                    "string",
                    "\(TOMLSyntax.scalarName(value)) is not a Unicode scalar value (a surrogate or above U+10FFFF)",
                    at: start)
            }
            if value == 0 && !self.options.allowsNUL {
                throw TOMLError(.nulCharacter, at: self.position(at: start), "a NUL character (\\u0000) is not allowed")
            }
            result.append(contentsOf: Array(String(scalar).utf8))
        case TOMLSyntax.space, TOMLSyntax.tab, TOMLSyntax.newline:
            guard multiline else {
                throw self.error("string", "'\\' followed by \(self.saw(start + 1)) is not an escape", at: start)
            }
            if letter != TOMLSyntax.newline {
                self.skipBlanks()
                guard let next = self.peek() else { return }
                guard next == TOMLSyntax.newline else {
                    throw self.error("string", "only blanks may follow a line-ending '\\', saw \(self.saw())")
                }
            }
            while let byte = self.peek(),
                byte == TOMLSyntax.space || byte == TOMLSyntax.tab || byte == TOMLSyntax.newline
            {
                self.offset += 1
            }
        default:
            throw self.error("string", "'\\' followed by \(self.saw(start + 1)) is not an escape", at: start)
        }
    }
}
