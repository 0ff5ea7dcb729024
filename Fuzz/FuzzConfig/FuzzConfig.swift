import Foundation
import FuzzSupport
import PortSyncCore

/// The configuration file: any bytes either decode into a `Config` or throw a `ConfigError` that points into the
/// text (line and column from 1, a line of the file and a column at most one past its end), and decoding the same
/// text twice gives the same result.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let first = decode(text)
    if case .failure(let error) = first {
        let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        check(error.file == file, "the error names \(error.file)")
        check(error.line >= 1 && error.column >= 1, "position \(error.line):\(error.column) is not from 1")
        check(error.line <= lines.count, "line \(error.line) of a text of \(lines.count) lines")
        // Columns may count bytes or characters: either way no further than one past the line's last byte.
        let length = error.line <= lines.count ? lines[error.line - 1].count : 0
        check(error.column <= length + 1, "column \(error.column) of a line of \(length) bytes")
        check(!error.message.isEmpty, "an error without a message")
    }
    check(decode(text) == first, "decoding the same text twice differs")
    return 0
}

let file = "/etc/sonic/portsyncd.conf"

func decode(_ text: String) -> Result<Config, ConfigError> {
    do throws(ConfigError) {
        return .success(try ConfigDecoder.decode(text, file: file))
    } catch {
        return .failure(error)
    }
}

@main
enum FuzzConfig {
    static func main() { runFuzzer(fuzz) }
}
