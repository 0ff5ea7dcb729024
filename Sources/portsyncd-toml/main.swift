import Foundation
import PortSyncCore

/// `portsyncd-toml`: the configuration's TOML parser alone, for comparing it with other parsers (the differential
/// test against Python's tomllib).
///
///     portsyncd-toml < file.toml      the document as JSON in toml-test's tagged form on stdout, exit 0; or
///                                     `line:col: message` on stderr, exit 1
///     portsyncd-toml --batch          many documents, each framed as `<byte count>\n<bytes>` on stdin; one line
///                                     per document on stdout: {"ok": <tagged JSON>} or {"error": "line:col: …"}
///
/// The tagged form gives each leaf as {"type": "integer", "value": "1"} (types string, integer, float, bool,
/// datetime, datetime-local, date-local, time-local); arrays and tables are JSON arrays and objects.
enum TOMLTool {
    static func main() -> Int32 {
        let input = [UInt8](FileHandle.standardInput.readDataToEndOfFile())
        switch CommandLine.arguments.dropFirst().first {
        case nil:
            switch Self.parse(input[...]) {
            case .success(let json):
                FileHandle.standardOutput.write(Data((json + "\n").utf8))
                return 0
            case .failure(let failure):
                FileHandle.standardError.write(Data(("portsyncd-toml: " + failure.message + "\n").utf8))
                return 1
            }
        case "--batch":
            var output = ""
            var offset = 0
            while offset < input.count {
                guard let newline = input[offset...].firstIndex(of: UInt8(ascii: "\n")),
                    let length = Int(String(decoding: input[offset..<newline], as: UTF8.self)), length >= 0,
                    newline + 1 + length <= input.count
                else {
                    FileHandle.standardError.write(Data("portsyncd-toml: bad frame at byte \(offset)\n".utf8))
                    return 2
                }
                let document = input[(newline + 1)..<(newline + 1 + length)]
                switch Self.parse(document) {
                case .success(let json): output += "{\"ok\":" + json + "}\n"
                case .failure(let failure): output += "{\"error\":" + TaggedJSON.string(failure.message) + "}\n"
                }
                offset = newline + 1 + length
            }
            FileHandle.standardOutput.write(Data(output.utf8))
            return 0
        default:
            FileHandle.standardError.write(Data("usage: portsyncd-toml [--batch] < input\n".utf8))
            return 2
        }
    }

    struct Failure: Error {
        var message: String
    }

    static func parse(_ bytes: ArraySlice<UInt8>) -> Result<String, Failure> {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(Failure(message: "1:1: the text is not UTF-8"))
        }
        do {
            return .success(TaggedJSON.table(try TOMLParser.parse(text)))
        } catch {
            return .failure(Failure(message: error.description))
        }
    }
}

/// toml-test's JSON encoding of a TOML document.
enum TaggedJSON {
    static func table(_ table: TOMLTable) -> String {
        "{" + table.entries.map { Self.string($0.key) + ":" + Self.value($0.value) }.joined(separator: ",") + "}"
    }

    static func value(_ value: TOMLValue) -> String {
        switch value.content {
        case .string(let string): Self.leaf("string", string)
        case .integer(let integer): Self.leaf("integer", String(integer))
        case .float(let float):
            Self.leaf("float", float.isNaN ? "nan" : float.isInfinite ? (float < 0 ? "-inf" : "inf") : "\(float)")
        case .boolean(let boolean): Self.leaf("bool", String(boolean))
        case .dateTime(let dateTime):
            switch dateTime.kind {
            case .offsetDateTime: Self.leaf("datetime", dateTime.description)
            case .localDateTime: Self.leaf("datetime-local", dateTime.description)
            case .localDate: Self.leaf("date-local", dateTime.description)
            case .localTime: Self.leaf("time-local", dateTime.description)
            }
        case .array(let elements): "[" + elements.map(Self.value).joined(separator: ",") + "]"
        case .table(let table): Self.table(table)
        }
    }

    private static func leaf(_ type: String, _ value: String) -> String {
        "{\"type\":\"" + type + "\",\"value\":" + Self.string(value) + "}"
    }

    /// A JSON string: quotes, backslashes and control characters escaped, everything else as it is.
    static func string(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}

exit(TOMLTool.main())
