import Foundation
#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
#endif

/// Writes files so that a failed or killed run never leaves a half-written file or
/// replaces a good one: data goes to a temporary file beside the target
/// (`.NAME.tmp-PID-RANDOM`), which is flushed to disk and then renamed over it.
///
/// Order matters for crash safety: the file's data is fsynced before the rename, so the
/// new name never points at unwritten blocks, and the folder is fsynced after it, so the
/// rename itself survives a power cut. The temporary file is removed on every failure;
/// a temporary left by a killed process is removed by the next write of the same name
/// (see `removeStaleTemporaries`).
public enum AtomicWrite {
    /// Writes `data` to `path`, replacing any file there in one step.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { try $0.write(data) }
    }

    /// Lets `fill` stream the new contents of `path` into a sink, then puts them in place.
    /// If `fill` throws, the old file (if any) is left untouched and the error rethrown.
    public static func write(to path: String, _ fill: (FileSink) throws -> Void) throws {
        let target = URL(fileURLWithPath: path)
        let parent = target.deletingLastPathComponent().path
        // Renaming over a device, pipe or folder would replace it (as root, /dev/full
        // became a regular file): only regular files are replaced.
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFREG {
            throw FormatError(path, "not a regular file: sparc only writes regular files")
        }
        removeStaleTemporaries(in: parent, named: target.lastPathComponent)
        let tmp = temporaryPath(for: target)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw FormatError(path, "cannot write: \(String(cString: strerror(errno)))") }
        var fdOpen = true
        var placed = false
        defer {
            if fdOpen { close(fd) }
            if !placed { unlink(tmp) }
        }
        let sink = FileSink(fd: fd, path: path)
        try fill(sink)
        try sink.flush()
        guard fsync(fd) == 0 else { throw FormatError(path, "cannot flush to disk: \(String(cString: strerror(errno)))") }
        fdOpen = false
        guard close(fd) == 0 else { throw FormatError(path, "cannot write: \(String(cString: strerror(errno)))") }
        guard rename(tmp, path) == 0 else {
            throw FormatError(path, "cannot move the written file into place: \(String(cString: strerror(errno)))")
        }
        placed = true
        try syncDirectory(parent, for: path)
    }

    /// `.NAME.tmp-PID-RANDOM` beside `target`: hidden, tied to this process, unique.
    static func temporaryPath(for target: URL) -> String {
        let name = ".\(target.lastPathComponent).tmp-\(getpid())-\(String(UInt64.random(in: 0 ... .max), radix: 16))"
        return target.deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// Flushes a folder's entries (a rename or a new file inside it) to disk.
    static func syncDirectory(_ dir: String, for path: String) throws {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FormatError(path, "cannot open the folder \(dir) to flush it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw FormatError(path, "cannot flush the folder \(dir) to disk: \(String(cString: strerror(errno)))") }
    }

    /// Removes temporary files and folders (`.NAME.tmp-PID-…`) in `dir` left by saves whose
    /// process is no longer running — a save killed mid-write leaves one. Only `NAME` is
    /// considered when `name` is given; otherwise every such entry. A PID that is alive
    /// (possibly reused by an unrelated process) keeps its entry: never delete a save in
    /// progress. Returns the names removed.
    @discardableResult
    public static func removeStaleTemporaries(in dir: String, named name: String? = nil) -> [String] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        var removed: [String] = []
        for entry in entries {
            guard let (owner, pid) = parseTemporaryName(entry), name == nil || owner == name, !processIsAlive(pid) else { continue }
            if (try? FileManager.default.removeItem(atPath: dir + "/" + entry)) != nil { removed.append(entry) }
        }
        return removed
    }

    /// `(NAME, PID)` for `.NAME.tmp-PID-HEX`, nil for any other name.
    static func parseTemporaryName(_ entry: String) -> (name: String, pid: pid_t)? {
        guard entry.hasPrefix("."), let marker = entry.range(of: ".tmp-", options: .backwards) else { return nil }
        let owner = entry[entry.index(after: entry.startIndex) ..< marker.lowerBound]
        let tail = entry[marker.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        guard !owner.isEmpty, tail.count == 2, let pid = pid_t(tail[0]), pid > 0,
              !tail[1].isEmpty, tail[1].allSatisfy(\.isHexDigit) else { return nil }
        return (String(owner), pid)
    }

    static func processIsAlive(_ pid: pid_t) -> Bool {
        // Signal 0 checks existence only; EPERM means it exists but belongs to another user.
        kill(pid, 0) == 0 || errno == EPERM
    }
}

/// Buffered, checked writes to an open file, for `AtomicWrite.write(to:_:)`.
public final class FileSink {
    private let fd: Int32
    private let path: String
    private var buffer: [UInt8] = []
    private static let capacity = 1 << 20

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        buffer.reserveCapacity(FileSink.capacity)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > FileSink.capacity { try flush() }
        if bytes.count >= FileSink.capacity {
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    public func write(_ data: Data) throws { try data.withUnsafeBytes { try write($0) } }
    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FormatError(path, "cannot write: \(String(cString: strerror(errno)))") }
            done += n
        }
    }
}

/// Replaces a whole folder in one step (a saved model: config.json, weights, tokenizer),
/// so a reader sees either the old folder or the complete new one, never a mix.
public enum AtomicDirectory {
    /// Creates a temporary folder beside `dir`, lets `fill` write into it (it receives the
    /// folder's path), flushes every file and folder to disk, then swaps it into place:
    /// with `renameat2(RENAME_EXCHANGE)` when `dir` exists (the old copy, now at the
    /// temporary path, is then removed), with `rename` when it does not. On any failure
    /// the temporary folder is removed and `dir` is left as it was.
    public static func write(to dir: String, _ fill: (String) throws -> Void) throws {
        let target = URL(fileURLWithPath: dir).standardizedFileURL
        let path = target.path
        let parent = target.deletingLastPathComponent().path
        AtomicWrite.removeStaleTemporaries(in: parent, named: target.lastPathComponent)
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        guard !exists || isDir.boolValue else { throw FormatError(path, "exists and is not a folder") }

        let tmp = AtomicWrite.temporaryPath(for: target)
        guard mkdir(tmp, 0o777) == 0 else {
            throw FormatError(path, "cannot create a temporary folder beside it: \(String(cString: strerror(errno)))")
        }
        // Until the swap succeeds, `tmp` holds only the new, unfinished copy: remove it on
        // every way out. After a swap it holds the old copy, removed below.
        var swapped = false
        defer { if !swapped { try? FileManager.default.removeItem(atPath: tmp) } }
        try fill(tmp)
        try syncTree(tmp, for: path)

        if exists {
            if try exchange(tmp, path) {
                swapped = true
                try AtomicWrite.syncDirectory(parent, for: path)
                try? FileManager.default.removeItem(atPath: tmp)
                return
            }
            // No atomic exchange on this file system: move the old copy aside first. A
            // crash between the two renames leaves `dir` missing but both copies on disk.
            let aside = AtomicWrite.temporaryPath(for: target)
            guard rename(path, aside) == 0 else {
                throw FormatError(path, "cannot move the old folder aside: \(String(cString: strerror(errno)))")
            }
            guard rename(tmp, path) == 0 else {
                let reason = String(cString: strerror(errno))
                _ = rename(aside, path)
                throw FormatError(path, "cannot move the written folder into place: \(reason)")
            }
            swapped = true
            try AtomicWrite.syncDirectory(parent, for: path)
            try? FileManager.default.removeItem(atPath: aside)
            return
        }
        guard rename(tmp, path) == 0 else {
            throw FormatError(path, "cannot move the written folder into place: \(String(cString: strerror(errno)))")
        }
        swapped = true
        try AtomicWrite.syncDirectory(parent, for: path)
    }

    /// fsyncs every regular file and folder under `root`, then `root` itself.
    static func syncTree(_ root: String, for path: String) throws {
        let fm = FileManager.default
        var dirs = [root]
        for entry in (fm.enumerator(atPath: root)?.allObjects as? [String]) ?? [] {
            let full = root + "/" + entry
            var st = stat()
            guard lstat(full, &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: dirs.append(full)
            case S_IFREG:
                let fd = open(full, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw FormatError(path, "cannot open \(entry) to flush it: \(String(cString: strerror(errno)))") }
                defer { close(fd) }
                guard fsync(fd) == 0 else { throw FormatError(path, "cannot flush \(entry) to disk: \(String(cString: strerror(errno)))") }
            default: continue
            }
        }
        // Deepest folders first, the root last.
        for dir in dirs.reversed() { try AtomicWrite.syncDirectory(dir, for: path) }
    }

    /// Swaps two paths atomically; false when the system or file system cannot.
    static func exchange(_ a: String, _ b: String) throws -> Bool {
        #if os(Linux)
        // glibc declares renameat2 only under _GNU_SOURCE, which Swift's Glibc module does
        // not define: look the symbol up instead (glibc ≥ 2.28 has it).
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return false }
        let renameat2 = unsafeBitCast(symbol, to: RenameAt2.self)
        let renameExchange: UInt32 = 1 << 1
        if renameat2(AT_FDCWD, a, AT_FDCWD, b, renameExchange) == 0 { return true }
        if errno == EINVAL || errno == ENOSYS || errno == ENOTSUP { return false }
        throw FormatError(b, "cannot swap the written folder into place: \(String(cString: strerror(errno)))")
        #elseif canImport(Darwin)
        if renamex_np(a, b, UInt32(RENAME_SWAP)) == 0 { return true }
        if errno == ENOTSUP || errno == EINVAL { return false }
        throw FormatError(b, "cannot swap the written folder into place: \(String(cString: strerror(errno)))")
        #else
        return false
        #endif
    }
}
