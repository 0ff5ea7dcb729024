#if DEBUG
    import Glibc
    import Logging

    /// A test-only fault hook, compiled into debug builds only (release builds have no trace of it).
    ///
    /// When `PORTSYNCD_FAULT_FILE` names a file, the supervisor reads it at each stall check, deletes it, and applies
    /// each line: `fail <worker>` (the worker reports a failure, as its own error paths do) or
    /// `stall <worker> <milliseconds>` (the worker's queue is really blocked for that long). It stands in for faults
    /// that cannot be caused from outside on demand: a worker's internal error, or a stuck loop.
    enum FaultInjection {
        static func poll(_ supervisor: Supervisor) {
            guard let path = getenv("PORTSYNCD_FAULT_FILE").map({ String(cString: $0) }), !path.isEmpty,
                let text = Self.take(path)
            else { return }
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ").map(String.init)
                switch (words.first, words.count) {
                case ("fail", 2): supervisor.injectFailure(words[1], reason: "injected fault")
                case ("stall", 3): supervisor.injectStall(words[1], milliseconds: Int(words[2]) ?? 0)
                default: continue
                }
            }
        }

        /// The file's content, and the file removed; `nil` when there is none.
        private static func take(_ path: String) -> String? {
            guard let file = fopen(path, "r") else { return nil }
            defer { fclose(file) }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = fread(&chunk, 1, chunk.count, file)
                if count <= 0 { break }
                bytes.append(contentsOf: chunk[0..<count])
            }
            unlink(path)
            return String(decoding: bytes, as: UTF8.self)
        }
    }
#endif
