import Foundation
import Testing
@testable import SparcFormats
@testable import SparcTensor

/// A scratch directory removed when the test ends.
final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "sparc-test-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

func sampleTensor(_ shape: [Int], seed: Int = 1) -> Tensor {
    Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { Float(($0 * 7919 + seed * 31) % 1000) / 250 - 2 })
}

@Suite struct GGUFTests {
    func sampleFile(_ dir: TempDir) throws -> String {
        var w = GGUFWriter()
        w.add("general.architecture", .string("llama"))
        w.add("test.u8", .uint8(200)); w.add("test.i8", .int8(-5)); w.add("test.u16", .uint16(65000))
        w.add("test.i16", .int16(-300)); w.add("test.u32", .uint32(4_000_000_000)); w.add("test.i32", .int32(-7))
        w.add("test.f32", .float32(1.5)); w.add("test.bool", .bool(true)); w.add("test.u64", .uint64(1 << 40))
        w.add("test.i64", .int64(-(1 << 40))); w.add("test.f64", .float64(0.1))
        w.add("test.strings", .array(.string, [.string("a"), .string("é😀")]))
        w.add("test.nested", .array(.array, [.array(.int32, [.int32(1), .int32(2)])]))
        w.add(tensor: sampleTensor([3, 64]), named: "a", as: .f32)
        w.add(tensor: sampleTensor([2, 32], seed: 2), named: "b", as: .f16)
        w.add(tensor: sampleTensor([5], seed: 3), named: "c", as: .bf16)
        let path = dir.file("x.gguf")
        try w.write(to: path)
        return path
    }

    @Test func roundTripsMetadataAndTensors() throws {
        let dir = TempDir()
        let f = try GGUFFile(path: try sampleFile(dir))
        #expect(f.version == 3)
        #expect(f.metadata["test.u8"] == .uint8(200))
        #expect(f.metadata["test.i16"] == .int16(-300))
        #expect(f.metadata["test.u32"]?.int == 4_000_000_000)
        #expect(f.metadata["test.f64"]?.double == 0.1)
        #expect(f.metadata["test.bool"]?.bool == true)
        #expect(f.metadata["test.strings"]?.array?.compactMap(\.string) == ["a", "é😀"])
        #expect(f.metadata["test.nested"] == .array(.array, [.array(.int32, [.int32(1), .int32(2)])]))
        #expect(f.info("a")?.dims == [64, 3])
        #expect(try f.tensor("a").scalars == sampleTensor([3, 64]).scalars)
        // The sample values are multiples of 1/250 in [-2, 2): f16 and bf16 round them.
        let b = try f.tensor("b").scalars, bRef = sampleTensor([2, 32], seed: 2).scalars
        for (x, y) in zip(b, bRef) { #expect(abs(x - y) <= abs(y) * 1e-3) }
        let c = try f.tensor("c").scalars, cRef = sampleTensor([5], seed: 3).scalars
        for (x, y) in zip(c, cRef) { #expect(abs(x - y) <= abs(y) * 8e-3) }
        #expect(throws: FormatError.self) { try f.tensor("missing") }
    }

    @Test func everyTruncationThrows() throws {
        let dir = TempDir()
        let data = try Data(contentsOf: URL(fileURLWithPath: try sampleFile(dir)))
        let cut = dir.file("cut.gguf")
        // Every prefix that drops part of the last tensor's data or anything before it.
        var offsets = Array(stride(from: 0, to: data.count - 32, by: 7))
        offsets.append(data.count - 33)
        for n in offsets {
            try data.prefix(n).write(to: URL(fileURLWithPath: cut))
            #expect(throws: FormatError.self, "prefix of \(n) bytes") { _ = try GGUFFile(path: cut) }
        }
    }

    @Test func flippedBytesNeverTrap() throws {
        let dir = TempDir()
        let data = try Data(contentsOf: URL(fileURLWithPath: try sampleFile(dir)))
        let bad = dir.file("bad.gguf")
        var rng = SystemRandomNumberGenerator()
        let headerEnd = min(data.count, 900)
        for i in 0..<headerEnd {
            var d = data
            d[i] ^= UInt8.random(in: 1...255, using: &rng)
            try d.write(to: URL(fileURLWithPath: bad))
            // Either a clean error or a file that still parses: never a trap.
            if let f = try? GGUFFile(path: bad) { for t in f.tensors { _ = try? f.tensor(t.name) } }
        }
    }

    @Test func specificCorruptionsGiveClearMessages() throws {
        let dir = TempDir()
        let good = try Data(contentsOf: URL(fileURLWithPath: try sampleFile(dir)))
        let path = dir.file("bad.gguf")
        func expectMessage(_ d: Data, _ fragment: String) throws {
            try d.write(to: URL(fileURLWithPath: path))
            do { _ = try GGUFFile(path: path); Issue.record("no error for \(fragment)") } catch let e as FormatError {
                #expect(e.description.contains(fragment), "\(e)")
                #expect(e.file == path)
            }
        }
        var d = good; d[0] = 0x58
        try expectMessage(d, "not a GGUF file")
        d = good; d[4] = 9
        try expectMessage(d, "unsupported GGUF version 9")
        try expectMessage(Data(), "empty")
        // Unknown quantisation type: patch tensor a's type field (after its name and dims).
        let f = try GGUFFile(path: try sampleFile(dir))
        _ = f
        d = good
        let nameBytes = Array("a".utf8)
        if let at = (0..<(d.count - 30)).first(where: { i in
            d[i] == 1 && d[i + 1 ... i + 7].allSatisfy { $0 == 0 } && d[i + 8] == nameBytes[0] && d[i + 9] == 2 }) {
            // u64 len=1, "a", u32 n_dims=2, 2×u64 dims, then u32 type
            let typeAt = at + 8 + 1 + 4 + 16
            d[typeAt] = 16
            try expectMessage(d, "unsupported type IQ2_XXS")
        } else {
            Issue.record("tensor record not found")
        }
    }
}

@Suite struct DequantizeTests {
    func half(_ x: Float) -> [UInt8] { withUnsafeBytes(of: Float16(x).bitPattern.littleEndian) { Array($0) } }

    @Test func q8_0() {
        var block = half(0.5)
        block += (0..<32).map { UInt8(bitPattern: Int8($0 - 16)) }
        var out = [Float](repeating: 0, count: 32)
        block.withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { Dequantize.decode(.q8_0, raw, count: 32, into: $0.baseAddress!) } }
        let expected: [Float] = (0..<32).map { Float($0 - 16) * 0.5 }
        #expect(out == expected)
    }

    @Test func q4_0AndQ4_1NibbleOrder() {
        let nibbles: [UInt8] = (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
        var out = [Float](repeating: 0, count: 32)
        (half(2) + nibbles).withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { Dequantize.decode(.q4_0, raw, count: 32, into: $0.baseAddress!) } }
        // low nibbles are elements 0..15, high nibbles 16..31; value = d·(q − 8)
        let low: [Float] = (0..<16).map { Float($0 - 8) * 2 }
        let high: [Float] = (0..<16).map { Float(7 - $0) * 2 }
        #expect(out == low + high)
        (half(0.25) + half(-1) + nibbles).withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { Dequantize.decode(.q4_1, raw, count: 32, into: $0.baseAddress!) } }
        let low1: [Float] = (0..<16).map { Float($0) * 0.25 - 1 }
        let high1: [Float] = (0..<16).map { Float(15 - $0) * 0.25 - 1 }
        #expect(out == low1 + high1)
    }

    @Test func halfAndBFloatConversions() {
        #expect(Dequantize.bfloat(Dequantize.bfloatBits(1.5)) == 1.5)
        #expect(Dequantize.bfloat(Dequantize.bfloatBits(-3.25)) == -3.25)
        #expect(Dequantize.bfloatBits(1.00390625) == Dequantize.bfloatBits(1.0))  // ties to even
        #expect(Dequantize.half(Dequantize.halfBits(0.099975586)) == 0.099975586)
    }
}

@Suite struct SafetensorsTests {
    @Test func roundTrip() throws {
        let dir = TempDir()
        let path = dir.file("t.safetensors")
        let a = sampleTensor([4, 8]), b = sampleTensor([3], seed: 5)
        try SafetensorsWriter.write([("layer.a", a), ("b", b)], to: path, metadata: ["method": "lrp"])
        let f = try SafetensorsFile(path: path)
        #expect(Set(f.names) == ["layer.a", "b"])
        #expect(f.metadata == ["method": "lrp"])
        #expect(try f.tensor("layer.a").scalars == a.scalars)
        #expect(try f.tensor("layer.a").shape == [4, 8])
        #expect(try f.tensor("b").scalars == b.scalars)
        try SafetensorsWriter.write([("h", a)], to: path, dtype: .bf16)
        let h = try SafetensorsFile(path: path).tensor("h").scalars
        for (x, y) in zip(h, a.scalars) { #expect(abs(x - y) <= abs(y) / 128) }
    }

    @Test func everyTruncationThrowsAndFlipsNeverTrap() throws {
        let dir = TempDir()
        let path = dir.file("t.safetensors")
        try SafetensorsWriter.write([("a", sampleTensor([4, 8])), ("b", sampleTensor([3]))], to: path)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let cut = dir.file("cut.safetensors")
        for n in 0..<data.count {
            try data.prefix(n).write(to: URL(fileURLWithPath: cut))
            #expect(throws: FormatError.self, "prefix of \(n) bytes") { _ = try SafetensorsFile(path: cut) }
        }
        for i in 0..<min(data.count, 200) {
            var d = data
            d[i] ^= 0x5A
            try d.write(to: URL(fileURLWithPath: cut))
            if let f = try? SafetensorsFile(path: cut) { for n in f.names { _ = try? f.tensor(n) } }
        }
    }

    @Test func inconsistentHeaderIsReported() throws {
        let dir = TempDir()
        let path = dir.file("bad.safetensors")
        func write(_ header: String, dataBytes: Int) throws {
            var d = Data()
            let h = Array(header.utf8)
            withUnsafeBytes(of: UInt64(h.count).littleEndian) { d.append(contentsOf: $0) }
            d.append(contentsOf: h)
            d.append(contentsOf: [UInt8](repeating: 0, count: dataBytes))
            try d.write(to: URL(fileURLWithPath: path))
        }
        try write(#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#, dataBytes: 16)
        #expect { _ = try SafetensorsFile(path: path) } throws: { "\($0)".contains("needs 16 bytes") }
        try write(#"{"a":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}"#, dataBytes: 16)
        #expect { _ = try SafetensorsFile(path: path) } throws: { "\($0)".contains("unsupported dtype I64") }
        try write(#"{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}"#, dataBytes: 16)
        #expect { _ = try SafetensorsFile(path: path) } throws: { "\($0)".contains("past the end") }
        try write("not json", dataBytes: 0)
        #expect { _ = try SafetensorsFile(path: path) } throws: { "\($0)".contains("not valid JSON") }
    }

    @Test func atomicWriteLeavesOldFileOnFailure() throws {
        let dir = TempDir()
        let path = dir.file("keep.bin")
        try AtomicWrite.write(Data([1, 2, 3]), to: path)
        #expect(throws: FormatError.self) { try AtomicWrite.write(Data([9]), to: dir.file("no/such/dir/x")) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data([1, 2, 3]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["keep.bin"])
    }
}
