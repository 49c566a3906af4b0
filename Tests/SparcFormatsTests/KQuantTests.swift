import Foundation
import Testing
@testable import SparcFormats
@testable import SparcTensor

/// `Fixtures/quants.gguf` (made by `scripts/make_quant_fixtures.py` with gguf-py's
/// `GGUFWriter`): for each quantised type T, random blocks `T.blocks` (one block per row)
/// and a several-block tensor `T.tensor`, each next to `NAME.ref`, gguf-py's
/// `gguf.quants.dequantize` of it in F32.
enum QuantFixture {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/quants.gguf").path

    static let types: [GGMLType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K]

    /// The stored (still quantised) bytes of tensor `name`.
    static func rawBytes(_ file: GGUFFile, _ name: String) throws -> [UInt8] {
        let info = try #require(file.info(name))
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return [UInt8](data[info.offset..<info.offset + info.byteCount])
    }

    /// nil when `got` equals `ref` bit for bit, else where and how they first differ.
    static func mismatch(_ got: [Float], _ ref: [Float]) -> String? {
        guard got.count == ref.count else { return "\(got.count) values, expected \(ref.count)" }
        let bad = zip(got, ref).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }
        guard let first = bad.first else { return nil }
        return "\(bad.count) of \(got.count) values differ; first at \(first.offset): \(first.element.0) vs \(first.element.1)"
    }
}

@Suite struct KQuantTests {
    /// Reading a gguf-py-written file of every type (Q4_K and Q6_K among them) through
    /// `GGUFFile.tensor` gives gguf-py's dequantisation bit for bit.
    @Test(arguments: QuantFixture.types)
    func ggufTensorsEqualGGUFPyBitForBit(_ type: GGMLType) throws {
        let file = try GGUFFile(path: QuantFixture.path)
        for name in ["\(type).blocks", "\(type).tensor"] {
            let info = try #require(file.info(name))
            #expect(info.type == type)
            let ref = try file.tensor(name + ".ref")
            let got = try file.tensor(name)
            #expect(got.shape == ref.shape, "\(name)")
            #expect(QuantFixture.mismatch(got.scalars, ref.scalars) == nil, "\(name)")
        }
    }

    /// Each random block decoded on its own, and the several-block tensor decoded whole,
    /// through `Dequantize.decoded`.
    @Test(arguments: QuantFixture.types)
    func eachBlockAloneEqualsGGUFPy(_ type: GGMLType) throws {
        let file = try GGUFFile(path: QuantFixture.path)
        let (perBlock, blockBytes) = try #require(type.block)
        let raw = try QuantFixture.rawBytes(file, "\(type).blocks")
        let ref = try file.tensor("\(type).blocks.ref").scalars
        let blocks = raw.count / blockBytes
        #expect(blocks >= 4 && ref.count == blocks * perBlock)
        for b in 0..<blocks {
            let got = try raw[b * blockBytes..<(b + 1) * blockBytes].withUnsafeBytes {
                try Dequantize.decoded(type, $0, count: perBlock)
            }
            #expect(QuantFixture.mismatch(got, Array(ref[b * perBlock..<(b + 1) * perBlock])) == nil, "\(type) block \(b)")
        }
        let tensorRaw = try QuantFixture.rawBytes(file, "\(type).tensor")
        let tensorRef = try file.tensor("\(type).tensor.ref").scalars
        #expect(tensorRef.count / perBlock >= 4)
        let whole = try tensorRaw.withUnsafeBytes { try Dequantize.decoded(type, $0, count: tensorRef.count) }
        #expect(QuantFixture.mismatch(whole, tensorRef) == nil, "\(type).tensor")
    }

    /// A tensor long enough to be split across threads (the fixture's blocks repeated 600
    /// times) decodes to the repeated reference: the split into block ranges is exact.
    @Test(arguments: [GGMLType.q4_0, .q5_1, .q3_K, .q4_K, .q6_K])
    func parallelSplitMatchesReference(_ type: GGMLType) throws {
        let file = try GGUFFile(path: QuantFixture.path)
        let raw = try QuantFixture.rawBytes(file, "\(type).blocks")
        let ref = try file.tensor("\(type).blocks.ref").scalars
        let repeats = 600
        let big = [[UInt8]](repeating: raw, count: repeats).flatMap { $0 }
        let got = try big.withUnsafeBytes { try Dequantize.decoded(type, $0, count: ref.count * repeats) }
        #expect(QuantFixture.mismatch(got, [[Float]](repeating: ref, count: repeats).flatMap { $0 }) == nil, "\(type)")
    }

    /// Ids and sizes as gguf-py's `GGMLQuantizationType` and `GGML_QUANT_SIZES` give them.
    @Test func typeIdsAndBlockSizesMatchGGML() {
        let expected: [(GGMLType, UInt32, String, Int, Int)] = [
            (.q4_0, 2, "Q4_0", 32, 18), (.q4_1, 3, "Q4_1", 32, 20),
            (.q5_0, 6, "Q5_0", 32, 22), (.q5_1, 7, "Q5_1", 32, 24), (.q8_0, 8, "Q8_0", 32, 34),
            (.q2_K, 10, "Q2_K", 256, 84), (.q3_K, 11, "Q3_K", 256, 110), (.q4_K, 12, "Q4_K", 256, 144),
            (.q5_K, 13, "Q5_K", 256, 176), (.q6_K, 14, "Q6_K", 256, 210), (.q8_K, 15, "Q8_K", 256, 292),
        ]
        for (type, id, name, elements, bytes) in expected {
            #expect(type.rawValue == id && type.description == name)
            #expect(type.block?.elements == elements && type.block?.bytes == bytes, "\(name)")
            #expect(type.isSupported)
            #expect(type.byteCount(elements: 3 * elements) == 3 * bytes)
            #expect(type.byteCount(elements: 3 * elements + 1) == nil)
        }
        #expect(!GGMLType(rawValue: 16).isSupported)  // IQ2_XXS
    }

    @Test func sizeMismatchesThrowNamedErrors() {
        let bytes = [UInt8](repeating: 0, count: 144)
        bytes.withUnsafeBytes { raw in
            #expect(throws: DequantizeError.partialBlock(.q4_K, count: 100, blockElements: 256)) {
                try Dequantize.decoded(.q4_K, raw, count: 100)
            }
            #expect(throws: DequantizeError.byteCountMismatch(.q4_K, count: 512, expected: 288, actual: 144)) {
                try Dequantize.decoded(.q4_K, raw, count: 512)
            }
            #expect(throws: DequantizeError.byteCountMismatch(.q6_K, count: 256, expected: 210, actual: 144)) {
                try Dequantize.decoded(.q6_K, raw, count: 256)
            }
            #expect(throws: DequantizeError.unsupportedType(GGMLType(rawValue: 16))) {
                try Dequantize.decoded(GGMLType(rawValue: 16), raw, count: 256)
            }
        }
        #expect("\(DequantizeError.partialBlock(.q4_K, count: 100, blockElements: 256))"
            == "100 elements of Q4_K are not a whole number of 256-element blocks")
        let empty = [UInt8]().withUnsafeBytes { try? Dequantize.decoded(.q6_K, $0, count: 0) }
        #expect(empty == [])
    }

    /// A one-tensor GGUF v3 file written by hand, `dataBytes` zero bytes of data.
    func ggufFile(dims: [UInt64], type: UInt32, dataBytes: Int) -> Data {
        var d = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        u32(GGUFFile.magic); u32(3); u64(1); u64(0)
        let name = Array("w".utf8)
        u64(UInt64(name.count)); d.append(contentsOf: name)
        u32(UInt32(dims.count)); dims.forEach(u64)
        u32(type); u64(0)
        d.append(contentsOf: [UInt8](repeating: 0, count: (32 - d.count % 32) % 32 + dataBytes))
        return d
    }

    /// The GGUF reader refuses k-quant tensors whose sizes do not fit their blocks when it
    /// opens the file, with a message naming the tensor and type.
    @Test func readerRejectsMalformedQuantTensors() throws {
        let dir = NSTemporaryDirectory() + "sparc-kquant-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func expectMessage(_ d: Data, _ fragment: String) throws {
            let path = dir + "/bad.gguf"
            try d.write(to: URL(fileURLWithPath: path))
            do { _ = try GGUFFile(path: path); Issue.record("no error for \(fragment)") } catch let e as FormatError {
                #expect(e.message.contains(fragment), "\(e.message)")
            }
        }
        try expectMessage(ggufFile(dims: [100], type: 12, dataBytes: 144),
                          "tensor w: row length 100 is not a multiple of the Q4_K block size")
        try expectMessage(ggufFile(dims: [128, 2], type: 14, dataBytes: 210),
                          "tensor w: row length 128 is not a multiple of the Q6_K block size")
        try expectMessage(ggufFile(dims: [256, 2], type: 14, dataBytes: 210),
                          "tensor w: data (420 bytes at offset 0) lies past the end of the data section")
        try expectMessage(ggufFile(dims: [256], type: 16, dataBytes: 66), "tensor w has unsupported type IQ2_XXS")

        // The same file with its whole data decodes (zero scales: zeros).
        let path = dir + "/good.gguf"
        try ggufFile(dims: [256, 2], type: 14, dataBytes: 420).write(to: URL(fileURLWithPath: path))
        let t = try GGUFFile(path: path).tensor("w")
        #expect(t.shape == [2, 256] && t.scalars.allSatisfy { $0 == 0 })
    }

    /// Corrupting the header or tensor directory of the k-quant fixture either fails to
    /// open with an error or leaves tensors that all decode: never a trap.
    @Test func flippedHeaderBytesNeverTrap() throws {
        let good = try Data(contentsOf: URL(fileURLWithPath: QuantFixture.path))
        let headerEnd = try GGUFFile(path: QuantFixture.path).tensors.map(\.offset).min()!
        let path = NSTemporaryDirectory() + "sparc-kquant-\(UUID().uuidString).gguf"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var rng = SplitMix(seed: 7)
        for _ in 0..<300 {
            var d = good
            let at = Int(rng.next() % UInt64(headerEnd))
            d[at] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            try d.write(to: URL(fileURLWithPath: path))
            if let f = try? GGUFFile(path: path) { for t in f.tensors { _ = try? f.tensor(t.name) } }
        }
    }

    /// Decode throughput of Q4_K and Q6_K on a 4M-element tensor; runs only with
    /// SPARC_BENCH_DEQUANT=1 (use `-c release`).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SPARC_BENCH_DEQUANT"] == "1"))
    func throughput() throws {
        let n = 4 << 20
        for type in [GGMLType.q4_K, .q6_K] {
            let file = try GGUFFile(path: QuantFixture.path)
            let raw = try QuantFixture.rawBytes(file, "\(type).blocks")  // valid random blocks
            let bytes = try #require(type.byteCount(elements: n))
            let src = (0..<bytes / raw.count).flatMap { _ in raw }
            var dst = [Float](repeating: 0, count: n)
            var best = Double.infinity
            for _ in 0..<10 {
                let start = DispatchTime.now().uptimeNanoseconds
                src.withUnsafeBytes { s in dst.withUnsafeMutableBufferPointer { Dequantize.decode(type, s, count: n, into: $0.baseAddress!) } }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            print("dequantise \(type): \(n) elements in \(String(format: "%.2f", best * 1e3)) ms = \(String(format: "%.2f", Double(n) / best / 1e9)) G elements/s (\(Parallel.threads) threads)")
        }
    }
}

/// A small deterministic generator for the corruption test.
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
