import PortSyncCore
import Testing

/// The TOML 1.0 parser: documents from the specification and their exact trees, where keys and values are written,
/// and every malformed document an error at its line and column (the invalid ones are in
/// `TOMLParserTests+Invalid.swift`). Tests/integration/test_toml_differential.py compares it with Python's tomllib.
@Suite("TOMLParser")
struct TOMLParserTests {
    /// One valid document and the table it must give.
    struct Valid: Sendable, CustomTestStringConvertible {
        var label: String
        var text: String
        var expected: [(String, TOMLValue)]

        var testDescription: String { self.label }
    }

    static let valid: [Valid] = [
        .init(label: "empty", text: "", expected: []),
        .init(label: "comments and blank lines", text: "# one\n\n   # two\n\t\n", expected: []),
        .init(
            label: "bare keys",
            text: "key = \"value\"\nbare_key = 1\nbare-key = 2\n1234 = 3\ntrue = 4\ninf = 5\n-1 = 6\n",
            expected: [
                ("key", .text("value")), ("bare_key", .int(1)), ("bare-key", .int(2)), ("1234", .int(3)),
                ("true", .int(4)), ("inf", .int(5)), ("-1", .int(6)),
            ]),
        .init(
            label: "quoted keys",
            text: """
                "127.0.0.1" = 1
                "character encoding" = 2
                "ʎǝʞ" = 3
                'key2' = 4
                'quoted "value"' = 5
                "" = 6
                "tab\\tand \\u00e9" = 7
                """,
            expected: [
                ("127.0.0.1", .int(1)), ("character encoding", .int(2)), ("ʎǝʞ", .int(3)), ("key2", .int(4)),
                ("quoted \"value\"", .int(5)), ("", .int(6)), ("tab\tand é", .int(7)),
            ]),
        .init(
            label: "dotted keys, with blanks around the dots and in any order",
            text: """
                name = "Orange"
                physical.color = "orange"
                site."google.com" = true
                fruit . flavor = "banana"
                physical.shape = "round"
                3.14159 = "pi"
                """,
            expected: [
                ("name", .text("Orange")),
                ("physical", .object(("color", .text("orange")), ("shape", .text("round")))),
                ("site", .object(("google.com", .bool(true)))),
                ("fruit", .object(("flavor", .text("banana")))),
                ("3", .object(("14159", .text("pi")))),
            ]),
        .init(
            label: "precomposed and decomposed keys are two keys",
            text: "\"\u{E9}\" = 1\n\"e\u{301}\" = 2\n", expected: [("\u{E9}", .int(1)), ("e\u{301}", .int(2))]),
        .init(
            label: "basic strings and every escape",
            text: #"""
                str = "I'm a string. \"You can quote me\". Name\tJos\u00E9\nLocation\tSF."
                all = "\b\t\n\f\r\"\\\u00e9\U0001F600/"
                nul = "a\u0000b"
                tab = "a	b"
                """#,
            expected: [
                ("str", .text("I'm a string. \"You can quote me\". Name\tJos\u{E9}\nLocation\tSF.")),
                ("all", .text("\u{8}\t\n\u{C}\r\"\\\u{E9}\u{1F600}/")), ("nul", .text("a\u{0}b")),
                ("tab", .text("a\tb")),
            ]),
        .init(
            label: "multi-line basic strings",
            text: #"""
                str1 = """
                Roses are red
                Violets are blue"""
                str2 = """
                The quick brown \


                  fox jumps over \
                    the lazy dog."""
                str3 = """\
                       The quick brown \
                       fox jumps over \
                       the lazy dog.\
                       """
                str4 = """Here are two quotation marks: "". Simple enough."""
                str5 = """Here are three quotation marks: ""\"."""
                str6 = """Here are fifteen quotation marks: ""\"""\"""\"""\"""\"."""
                str7 = """"This," she said, "is just a pointless statement.""""
                """#,
            expected: [
                ("str1", .text("Roses are red\nViolets are blue")),
                ("str2", .text("The quick brown fox jumps over the lazy dog.")),
                ("str3", .text("The quick brown fox jumps over the lazy dog.")),
                ("str4", .text("Here are two quotation marks: \"\". Simple enough.")),
                ("str5", .text("Here are three quotation marks: \"\"\".")),
                ("str6", .text("Here are fifteen quotation marks: \"\"\"\"\"\"\"\"\"\"\"\"\"\"\".")),
                ("str7", .text("\"This,\" she said, \"is just a pointless statement.\"")),
            ]),
        .init(
            label: "a line-ending backslash followed by blanks", text: "s = \"\"\"a \\  \t\n\n  b\"\"\"\n",
            expected: [("s", .text("a b"))]),
        .init(
            label: "literal strings",
            text: #"""
                winpath = 'C:\Users\nodejs\templates'
                quoted = 'Tom "Dubs" Preston-Werner'
                regex = '<\i\c*\s*>'
                regex2 = '''I [dw]on't need \d{2} apples'''
                lines = '''
                The first newline is
                trimmed in raw strings.
                   All other whitespace
                   is preserved.
                '''
                quot15 = '''Here are fifteen quotation marks: """""""""""""""'''
                apos15 = "Here are fifteen apostrophes: '''''''''''''''"
                str = ''''That,' she said, 'is still pointless.''''
                """#,
            expected: [
                ("winpath", .text("C:\\Users\\nodejs\\templates")), ("quoted", .text("Tom \"Dubs\" Preston-Werner")),
                ("regex", .text("<\\i\\c*\\s*>")), ("regex2", .text("I [dw]on't need \\d{2} apples")),
                (
                    "lines",
                    .text("The first newline is\ntrimmed in raw strings.\n   All other whitespace\n   is preserved.\n")
                ),
                ("quot15", .text("Here are fifteen quotation marks: \"\"\"\"\"\"\"\"\"\"\"\"\"\"\"")),
                ("apos15", .text("Here are fifteen apostrophes: '''''''''''''''")),
                ("str", .text("'That,' she said, 'is still pointless.'")),
            ]),
        .init(
            label: "integers",
            text: """
                int1 = +99
                int2 = 42
                int3 = 0
                int4 = -17
                int5 = 1_000
                int6 = 5_349_221
                int7 = 1_2_3_4_5
                hex1 = 0xDEADBEEF
                hex2 = 0xdead_beef
                hex3 = 0x00ff
                oct1 = 0o01234567
                oct2 = 0o755
                bin1 = 0b11010110
                max = 9223372036854775807
                min = -9223372036854775808
                hexmax = 0x7FFFFFFFFFFFFFFF
                zero1 = -0
                zero2 = +0
                """,
            expected: [
                ("int1", .int(99)), ("int2", .int(42)), ("int3", .int(0)), ("int4", .int(-17)), ("int5", .int(1000)),
                ("int6", .int(5_349_221)), ("int7", .int(12345)), ("hex1", .int(0xDEAD_BEEF)),
                ("hex2", .int(0xDEAD_BEEF)), ("hex3", .int(255)), ("oct1", .int(0o01234567)), ("oct2", .int(0o755)),
                ("bin1", .int(0b11010110)), ("max", .int(Int64.max)), ("min", .int(Int64.min)),
                ("hexmax", .int(Int64.max)), ("zero1", .int(0)), ("zero2", .int(0)),
            ]),
        .init(
            label: "floats",
            text: """
                flt1 = +1.0
                flt2 = 3.1415
                flt3 = -0.01
                flt4 = 5e+22
                flt5 = 1e06
                flt6 = -2E-2
                flt7 = 6.626e-34
                flt8 = 224_617.445_991_228
                flt9 = 0e0
                sf1 = inf
                sf2 = +inf
                sf3 = -inf
                sf4 = nan
                sf5 = +nan
                sf6 = -nan
                negative_zero = -0.0
                too_large = 1e400
                """,
            expected: [
                ("flt1", .double(1.0)), ("flt2", .double(3.1415)), ("flt3", .double(-0.01)), ("flt4", .double(5e22)),
                ("flt5", .double(1e6)), ("flt6", .double(-0.02)), ("flt7", .double(6.626e-34)),
                ("flt8", .double(224_617.445_991_228)), ("flt9", .double(0)), ("sf1", .double(.infinity)),
                ("sf2", .double(.infinity)), ("sf3", .double(-.infinity)), ("sf4", .double(.nan)),
                ("sf5", .double(.nan)), ("sf6", .double(.nan)), ("negative_zero", .double(-0.0)),
                ("too_large", .double(.infinity)),
            ]),
        .init(
            label: "booleans", text: "bool1 = true\nbool2 = false\n",
            expected: [("bool1", .bool(true)), ("bool2", .bool(false))]),
        .init(
            label: "dates and times",
            text: """
                odt1 = 1979-05-27T07:32:00Z
                odt2 = 1979-05-27T00:32:00-07:00
                odt3 = 1979-05-27T00:32:00.999999+05:30
                odt4 = 1979-05-27 07:32:00z
                ldt1 = 1979-05-27t07:32:00
                ldt2 = 1979-05-27T00:32:00.5
                ld1 = 1979-05-27
                leap = 2000-02-29
                lt1 = 07:32:00
                lt2 = 00:32:00.1234567891234
                date_then_comment = 1979-05-27 # a date, not a date-time
                """,
            expected: [
                ("odt1", .moment(date: (1979, 5, 27), time: (7, 32, 0, 0), offset: 0)),
                ("odt2", .moment(date: (1979, 5, 27), time: (0, 32, 0, 0), offset: -420)),
                ("odt3", .moment(date: (1979, 5, 27), time: (0, 32, 0, 999_999_000), offset: 330)),
                ("odt4", .moment(date: (1979, 5, 27), time: (7, 32, 0, 0), offset: 0)),
                ("ldt1", .moment(date: (1979, 5, 27), time: (7, 32, 0, 0))),
                ("ldt2", .moment(date: (1979, 5, 27), time: (0, 32, 0, 500_000_000))),
                ("ld1", .moment(date: (1979, 5, 27))), ("leap", .moment(date: (2000, 2, 29))),
                ("lt1", .moment(time: (7, 32, 0, 0))), ("lt2", .moment(time: (0, 32, 0, 123_456_789))),
                ("date_then_comment", .moment(date: (1979, 5, 27))),
            ]),
        .init(
            label: "arrays",
            text: """
                integers = [ 1, 2, 3 ]
                nested = [ [ 1, 2 ], ["a", 'b', \"""c\""", '''d'''] ]
                mixed = [ 0.1, 2, "x", true, 07:32:00, { k = 1 }, [] ]
                contributors = [
                  "Foo Bar <foo@example.com>",
                  { name = "Baz Qux", email = "bazqux@example.com" }
                ]
                trailing = [
                  1,
                  2, # this is ok
                ]
                empty = [ ]
                commented = [ # before
                  # between
                ]
                """,
            expected: [
                ("integers", .list(.int(1), .int(2), .int(3))),
                ("nested", .list(.list(.int(1), .int(2)), .list(.text("a"), .text("b"), .text("c"), .text("d")))),
                (
                    "mixed",
                    .list(
                        .double(0.1), .int(2), .text("x"), .bool(true), .moment(time: (7, 32, 0, 0)),
                        .object(("k", .int(1))), .list())
                ),
                (
                    "contributors",
                    .list(
                        .text("Foo Bar <foo@example.com>"),
                        .object(("name", .text("Baz Qux")), ("email", .text("bazqux@example.com"))))
                ),
                ("trailing", .list(.int(1), .int(2))), ("empty", .list()), ("commented", .list()),
            ]),
        .init(
            label: "tables, with blanks in headers and implicit super-tables defined later",
            text: """
                name = "Fido"
                [table-1]
                key1 = "some string"
                [ g .  h  . i ]
                [ j . "ʞ" . 'l' ]
                [x.y.z.w]
                [x] # defined after its sub-table
                a = 1
                """,
            expected: [
                ("name", .text("Fido")), ("table-1", .object(("key1", .text("some string")))),
                ("g", .object(("h", .object(("i", .object()))))), ("j", .object(("ʞ", .object(("l", .object()))))),
                ("x", .object(("y", .object(("z", .object(("w", .object()))))), ("a", .int(1)))),
            ]),
        .init(
            label: "sub-tables of a table made by dotted keys",
            text: """
                [fruit]
                apple.color = "red"
                apple.taste.sweet = true
                [fruit.apple.texture]
                smooth = true
                """,
            expected: [
                (
                    "fruit",
                    .object(
                        (
                            "apple",
                            .object(
                                ("color", .text("red")), ("taste", .object(("sweet", .bool(true)))),
                                ("texture", .object(("smooth", .bool(true)))))
                        ))
                )
            ]),
        .init(
            label: "dotted keys through an implicit table",
            text: "[a.b.c]\nz = 1\n[a]\nb.d = 2\n",
            expected: [("a", .object(("b", .object(("c", .object(("z", .int(1)))), ("d", .int(2))))))]),
        .init(
            label: "inline tables",
            text: """
                name = { first = "Tom", last = "Preston-Werner" }
                animal = { type.name = "pug", type.age = 3 }
                nested = { a = { b = { c = [1] } } }
                empty = {}
                """,
            expected: [
                ("name", .object(("first", .text("Tom")), ("last", .text("Preston-Werner")))),
                ("animal", .object(("type", .object(("name", .text("pug")), ("age", .int(3)))))),
                ("nested", .object(("a", .object(("b", .object(("c", .list(.int(1))))))))), ("empty", .object()),
            ]),
        .init(
            label: "arrays of tables, nested, with sub-tables",
            text: """
                [[products]]
                name = "Hammer"

                [[products]]  # empty table within the array

                [[products]]
                name = "Nail"

                [[fruits]]
                name = "apple"

                [fruits.physical]  # subtable
                color = "red"

                [[fruits.varieties]]  # nested array of tables
                name = "red delicious"

                [[fruits.varieties]]
                name = "granny smith"

                [[fruits]]
                name = "banana"

                [[fruits.varieties]]
                name = "plantain"
                """,
            expected: [
                ("products", .list(.object(("name", .text("Hammer"))), .object(), .object(("name", .text("Nail"))))),
                (
                    "fruits",
                    .list(
                        .object(
                            ("name", .text("apple")), ("physical", .object(("color", .text("red")))),
                            (
                                "varieties",
                                .list(
                                    .object(("name", .text("red delicious"))), .object(("name", .text("granny smith"))))
                            )),
                        .object(("name", .text("banana")), ("varieties", .list(.object(("name", .text("plantain")))))))
                ),
            ]),
        .init(
            label: "a sub-table again in the next table of an array",
            text: "[[a]]\n[a.b]\nx = 1\n[[a]]\n[a.b]\nx = 2\n",
            expected: [("a", .list(.object(("b", .object(("x", .int(1))))), .object(("b", .object(("x", .int(2)))))))]
        ),
        .init(
            label: "CRLF line ends, also inside multi-line strings",
            text: "a = 1\r\nb = \"\"\"\r\nx\r\ny\"\"\"\r\n# c\r\n[t]\r\nc = [\r\n  1,\r\n]\r\n",
            expected: [("a", .int(1)), ("b", .text("x\ny")), ("t", .object(("c", .list(.int(1)))))]),
        .init(label: "a byte order mark", text: "\u{FEFF}a = 1\n", expected: [("a", .int(1))]),
        .init(
            label: "blanks everywhere they may be", text: "\t a \t=\t 1 \t# c\n  [  t  ]  \n\tb=2",
            expected: [("a", .int(1)), ("t", .object(("b", .int(2))))]),
    ]

    @Test("Valid documents give exactly their tables", arguments: Self.valid)
    func validDocument(_ valid: Valid) throws {
        let table = try TOMLParser.parse(valid.text)
        let expected = TOMLTable(valid.expected)
        #expect(table == expected, "\(table)")
        #expect(table.keys == expected.keys, "keys in the order written")
    }

    @Test("Keys and values know where they are written, in lines and columns of Unicode scalars")
    func positions() throws {
        let text = """
            # comment
            [server]
              host = "é" # x
            port.number = 8080
            inline = { a = "é", b = 1 }

            [[rules]]
            name = 'a'
            [[rules]]
            """
        let root = try TOMLParser.parse(text)
        #expect(root.definition == .root)
        let server = try #require(root.entry("server"))
        #expect(server.keyPosition == TOMLPosition(line: 2, column: 1))
        #expect(server.value.position == TOMLPosition(line: 2, column: 1))
        let table = try #require(server.value.table)
        #expect(table.definition == .header)
        #expect(table.entry("host")?.keyPosition == TOMLPosition(line: 3, column: 3))
        #expect(table.entry("host")?.value.position == TOMLPosition(line: 3, column: 10))
        let port = try #require(table.entry("port"))
        #expect(port.keyPosition == TOMLPosition(line: 4, column: 1))
        #expect(port.value.table?.definition == .dottedKeys)
        #expect(port.value.table?.entry("number")?.keyPosition == TOMLPosition(line: 4, column: 1))
        #expect(port.value.table?.entry("number")?.value.position == TOMLPosition(line: 4, column: 15))
        let inline = try #require(table.entry("inline")?.value)
        #expect(inline.position == TOMLPosition(line: 5, column: 10))
        #expect(inline.table?.definition == .inline)
        // "é" is one column, not two bytes.
        #expect(inline.table?.entry("b")?.keyPosition == TOMLPosition(line: 5, column: 21))
        #expect(inline.table?.entry("b")?.value.position == TOMLPosition(line: 5, column: 25))
        let rules = try #require(root.entry("rules"))
        #expect(rules.keyPosition == TOMLPosition(line: 7, column: 1))
        #expect(
            rules.value.array?.map(\.position) == [TOMLPosition(line: 7, column: 1), TOMLPosition(line: 9, column: 1)])
        #expect(rules.value.array?.first?.table?.definition == .header)
        let implicit = try TOMLParser.parse("[a.b]\n")
        #expect(implicit["a"]?.table?.definition == .implicit)
        #expect(implicit["a"]?.table?["b"]?.table?.definition == .header)
    }

    @Test("Type names are those of the configuration's messages")
    func typeNames() throws {
        let table = try TOMLParser.parse(
            "s = ''\ni = 1\nf = 1.0\nb = true\nd = 1979-05-27\nt = 07:32:00\nl = 1979-05-27T07:32:00\n"
                + "o = 1979-05-27T07:32:00Z\na = []\nh = {}\n")
        let names = table.entries.map { "\($0.key):\($0.value.typeName)" }
        #expect(
            names == [
                "s:string", "i:integer", "f:floating-point number", "b:bool", "d:date", "t:time", "l:date-time",
                "o:date-time", "a:array", "h:table",
            ])
    }

    @Test("Date-times print as RFC 3339")
    func dateTimeDescription() throws {
        let table = try TOMLParser.parse(
            "a = 1979-05-27 00:32:00.250-07:00\nb = 0001-01-01T00:00:00+00:00\nc = 23:59:59.000000001\n")
        #expect(table["a"]?.dateTime?.description == "1979-05-27T00:32:00.25-07:00")
        #expect(table["b"]?.dateTime?.description == "0001-01-01T00:00:00Z")
        #expect(table["c"]?.dateTime?.description == "23:59:59.000000001")
        #expect(table["a"]?.dateTime?.kind == .offsetDateTime)
    }

    @Test("U+0000 is a string's like any scalar, unless refused, then at its escape")
    func nul() throws {
        let text = "[a]\nkey = \"x\\u0000y\"\n\"k\\U00000000\" = 1\n"
        let table = try TOMLParser.parse(text)
        #expect(table["a"]?.table?["key"]?.string == "x\u{0}y")
        #expect(table["a"]?.table?["k\u{0}"]?.integer == 1)
        let error = #expect(throws: TOMLError.self) {
            try TOMLParser.parse(text, options: TOMLParser.Options(allowsNUL: false))
        }
        #expect(error?.kind == .nulCharacter)
        #expect(error?.position == TOMLPosition(line: 2, column: 9))
        #expect(error?.message == "a NUL character (\\u0000) is not allowed")
        // A raw NUL byte is a control character, refused either way.
        #expect(throws: TOMLError.self) { try TOMLParser.parse("a = \"\u{0}\"") }
    }

    @Test("Nesting is allowed to the limit and refused beyond it")
    func depthLimit() throws {
        let limit = TOMLParser.Options().maximumDepth
        #expect(limit == 128)
        // `a` itself is the first level: 128 arrays reach depth 128.
        let arrays = "a = " + String(repeating: "[", count: limit) + String(repeating: "]", count: limit)
        #expect(throws: Never.self) { try TOMLParser.parse(arrays) }
        #expect(throws: TOMLError.self) { try TOMLParser.parse("b = [" + arrays.dropFirst(4) + "]") }
        let header = "[" + Array(repeating: "t", count: limit).joined(separator: ".") + "]"
        #expect(throws: Never.self) { try TOMLParser.parse(header) }
        #expect(throws: TOMLError.self) { try TOMLParser.parse("[u." + header.dropFirst()) }
        let shallow = TOMLParser.Options(maximumDepth: 2)
        #expect(throws: Never.self) { try TOMLParser.parse("a = [[1]]", options: shallow) }
        let error = #expect(throws: TOMLError.self) { try TOMLParser.parse("a = [[[1]]]", options: shallow) }
        #expect(error?.position == TOMLPosition(line: 1, column: 7))
        #expect(error?.message == "Error while parsing array: arrays and tables nest deeper than 2 levels")
        // An array of tables is two levels: the array and its table.
        #expect(throws: TOMLError.self) { try TOMLParser.parse("[[a.b]]", options: shallow) }
    }

    @Test("Random text never traps: every document parses or throws an error inside the text")
    func randomText() {
        let pieces = [
            "[", "]", "[[", "]]", "=", "\"", "'", ".", "{", "}", ",", "#", "\\", "\n", "\r\n", "\r", " ", "\t", "a",
            "b",
            "1", "0x", "0b", "e", "-", "+", ":", "T", "Z", "_", "\u{0}", "\u{7F}", "é", "🙂", "\"\"\"", "'''", "inf",
            "nan", "true", "1979-05-27", "07:32:00", "\\u", "\\U0010FFFF", "\\uD800", "99999999999999999999", "1e400",
        ]
        var random = SplitMix64(seed: 7)
        for _ in 0..<20_000 {
            var text = ""
            for _ in 0..<random.below(24) { text += pieces[random.below(pieces.count)] }
            do {
                _ = try TOMLParser.parse(text)
            } catch {
                // In bytes: "\r\n" is one Character, but a line end all the same.
                let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count
                #expect(
                    error.line >= 1 && error.line <= lines && error.column >= 1, "\(error) in \(text.debugDescription)")
                #expect(error.message.hasPrefix("Error while parsing "), "\(error)")
            }
        }
    }
}

extension TOMLValue {
    fileprivate static func int(_ value: Int64) -> TOMLValue { TOMLValue(.integer(value)) }
    fileprivate static func double(_ value: Double) -> TOMLValue { TOMLValue(.float(value)) }
    fileprivate static func text(_ value: String) -> TOMLValue { TOMLValue(.string(value)) }
    fileprivate static func bool(_ value: Bool) -> TOMLValue { TOMLValue(.boolean(value)) }
    fileprivate static func list(_ values: TOMLValue...) -> TOMLValue { TOMLValue(.array(values)) }
    fileprivate static func object(_ pairs: (String, TOMLValue)...) -> TOMLValue {
        TOMLValue(.table(TOMLTable(pairs)))
    }

    fileprivate static func moment(
        date: (Int, Int, Int)? = nil, time: (Int, Int, Int, Int)? = nil, offset: Int? = nil
    ) -> TOMLValue {
        TOMLValue(
            .dateTime(
                TOMLDateTime(
                    date: date.map { TOMLDateTime.Date(year: $0.0, month: $0.1, day: $0.2) },
                    time: time.map { TOMLDateTime.Time(hour: $0.0, minute: $0.1, second: $0.2, nanosecond: $0.3) },
                    offsetMinutes: offset)))
    }
}
