import PortSyncCore
import Testing

/// Malformed documents: each an error at a plausible line and column (where the problem is seen), never a trap.
/// The first three crashed toml++ (an assertion in `parse_key()`, SIGABRT) when TOMLKit parsed the configuration.
extension TOMLParserTests {
    struct Invalid: Sendable, CustomTestStringConvertible {
        var label: String
        var text: String
        var line: Int
        var column: Int
        var message: String

        init(_ label: String, _ text: String, _ line: Int, _ column: Int, _ message: String) {
            self.label = label
            self.text = text
            self.line = line
            self.column = column
            self.message = message
        }

        var testDescription: String { self.label }
    }

    static let invalid: [Invalid] = [
        .init(
            "crash: [[[ broken", "[[[ broken", 1, 3,
            "Error while parsing array-of-tables header: expected a bare key (A-Z a-z 0-9 _ -) or a quoted key, saw '['"
        ),
        .init(
            "crash: [[[", "[[[", 1, 3,
            "Error while parsing array-of-tables header: expected a bare key (A-Z a-z 0-9 _ -) or a quoted key, saw '['"
        ),
        .init(
            "crash: [[[ after a table", "a = 1\n[x]\n[[[", 3, 3,
            "Error while parsing array-of-tables header: expected a bare key (A-Z a-z 0-9 _ -) or a quoted key, saw '['"
        ),
        .init(
            "header: unclosed at end of file", "[a", 1, 3,
            "Error while parsing table header: expected ']', saw end of file"),
        .init(
            "header: unclosed at end of line", "[a\nb = 1", 1, 3,
            "Error while parsing table header: expected ']', saw a newline"),
        .init(
            "header: empty", "[]", 1, 2,
            "Error while parsing table header: expected a bare key (A-Z a-z 0-9 _ -) or a quoted key, saw ']'"),
        .init(
            "header: trailing dot", "[a.]", 1, 4,
            "Error while parsing table header: expected a bare key (A-Z a-z 0-9 _ -) or a quoted key, saw ']'"),
        .init(
            "header: leading dot", "[.a]", 1, 2,
            "Error while parsing table header: expected a bare key (A-Z a-z 0-9 _ -) or a quoted key, saw '.'"),
        .init(
            "header: two dots", "[a..b]", 1, 4,
            "Error while parsing table header: expected a bare key (A-Z a-z 0-9 _ -) or a quoted key, saw '.'"),
        .init(
            "array header: unclosed", "[[a]\n", 1, 4,
            "Error while parsing array-of-tables header: expected ']]', saw ']'"),
        .init(
            "array header: space between closing brackets", "[[a] ]", 1, 4,
            "Error while parsing array-of-tables header: expected ']]', saw ']'"),
        .init(
            "array header: space between opening brackets", "[ [a]]", 1, 3,
            "Error while parsing table header: expected a bare key (A-Z a-z 0-9 _ -) or a quoted key, saw '['"),
        .init(
            "header: a pair on the same line", "[a] b = 1", 1, 5,
            "Error while parsing table header: expected a comment or a newline after the header, saw 'b'"),
        .init(
            "header: space inside a bare key", "[a b]", 1, 4, "Error while parsing table header: expected ']', saw 'b'"),
        .init(
            "header: extra closing bracket", "[a]]", 1, 4,
            "Error while parsing table header: expected a comment or a newline after the header, saw ']'"),
        .init(
            "key: missing", "= 1", 1, 1,
            "Error while parsing statement: expected a key, a [table] header or a comment, saw '='"),
        .init(
            "key: no equals sign", "a", 1, 2,
            "Error while parsing key-value pair: expected '=' after the key, saw end of file"),
        .init(
            "key: space inside a bare key", "a b = 1", 1, 3,
            "Error while parsing key-value pair: expected '=' after the key, saw 'b'"),
        .init(
            "key: trailing dot", "a. = 1", 1, 4,
            "Error while parsing key-value pair: expected a bare key (A-Z a-z 0-9 _ -) or a quoted key, saw '='"),
        .init(
            "key: empty part in the middle", "a..b = 1", 1, 3,
            "Error while parsing key-value pair: expected a bare key (A-Z a-z 0-9 _ -) or a quoted key, saw '.'"),
        .init(
            "key: unterminated quoted key", "\"a = 1", 1, 7,
            "Error while parsing string: unterminated string, saw end of file"),
        .init(
            "key: multi-line string as a key", "\"\"\"a\"\"\" = 1", 1, 3,
            "Error while parsing key-value pair: expected '=' after the key, saw '\"'"),
        .init(
            "key: non-ASCII bare key", "ü = 1", 1, 1,
            "Error while parsing statement: expected a key, a [table] header or a comment, saw 'ü'"),
        .init(
            "key: equals sign on the next line", "a\n= 1", 1, 2,
            "Error while parsing key-value pair: expected '=' after the key, saw a newline"),
        .init(
            "pair: two pairs on one line", "a = 1 b = 2", 1, 7,
            "Error while parsing key-value pair: expected a comment or a newline after the value, saw 'b'"),
        .init(
            "value: missing at end of file", "a =", 1, 4, "Error while parsing value: expected value, saw end of file"),
        .init(
            "value: missing at end of line", "a = \nb = 1", 1, 5,
            "Error while parsing value: expected value, saw a newline"),
        .init("value: truncated true", "a = tru", 1, 5, "Error while parsing value: expected value, saw 't'"),
        .init("value: capitalised True", "a = True", 1, 5, "Error while parsing value: expected value, saw 'T'"),
        .init("value: bare word", "a = yes", 1, 5, "Error while parsing value: expected value, saw 'y'"),
        .init(
            "string: unterminated at end of file", "a = \"abc", 1, 9,
            "Error while parsing string: unterminated string, saw end of file"),
        .init(
            "string: unterminated at end of line", "a = \"abc\nb = 1", 1, 9,
            "Error while parsing string: unterminated string, saw end of line"),
        .init(
            "literal string: unterminated", "a = 'abc\n", 1, 9,
            "Error while parsing string: unterminated string, saw end of line"),
        .init(
            "string: unknown escape", "a = \"x\\qy\"", 1, 7,
            "Error while parsing string: '\\' followed by 'q' is not an escape"),
        .init(
            "string: \\u with three digits", "a = \"\\u12G4\"", 1, 8,
            "Error while parsing string: expected 4 hexadecimal digits after '\\u', saw 'G'"),
        .init(
            "string: surrogate escape", "a = \"\\uD800\"", 1, 6,
            "Error while parsing string: U+D800 is not a Unicode scalar value (a surrogate or above U+10FFFF)"),
        .init(
            "string: escape above U+10FFFF", "a = \"\\U00110000\"", 1, 6,
            "Error while parsing string: U+110000 is not a Unicode scalar value (a surrogate or above U+10FFFF)"),
        .init(
            "string: \\x escape (TOML 1.1)", "a = \"\\x41\"", 1, 6,
            "Error while parsing string: '\\' followed by 'x' is not an escape"),
        .init(
            "string: \\e escape (TOML 1.1)", "a = \"\\e\"", 1, 6,
            "Error while parsing string: '\\' followed by 'e' is not an escape"),
        .init(
            "string: raw control character", "a = \"x\u{1}\"", 1, 7,
            "Error while parsing string: U+0001 must be written as an escape (\\u0001)"),
        .init(
            "string: raw DEL", "a = \"x\u{7F}\"", 1, 7,
            "Error while parsing string: U+007F must be written as an escape (\\u007F)"),
        .init(
            "literal string: raw control character", "a = 'x\u{8}'", 1, 7,
            "Error while parsing string: U+0008 must be written as an escape (\\u0008)"),
        .init(
            "multi-line string: unterminated", "a = \"\"\"abc\n", 2, 1,
            "Error while parsing string: unterminated string, saw end of file"),
        .init(
            "multi-line literal string: unterminated", "a = '''abc''", 1, 13,
            "Error while parsing string: unterminated string, saw end of file"),
        .init(
            "multi-line string: backslash before text on the same line", "a = \"\"\"a\\ b\"\"\"", 1, 11,
            "Error while parsing string: only blanks may follow a line-ending '\\', saw 'b'"),
        .init(
            "multi-line string: six closing quotes", "a = \"\"\"a\"\"\"\"\"\"", 1, 14,
            "Error while parsing key-value pair: expected a comment or a newline after the value, saw '\"'"),
        .init(
            "literal string: apostrophe inside", "a = 'it's'", 1, 9,
            "Error while parsing key-value pair: expected a comment or a newline after the value, saw 's'"),
        .init(
            "multi-line string: raw control character", "a = \"\"\"\nx\u{2}\"\"\"", 2, 2,
            "Error while parsing string: U+0002 must be written as an escape (\\u0002)"),
        .init(
            "string: lone carriage return", "a = \"x\ry\"", 1, 7,
            "Error while parsing string: U+000D must be written as an escape (\\u000D)"),
        .init("integer: leading zero", "a = 0123", 1, 5, "Error while parsing integer: leading zeros are not allowed"),
        .init(
            "integer: double underscore", "a = 1__000", 1, 6,
            "Error while parsing integer: '_' must stand between two digits"),
        .init("integer: leading underscore", "a = _1", 1, 5, "Error while parsing value: expected value, saw '_'"),
        .init(
            "integer: trailing underscore", "a = 1_", 1, 6,
            "Error while parsing integer: '_' must stand between two digits"),
        .init(
            "integer: 0x without digits", "a = 0x", 1, 7,
            "Error while parsing integer: expected a hexadecimal digit after '0x', saw end of file"),
        .init(
            "integer: bad hex digit", "a = 0xG1", 1, 7,
            "Error while parsing integer: expected a hexadecimal digit after '0x', saw 'G'"),
        .init(
            "integer: 2 in binary", "a = 0b102", 1, 9,
            "Error while parsing key-value pair: expected a comment or a newline after the value, saw '2'"),
        .init(
            "integer: 8 in octal", "a = 0o8", 1, 7,
            "Error while parsing integer: expected an octal digit after '0o', saw '8'"),
        .init(
            "integer: sign on hex", "a = +0x10", 1, 7,
            "Error while parsing key-value pair: expected a comment or a newline after the value, saw 'x'"),
        .init(
            "integer: capital X prefix", "a = 0X10", 1, 6,
            "Error while parsing key-value pair: expected a comment or a newline after the value, saw 'X'"),
        .init(
            "integer: one above Int64.max", "a = 9223372036854775808", 1, 24,
            "Error while parsing integer: '9223372036854775808' is not representable in 64 bits"),
        .init(
            "integer: one below Int64.min", "a = -9223372036854775809", 1, 25,
            "Error while parsing integer: '-9223372036854775809' is not representable in 64 bits"),
        .init(
            "integer: hex above Int64.max", "a = 0xFFFFFFFFFFFFFFFF", 1, 23,
            "Error while parsing integer: '0xFFFFFFFFFFFFFFFF' is not representable in 64 bits"),
        .init(
            "integer: double sign", "a = --1", 1, 6,
            "Error while parsing number: expected a digit after the sign, saw '-'"),
        .init(
            "float: nothing after the point", "a = 1.", 1, 7,
            "Error while parsing floating-point number: expected a digit after '.', saw end of file"),
        .init("float: nothing before the point", "a = .5", 1, 5, "Error while parsing value: expected value, saw '.'"),
        .init(
            "float: empty exponent", "a = 1e", 1, 7,
            "Error while parsing floating-point number: expected a digit in the exponent, saw end of file"),
        .init(
            "float: signed empty exponent", "a = 1.5e+", 1, 10,
            "Error while parsing floating-point number: expected a digit in the exponent, saw end of file"),
        .init(
            "float: exponent right after the point", "a = 1.e5", 1, 7,
            "Error while parsing floating-point number: expected a digit after '.', saw 'e'"),
        .init("float: leading zero", "a = 01.5", 1, 5, "Error while parsing integer: leading zeros are not allowed"),
        .init(
            "float: underscore before the point", "a = 1_.5", 1, 6,
            "Error while parsing integer: '_' must stand between two digits"),
        .init(
            "float: underscore after the point", "a = 1._5", 1, 7,
            "Error while parsing floating-point number: expected a digit after '.', saw '_'"),
        .init(
            "float: infinity spelt out", "a = infinity", 1, 8,
            "Error while parsing key-value pair: expected a comment or a newline after the value, saw 'i'"),
        .init("float: capitalised NaN", "a = NaN", 1, 5, "Error while parsing value: expected value, saw 'N'"),
        .init(
            "date: February 30", "a = 1979-02-30", 1, 13,
            "Error while parsing date: day 30 is not 01 to 28 in month 2 of 1979"),
        .init(
            "date: February 29 of a common year", "a = 2023-02-29", 1, 13,
            "Error while parsing date: day 29 is not 01 to 28 in month 2 of 2023"),
        .init("date: month 13", "a = 1979-13-01", 1, 10, "Error while parsing date: month 13 is not 01 to 12"),
        .init(
            "date: one-digit month", "a = 1979-5-27", 1, 9,
            "Error while parsing key-value pair: expected a comment or a newline after the value, saw '-'"),
        .init(
            "date-time: hour 25", "a = 1979-05-27T25:00:00", 1, 16, "Error while parsing time: hour 25 is not 00 to 23"),
        .init(
            "date-time: no seconds (TOML 1.1)", "a = 1979-05-27T07:32", 1, 16,
            "Error while parsing time: expected a time as HH:MM:SS (with seconds)"),
        .init(
            "date-time: offset hour 25", "a = 1979-05-27T07:32:00+25:00", 1, 24,
            "Error while parsing date-time: an offset must be -23:59 to +23:59"),
        .init(
            "date-time: point without fraction", "a = 1979-05-27T07:32:00.", 1, 25,
            "Error while parsing time: expected the digits of a fraction of a second after '.', saw end of file"),
        .init(
            "time: leap second", "a = 07:32:60", 1, 11,
            "Error while parsing time: second 60 is not 00 to 59 (leap seconds are not supported)"),
        .init(
            "time: with an offset", "a = 07:32:00Z", 1, 13,
            "Error while parsing key-value pair: expected a comment or a newline after the value, saw 'Z'"),
        .init(
            "array: unterminated", "a = [1, 2", 1, 10,
            "Error while parsing array: expected ',' or ']' after a value, saw end of file"),
        .init(
            "array: missing comma", "a = [1 2]", 1, 8,
            "Error while parsing array: expected ',' or ']' after a value, saw '2'"),
        .init("array: only a comma", "a = [,]", 1, 6, "Error while parsing value: expected value, saw ','"),
        .init("array: two commas", "a = [1,,2]", 1, 8, "Error while parsing value: expected value, saw ','"),
        .init(
            "array: extra closing bracket", "a = [1]]", 1, 8,
            "Error while parsing key-value pair: expected a comment or a newline after the value, saw ']'"),
        .init(
            "inline table: trailing comma", "a = {b = 1,}", 1, 12,
            "Error while parsing inline table: expected a key (no comma after the last pair), saw '}'"),
        .init(
            "inline table: newline inside", "a = {b = 1\n}", 1, 11,
            "Error while parsing inline table: expected ',' or '}' on the same line, saw a newline"),
        .init(
            "inline table: key twice", "a = {b = 1, b = 2}", 1, 17,
            "Error while parsing inline table: cannot redefine existing integer 'b'"),
        .init(
            "inline table: missing comma", "a = {b = 1 c = 2}", 1, 12,
            "Error while parsing inline table: expected ',' or '}' on the same line, saw 'c'"),
        .init(
            "inline table: dotted then plain key", "a = {b.c = 1, b = 2}", 1, 19,
            "Error while parsing inline table: cannot redefine existing table 'b'"),
        .init(
            "inline table: extends a nested inline table", "a = {b = {c = 1}, b.d = 2}", 1, 19,
            "Error while parsing inline table: cannot add to inline table 'b': an inline table is complete as written"),
        .init(
            "inline table: unterminated", "a = {", 1, 6,
            "Error while parsing inline table: expected a key, saw end of file"),
        .init(
            "inline table: key without value", "a = {b}", 1, 7,
            "Error while parsing inline table: expected '=' after the key, saw '}'"),
        .init(
            "inline table: comment inside", "a = {b = 1 # c\n}", 1, 12,
            "Error while parsing inline table: expected ',' or '}' on the same line, saw '#'"),
        .init(
            "redefine: key twice", "a = 1\na = 2", 2, 5,
            "Error while parsing key-value pair: cannot redefine existing integer 'a'"),
        .init(
            "redefine: table twice", "[a]\n[a]", 2, 1,
            "Error while parsing table header: cannot redefine existing table 'a'"),
        .init(
            "redefine: table twice with keys", "[a]\nb = 1\n\n[a]\nc = 2", 4, 1,
            "Error while parsing table header: cannot redefine existing table 'a'"),
        .init(
            "redefine: inline table by a header", "a = {}\n[a]", 2, 1,
            "Error while parsing table header: cannot redefine existing table 'a'"),
        .init(
            "redefine: sub-table of an inline table", "a = {b = 1}\n[a.c]", 2, 1,
            "Error while parsing table header: cannot add to inline table 'a': an inline table is complete as written"),
        .init(
            "redefine: dotted key into an inline table", "a = {}\na.b = 1", 2, 1,
            "Error while parsing key-value pair: cannot add to inline table 'a': an inline table is complete as written"
        ),
        .init(
            "redefine: header for a table made by dotted keys", "a.b = 1\n[a]", 2, 1,
            "Error while parsing table header: cannot redefine existing table 'a' (defined by dotted keys)"),
        .init(
            "redefine: spec's fruit.apple", "[fruit]\napple.color = \"red\"\n[fruit.apple]", 3, 1,
            "Error while parsing table header: cannot redefine existing table 'fruit.apple' (defined by dotted keys)"),
        .init(
            "redefine: key over an implicit table", "[a.b]\n[a]\nb = 1", 3, 5,
            "Error while parsing key-value pair: cannot redefine existing table 'b'"),
        .init(
            "redefine: dotted key into a header table", "[a.b]\nc = 1\n[a]\nb.d = 2", 4, 1,
            "Error while parsing key-value pair: cannot add to table 'b' with dotted keys: it is defined by a [header]"),
        .init(
            "redefine: [[ ]] on a static array", "a = [1]\n[[a]]", 2, 1,
            "Error while parsing array-of-tables header: cannot append to array 'a': an array written as a value is complete as written"
        ),
        .init(
            "redefine: [ ] on an array of tables", "[[a]]\n[a]", 2, 1,
            "Error while parsing table header: cannot redefine existing array of tables 'a' as a table"),
        .init(
            "redefine: [[ ]] on a table", "[a]\n[[a]]", 2, 1,
            "Error while parsing array-of-tables header: cannot redefine existing table 'a' as an array of tables"),
        .init(
            "redefine: integer as a table by a header", "a = 1\n[a.b]", 2, 1,
            "Error while parsing table header: cannot redefine existing integer 'a' as a table"),
        .init(
            "redefine: integer as a table by a dotted key", "a = 1\na.b = 2", 2, 1,
            "Error while parsing key-value pair: cannot redefine existing integer 'a' as a table"),
        .init(
            "redefine: dotted key into an array of tables", "[[a.b]]\n[a]\nb.c = 1", 3, 1,
            "Error while parsing key-value pair: cannot add to array of tables 'b' with dotted keys"),
        .init(
            "redefine: header into a static array of tables", "a = [{b = 1}]\n[a.c]", 2, 1,
            "Error while parsing table header: cannot add to array 'a': an array written as a value is complete as written"
        ),
        .init(
            "redefine: dotted key twice", "a.b = 1\na.b = 2", 2, 7,
            "Error while parsing key-value pair: cannot redefine existing integer 'a.b'"),
        .init(
            "redefine: dotted key after an inline table", "a = {b = 1}\na.c = 2", 2, 1,
            "Error while parsing key-value pair: cannot add to inline table 'a': an inline table is complete as written"
        ),
        .init(
            "depth: arrays", "a = " + String(repeating: "[", count: 129) + String(repeating: "]", count: 129), 1, 133,
            "Error while parsing array: arrays and tables nest deeper than 128 levels"),
        .init(
            "depth: inline tables",
            "a = " + String(repeating: "{b = ", count: 129) + "1" + String(repeating: "}", count: 129), 1, 645,
            "Error while parsing inline table: arrays and tables nest deeper than 128 levels"),
        .init(
            "depth: header", "[" + Array(repeating: "a", count: 129).joined(separator: ".") + "]", 1, 1,
            "Error while parsing table header: tables nest deeper than 128 levels"),
        .init(
            "depth: dotted key", Array(repeating: "a", count: 130).joined(separator: ".") + " = 1", 1, 257,
            "Error while parsing key-value pair: tables nest deeper than 128 levels"),
        .init(
            "comment: control character", "# x\u{1}", 1, 4,
            "Error while parsing comment: U+0001 is not allowed in a comment"),
        .init(
            "comment: DEL after a value", "a = 1 # \u{7F}", 1, 9,
            "Error while parsing comment: U+007F is not allowed in a comment"),
        .init(
            "newline: lone carriage return", "a = 1\rb = 2", 1, 6,
            "Error while parsing key-value pair: expected a comment or a newline after the value, saw U+000D"),
        .init(
            "control: raw NUL in a string", "a = \"\u{0}\"", 1, 6,
            "Error while parsing string: U+0000 must be written as an escape (\\u0000)"),
        .init(
            "control: form feed after a value", "a = 1\u{C}", 1, 6,
            "Error while parsing key-value pair: expected a comment or a newline after the value, saw U+000C"),
        .init(
            "statement: closing brace", "}", 1, 1,
            "Error while parsing statement: expected a key, a [table] header or a comment, saw '}'"),
        .init(
            "statement: equals sign first", "  = 1", 1, 3,
            "Error while parsing statement: expected a key, a [table] header or a comment, saw '='"),
    ]

    @Test("Invalid documents are errors at their line and column", arguments: Self.invalid)
    func invalidDocument(_ invalid: Invalid) {
        let error = #expect(throws: TOMLError.self) { try TOMLParser.parse(invalid.text) }
        #expect(error?.kind == .syntax)
        #expect(
            error?.position == TOMLPosition(line: invalid.line, column: invalid.column), "\(String(describing: error))")
        #expect(error?.message == invalid.message)
        #expect(error?.description == "\(invalid.line):\(invalid.column): \(invalid.message)")
    }

    @Test("At least 60 kinds of invalid document are covered, each once")
    func invalidCount() {
        #expect(Self.invalid.count >= 60)
        #expect(Set(Self.invalid.map(\.label)).count == Self.invalid.count)
        #expect(Set(Self.invalid.map(\.text)).count == Self.invalid.count)
    }
}
