import Foundation
import Testing
@testable import SparcFormats
@testable import SparcTensor

/// Builds GGUF bytes field by field, so tests can write what no honest writer would.
struct RawGGUF {
    var bytes: [UInt8] = []
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func str(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
    mutating func header(tensors: UInt64, kvs: UInt64) { u32(GGUFFile.magic); u32(3); u64(tensors); u64(kvs) }
    mutating func tensor(_ name: String, dims: [UInt64], type: UInt32 = 0, offset: UInt64) {
        str(name); u32(UInt32(dims.count)); dims.forEach { u64($0) }; u32(type); u64(offset)
    }
    /// Pads to 32 bytes and appends `count` data bytes.
    mutating func data(_ count: Int) {
        bytes += [UInt8](repeating: 0, count: (32 - bytes.count % 32) % 32)
        bytes += [UInt8](repeating: 0x3F, count: count)
    }
}

/// Expects `body` to throw a `FormatError` whose text contains `fragment`.
func expectFormatError(_ fragment: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("no error; expected one mentioning \"\(fragment)\"", sourceLocation: sourceLocation)
    } catch let e as FormatError {
        #expect(e.description.contains(fragment), "\(e)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a FormatError, got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct GGUFValidationTests {
    func open(_ raw: RawGGUF, _ dir: TempDir) throws -> GGUFFile {
        let path = dir.file("x.gguf")
        try Data(raw.bytes).write(to: URL(fileURLWithPath: path))
        return try GGUFFile(path: path)
    }

    @Test func wellFormedRawFileOpens() throws {
        let dir = TempDir()
        var g = RawGGUF()
        g.header(tensors: 2, kvs: 0)
        g.tensor("a", dims: [4], offset: 0)
        g.tensor("b", dims: [8], offset: 32)
        g.data(64)
        let f = try open(g, dir)
        #expect(f.tensors.map(\.elementCount) == [4, 8])
        #expect(try f.tensor("b").shape == [8])
    }

    @Test func tensorsSharingBytesAreRejected() {
        // The 16 MB file whose 400 tensors all point at offset 0, in miniature.
        let dir = TempDir()
        var g = RawGGUF()
        g.header(tensors: 400, kvs: 0)
        for i in 0..<400 { g.tensor("t\(i)", dims: [1024], offset: 0) }
        g.data(4096)
        expectFormatError("overlap") { _ = try open(g, dir) }
        // Partial overlap, listed out of order.
        var h = RawGGUF()
        h.header(tensors: 2, kvs: 0)
        h.tensor("late", dims: [16], offset: 32)
        h.tensor("early", dims: [16], offset: 0)
        h.data(96)
        expectFormatError("tensors early (bytes") { _ = try open(h, dir) }
    }

    @Test func dataRangesAreCheckedWithoutOverflow() {
        let dir = TempDir()
        for offset: UInt64 in [.max - 31, 1 << 63, UInt64(Int.max) - 31, 64] {
            var g = RawGGUF()
            g.header(tensors: 1, kvs: 0)
            g.tensor("a", dims: [8], offset: offset)
            g.data(32)
            expectFormatError("past the end of the data section") { _ = try open(g, dir) }
        }
        var g = RawGGUF()
        g.header(tensors: 1, kvs: 0)
        g.tensor("a", dims: [8], offset: 4)
        g.data(64)
        expectFormatError("not aligned") { _ = try open(g, dir) }
    }

    @Test func dimsProductOverflowIsReported() {
        let dir = TempDir()
        var g = RawGGUF()
        g.header(tensors: 1, kvs: 0)
        g.tensor("a", dims: [1 << 40, 1 << 40], offset: 0)
        g.data(32)
        expectFormatError("overflow the element count") { _ = try open(g, dir) }
        var h = RawGGUF()
        h.header(tensors: 1, kvs: 0)
        h.tensor("a", dims: [1 << 31, 1 << 31], offset: 0)  // 2^62 elements × 4 bytes overflows
        h.data(32)
        expectFormatError("overflow the byte count") { _ = try open(h, dir) }
    }

    @Test func countsBeyondTheFileAreRejectedBeforeAllocating() {
        let dir = TempDir()
        for (t, k): (UInt64, UInt64) in [(.max, 0), (0, .max), (1 << 60, 1 << 60), (100, 0), (0, 100)] {
            var g = RawGGUF()
            g.header(tensors: t, kvs: k)
            g.data(64)
            expectFormatError("cannot fit") { _ = try open(g, dir) }
        }
    }

    @Test func metadataLengthsAreBoundedByRemainingBytes() {
        let dir = TempDir()
        // A key claiming 2^63 bytes.
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.u64(1 << 63); g.data(64)
        expectFormatError("claims") { _ = try open(g, dir) }
        // An array of u64 claiming more elements than the bytes left could hold.
        var h = RawGGUF()
        h.header(tensors: 0, kvs: 1)
        h.str("k"); h.u32(GGUFValueType.array.rawValue); h.u32(GGUFValueType.uint64.rawValue); h.u64(20)
        h.bytes += [UInt8](repeating: 0, count: 100)
        expectFormatError("claims 20 elements") { _ = try open(h, dir) }
        // Duplicate keys: the second would silently replace the first.
        var d = RawGGUF()
        d.header(tensors: 0, kvs: 2)
        for _ in 0..<2 { d.str("general.name"); d.u32(GGUFValueType.uint8.rawValue); d.bytes.append(1) }
        expectFormatError("appears twice") { _ = try open(d, dir) }
        // An unknown element type and an invalid alignment.
        var a = RawGGUF()
        a.header(tensors: 0, kvs: 1)
        a.str("general.alignment"); a.u32(GGUFValueType.uint32.rawValue); a.u32(12)
        expectFormatError("invalid general.alignment") { _ = try open(a, dir) }
    }

    @Test func duplicateTensorNamesAreRejected() {
        let dir = TempDir()
        var g = RawGGUF()
        g.header(tensors: 2, kvs: 0)
        g.tensor("a", dims: [8], offset: 0)
        g.tensor("a", dims: [8], offset: 32)
        g.data(64)
        expectFormatError("appears twice") { _ = try open(g, dir) }
    }

    @Test func fileTruncatedAfterOpeningStillReads() throws {
        // With mmap, this truncation turned the next tensor read into SIGBUS.
        let dir = TempDir()
        var w = GGUFWriter()
        w.add(tensor: sampleTensor([64, 256]), named: "big")
        let path = dir.file("t.gguf")
        try w.write(to: path)
        let f = try GGUFFile(path: path)
        #expect(truncate(path, 64) == 0)
        #expect(try f.tensor("big").scalars == sampleTensor([64, 256]).scalars)
    }

    @Test func writerRefusesWhatTheReaderWouldReject() {
        let dir = TempDir()
        var w = GGUFWriter()
        w.add(tensor: sampleTensor([2]), named: "a")
        w.add(tensor: sampleTensor([2]), named: "a")
        expectFormatError("two tensors named a") { try w.write(to: dir.file("x.gguf")) }
        var s = GGUFWriter()
        s.add(tensor: Tensor(shape: [], values: [1]), named: "scalar")
        expectFormatError("rank 1...4") { try s.write(to: dir.file("x.gguf")) }
        var k = GGUFWriter()
        k.add("general.name", .string("a")); k.add("general.name", .string("b"))
        expectFormatError("key general.name twice") { try k.write(to: dir.file("x.gguf")) }
        #expect(!FileManager.default.fileExists(atPath: dir.file("x.gguf")))
    }
}

@Suite struct SafetensorsValidationTests {
    func write(_ header: String, dataBytes: Int, _ dir: TempDir) throws -> String {
        let path = dir.file("x.safetensors")
        var d = Data()
        let h = Array(header.utf8)
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: h)
        d.append(contentsOf: [UInt8](repeating: 0, count: dataBytes))
        try d.write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func overlappingRangesAreRejected() throws {
        let dir = TempDir()
        let p = try write(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, dataBytes: 16, dir)
        expectFormatError("overlap") { _ = try SafetensorsFile(path: p) }
        // Empty tensors take no bytes and may sit anywhere.
        let q = try write(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"e":{"dtype":"F32","shape":[0,3],"data_offsets":[8,8]}}"#, dataBytes: 16, dir)
        #expect(try SafetensorsFile(path: q).names.count == 2)
    }

    @Test func numbersMustBeExactIntegers() throws {
        let dir = TempDir()
        for bad in ["true", "2.5", "1e300", "18446744073709551616", "-1", "\"4\"", "null"] {
            let p = try write(#"{"a":{"dtype":"F32","shape":[\#(bad)],"data_offsets":[0,16]}}"#, dataBytes: 16, dir)
            expectFormatError("invalid dimension") { _ = try SafetensorsFile(path: p) }
            let q = try write(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,\#(bad)]}}"#, dataBytes: 16, dir)
            expectFormatError("data_offsets") { _ = try SafetensorsFile(path: q) }
        }
        let huge = try write(#"{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}}"#, dataBytes: 16, dir)
        expectFormatError("overflows") { _ = try SafetensorsFile(path: huge) }
        let big = try write(#"{"a":{"dtype":"F32","shape":[9223372036854775807],"data_offsets":[0,16]}}"#, dataBytes: 16, dir)
        expectFormatError("invalid dimension") { _ = try SafetensorsFile(path: big) }
    }

    @Test func hostileHeadersGiveErrors() throws {
        let dir = TempDir()
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        expectFormatError("not valid JSON") { _ = try SafetensorsFile(path: try write(deep, dataBytes: 0, dir)) }
        expectFormatError("not a JSON object") { _ = try SafetensorsFile(path: try write("[1]", dataBytes: 0, dir)) }
        expectFormatError("__metadata__ is not an object") {
            _ = try SafetensorsFile(path: try write(#"{"__metadata__":[1]}"#, dataBytes: 0, dir))
        }
        // A length prefix claiming more than the file holds.
        let path = dir.file("len.safetensors")
        var d = Data()
        withUnsafeBytes(of: UInt64.max.littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array("{}".utf8))
        try d.write(to: URL(fileURLWithPath: path))
        expectFormatError("corrupt header length") { _ = try SafetensorsFile(path: path) }
    }

    @Test func writerRejectsReservedAndDuplicateNames() throws {
        let dir = TempDir()
        let path = dir.file("w.safetensors")
        expectFormatError("reserves that key") { try SafetensorsWriter.write([("__metadata__", sampleTensor([2]))], to: path) }
        expectFormatError("two tensors named a") {
            try SafetensorsWriter.write([("a", sampleTensor([2])), ("a", sampleTensor([3]))], to: path)
        }
        #expect(throws: FormatError.self) { _ = try SafetensorsWriter.encode([("__metadata__", sampleTensor([2]))]) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
        // Everything the writer accepts, the reader reads back: empty and scalar tensors too.
        try SafetensorsWriter.write([("empty", Tensor(zeros: [0, 3])), ("scalar", Tensor(shape: [], values: [7])),
                                     ("m", sampleTensor([3, 5]))], to: path, dtype: .f16, metadata: ["k": "v"])
        let f = try SafetensorsFile(path: path)
        #expect(try f.tensor("empty").shape == [0, 3])
        #expect(try f.tensor("scalar").scalars == [7])
        #expect(f.metadata == ["k": "v"])
    }

    @Test func streamedWriteMatchesEncode() throws {
        let dir = TempDir()
        let path = dir.file("s.safetensors")
        // Larger than one 64k-element conversion chunk, so chunk boundaries are covered.
        let tensors = [("a", sampleTensor([300, 700])), ("b", sampleTensor([5], seed: 4))]
        for dtype: SafetensorsWriter.DType in [.f32, .f16, .bf16, .bool] {
            try SafetensorsWriter.write(tensors, to: path, dtype: dtype)
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == SafetensorsWriter.encode(tensors, dtype: dtype))
        }
    }
}
