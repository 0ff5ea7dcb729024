import Dispatch
import Foundation
import Glibc

/// Notices when the configuration file changes: inotify on its *directory* (an editor's atomic save replaces the
/// file, which would end a watch on the file itself), matching the file's name on `IN_CLOSE_WRITE` and
/// `IN_MOVED_TO`, plus a periodic check of its modification time and content as a fallback. `changed` runs on
/// `queue` when the content differs from what was last seen, so one save gives one reload.
///
/// Threading: confined to `queue` (the config worker's).
final class ConfigWatcher: @unchecked Sendable {
    private let path: String
    private let queue: DispatchQueue
    private let changed: () -> Void
    private var inotify: Int32 = -1
    private var source: (any DispatchSourceRead)?
    private var timer: (any DispatchSourceTimer)?
    private var lastSeen: FileSignature?

    /// What identifies one version of the file: modification time and a hash of the content.
    private struct FileSignature: Equatable {
        var modified: timespec?
        var contentHash: UInt64?

        static func == (lhs: FileSignature, rhs: FileSignature) -> Bool {
            lhs.contentHash == rhs.contentHash && lhs.modified?.tv_sec == rhs.modified?.tv_sec
                && lhs.modified?.tv_nsec == rhs.modified?.tv_nsec
        }
    }

    init(path: String, queue: DispatchQueue, changed: @escaping () -> Void) {
        self.path = path
        self.queue = queue
        self.changed = changed
    }

    /// Starts watching. Returns a description of what could not be set up (the periodic check still runs).
    func start(checkIntervalMs: Int) -> String? {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.lastSeen = self.signature()
        var problem: String?
        let directory = (self.path as NSString).deletingLastPathComponent
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0 {
            problem = SystemError.current("inotify_init1").description
        } else if inotify_add_watch(fd, directory.isEmpty ? "." : directory, UInt32(IN_CLOSE_WRITE | IN_MOVED_TO)) < 0 {
            problem = SystemError.current("inotify_add_watch(\(directory))").description
            close(fd)
        } else {
            self.inotify = fd
            let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: self.queue)
            source.setEventHandler { [unowned self] in self.readEvents() }
            self.source = source
            source.resume()
        }
        if checkIntervalMs > 0 {
            let timer = DispatchSource.makeTimerSource(queue: self.queue)
            timer.schedule(
                deadline: .now() + .milliseconds(checkIntervalMs), repeating: .milliseconds(checkIntervalMs))
            timer.setEventHandler { [unowned self] in self.checkNow() }
            self.timer = timer
            timer.resume()
        }
        return problem
    }

    /// Stops watching: closes the inotify descriptor and cancels the periodic check.
    func stop() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.timer?.cancel()
        self.timer = nil
        if let source = self.source {
            let fd = self.inotify
            source.setCancelHandler { close(fd) }
            source.cancel()
        } else if self.inotify >= 0 {
            close(self.inotify)
        }
        self.source = nil
        self.inotify = -1
    }

    /// Records the file as it is now as seen (after a reload triggered elsewhere, such as SIGHUP).
    func markSeen() {
        dispatchPrecondition(condition: .onQueue(self.queue))
        self.lastSeen = self.signature()
    }

    /// Calls `changed` if the file differs from what was last seen.
    func checkNow() {
        let now = self.signature()
        guard now != self.lastSeen else { return }
        self.lastSeen = now
        self.changed()
    }

    private func readEvents() {
        let name = (self.path as NSString).lastPathComponent
        var buffer = [UInt8](repeating: 0, count: 4096)
        var relevant = false
        while true {
            let count = buffer.withUnsafeMutableBytes { read(self.inotify, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            var offset = 0
            let header = MemoryLayout<inotify_event>.size
            while offset + header <= count {
                let length = buffer.withUnsafeBytes {
                    Int($0.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                }
                let end = min(offset + header + length, count)
                let nameBytes = buffer[(offset + header)..<end].prefix(while: { $0 != 0 })
                if String(decoding: nameBytes, as: UTF8.self) == name { relevant = true }
                offset = end
            }
        }
        if relevant { self.checkNow() }
    }

    private func signature() -> FileSignature {
        var info = stat()
        guard stat(self.path, &info) == 0 else { return FileSignature(modified: nil, contentHash: nil) }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        if let data = FileManager.default.contents(atPath: self.path) {
            for byte in data {
                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            }
        }
        return FileSignature(modified: info.st_mtim, contentHash: hash)
    }
}
