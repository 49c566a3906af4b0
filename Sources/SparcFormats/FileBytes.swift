import Foundation

/// A file's bytes, read into memory when it is opened. Its bytes are only reached
/// through `ByteReader` or `slice(offset:count:what:)`, which check every range first.
///
/// Why not `mmap`: a mapped file that another process truncates (a download being
/// replaced, a save running beside a load) turns the next read of a vanished page into
/// SIGBUS, which no range check can prevent. A private copy cannot change underneath us;
/// the models sparc reads are decoded in full right after opening anyway, so the copy
/// costs one pass over the bytes (see docs/RELIABILITY.md for the measured load time).
public final class FileBytes: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw FormatError(path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FormatError(path, "cannot stat: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FormatError(path, "not a regular file") }
        let size = Int(st.st_size)
        guard size > 0 else { throw FormatError(path, "file is empty") }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
        var done = 0
        while done < size {
            // Chunks keep each read well under the kernel's per-call limit (~2 GiB).
            let n = pread(fd, buffer.baseAddress! + done, min(size - done, 1 << 30), off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let reason = n < 0 ? String(cString: strerror(errno)) : "the file shrank to \(done) bytes while being read"
                buffer.deallocate()
                throw FormatError(path, "cannot read: \(reason)")
            }
            done += n
        }
        bytes = UnsafeRawBufferPointer(buffer)
    }

    deinit { bytes.deallocate() }

    public var size: Int { bytes.count }

    /// The bytes `offset ..< offset + count`, after checking they lie inside the file.
    public func slice(offset: Int, count: Int, what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw FormatError(path, "\(what()) at bytes \(offset)..<\(offset &+ count) lies past the end of the file (\(size) bytes)")
        }
        return UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + count])
    }
}

/// A cursor over little-endian binary data that checks every read against the end.
public struct ByteReader {
    public let bytes: UnsafeRawBufferPointer
    public let file: String
    public private(set) var offset: Int

    public init(_ bytes: UnsafeRawBufferPointer, file: String, offset: Int = 0) {
        self.bytes = bytes
        self.file = file
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    private mutating func take(_ n: Int, _ what: String) throws -> Int {
        guard n >= 0, n <= remaining else {
            throw FormatError(file, "truncated: needs \(n) bytes for \(what) at offset \(offset), \(max(remaining, 0)) left")
        }
        defer { offset += n }
        return offset
    }

    public mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        let at = try take(MemoryLayout<T>.size, what)
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: T.self))
    }

    public mutating func readFloat(_ what: String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what))
    }

    public mutating func readDouble(_ what: String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what))
    }

    public mutating func readBytes(_ n: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        let at = try take(n, what)
        return UnsafeRawBufferPointer(rebasing: bytes[at ..< at + n])
    }

    /// Moves the cursor to `newOffset` (checked).
    public mutating func seek(to newOffset: Int) throws {
        guard newOffset >= 0, newOffset <= bytes.count else {
            throw FormatError(file, "offset \(newOffset) lies past the end of the file (\(bytes.count) bytes)")
        }
        offset = newOffset
    }
}
