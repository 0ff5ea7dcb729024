internal import CFuzzer
public import Foundation

/// A fuzz target: `LLVMFuzzerTestOneInput(data, size)`. libFuzzer never passes a null `data`.
public typealias FuzzTarget = @convention(c) (UnsafePointer<UInt8>, Int) -> CInt

/// Runs libFuzzer with the command line's arguments on `target`, and exits with its status. A harness's `main` calls
/// it: the executable has an entry point of its own, so libFuzzer's `main` is not the one linked.
public func runFuzzer(_ target: FuzzTarget) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    // The same C function, its pointer argument seen as nullable.
    let callback = unsafeBitCast(target, to: (@convention(c) (UnsafePointer<UInt8>?, Int) -> CInt).self)
    exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
}

/// A broken invariant: says which on stderr and aborts, so that libFuzzer keeps the input as a crash.
public func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    guard !condition else { return }
    FileHandle.standardError.write(Data("invariant broken: \(message())\n".utf8))
    abort()
}
