import SparcTensor

/// Why a buffer cannot be dequantised.
public enum DequantizeError: Error, CustomStringConvertible, Equatable {
    case unsupportedType(GGMLType)
    /// `count` elements are not a whole number of blocks of `type`.
    case partialBlock(GGMLType, count: Int, blockElements: Int)
    case byteCountMismatch(GGMLType, count: Int, expected: Int, actual: Int)

    public var description: String {
        switch self {
        case .unsupportedType(let t):
            return "cannot dequantise \(t); sparc reads \(GGMLType.supported.map(\.description).joined(separator: ", "))"
        case .partialBlock(let t, let count, let n):
            return "\(count) elements of \(t) are not a whole number of \(n)-element blocks"
        case .byteCountMismatch(let t, let count, let expected, let actual):
            return "\(count) elements of \(t) take \(expected) bytes, got \(actual)"
        }
    }
}

/// Conversion of ggml / safetensors element encodings to Float32.
///
/// Every kernel performs the same Float32 operations in the same order as ggml's
/// `dequantize_row_*` (and gguf-py's `gguf.quants`), so results agree bit for bit: scales
/// are f16 widened to f32, a sub-block scale is the f32 product `d · sc` rounded once, and
/// each element is `scale · q` or `scale · q − min` (two roundings, never a fused
/// multiply-add). Quant values are small integers, so every integer → float step is exact.
public enum Dequantize {
    @inline(__always) static func half(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }
    @inline(__always) static func bfloat(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// Checks that `byteCount` bytes hold exactly `count` elements of `type`.
    public static func validate(_ type: GGMLType, byteCount: Int, count: Int) throws(DequantizeError) {
        guard let (perBlock, _) = type.block else { throw .unsupportedType(type) }
        guard count >= 0, count % perBlock == 0 else {
            throw .partialBlock(type, count: count, blockElements: perBlock)
        }
        guard let expected = type.byteCount(elements: count), expected == byteCount else {
            throw .byteCountMismatch(type, count: count, expected: type.byteCount(elements: count) ?? -1, actual: byteCount)
        }
    }

    /// `count` elements of `type` decoded from `src`, after checking that the sizes agree.
    public static func decoded(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int) throws(DequantizeError) -> [Float] {
        try validate(type, byteCount: src.count, count: count)
        return [Float](unsafeUninitializedCapacity: count) { buf, initialized in
            if count > 0 { decode(type, src, count: count, into: buf.baseAddress!) }
            initialized = count
        }
    }

    /// Decodes `count` elements of `type` from `src` into `dst`. `src` must hold exactly
    /// `type.byteCount(elements: count)` bytes: callers check sizes first (`GGUFFile` does
    /// when it opens a file; `validate` / `decoded` for other callers), so a mismatch here
    /// is a programming error.
    public static func decode(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int,
                              into dst: UnsafeMutablePointer<Float>) {
        do { try validate(type, byteCount: src.count, count: count) } catch { preconditionFailure("\(error)") }
        let (perBlock, blockBytes) = type.block!
        let blocks = count / perBlock
        guard blocks > 0, let base = src.baseAddress else { return }
        // Chunks of at least 16K elements, so small tensors stay on one thread.
        Parallel.forRanges(blocks, minChunk: max(1, 16384 / perBlock)) { range in
            decodeBlocks(type, base + range.lowerBound * blockBytes, count: range.count,
                         into: dst + range.lowerBound * perBlock)
        }
    }

    // MARK: kernels

    private typealias Bytes = SIMD16<UInt8>
    private typealias Lanes = SIMD16<Float>

    @inline(__always) private static func bytes(_ p: UnsafeRawPointer, _ at: Int) -> Bytes {
        p.loadUnaligned(fromByteOffset: at, as: Bytes.self)
    }

    /// Each byte as an exact Float: the byte becomes the low mantissa bits of 2²³, and 2²³
    /// is subtracted (no per-lane integer → float conversion).
    @inline(__always) private static func floats(_ b: Bytes) -> Lanes {
        let bits = SIMD16<UInt32>(truncatingIfNeeded: b) | 0x4B00_0000
        return unsafeBitCast(bits, to: Lanes.self) - 8_388_608
    }

    @inline(__always) private static func store(_ v: Lanes, _ y: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(y).storeBytes(of: v, as: Lanes.self)
    }

    @inline(__always) private static func f16(_ p: UnsafeRawPointer, _ at: Int) -> Float {
        half(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
    }

    /// Runs `body` on each of `n` blocks of `stride` bytes, `elements` outputs apart.
    @inline(__always)
    private static func eachBlock(_ n: Int, _ src: UnsafeRawPointer, _ stride: Int, _ dst: UnsafeMutablePointer<Float>,
                                  _ elements: Int, _ body: (UnsafeRawPointer, UnsafeMutablePointer<Float>) -> Void) {
        for b in 0..<n { body(src + b * stride, dst + b * elements) }
    }

    private static let low4 = Bytes(repeating: 0x0F)
    /// Lane i holds i % 8: the bit of its byte that Q5_0 / Q5_1 element i takes.
    private static let bitInByte = Bytes(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7)

    /// Decodes `n` consecutive blocks of `type` (one kernel call per range, the type switch
    /// outside the loops).
    private static func decodeBlocks(_ type: GGMLType, _ src: UnsafeRawPointer, count n: Int,
                                     into dst: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            // Little-endian host: the bytes are the floats.
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: 4 * n)
        case .f16:
            for i in 0..<n { dst[i] = f16(src, 2 * i) }
        case .bf16:
            for i in 0..<n { dst[i] = bfloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .q8_0:
            // [f16 d][32 × int8]; x = d · q. Bytes xor 0x80 are q + 128.
            eachBlock(n, src, 34, dst, 32) { p, y in
                let d = Lanes(repeating: f16(p, 0))
                for h in 0..<2 {
                    store(d * (floats(bytes(p, 2 + 16 * h) ^ 0x80) - 128), y + 16 * h)
                }
            }
        case .q4_0:
            // [f16 d][16 bytes]: byte j holds element j (low nibble) and j + 16 (high);
            // x = d · (q − 8).
            eachBlock(n, src, 18, dst, 32) { p, y in
                let d = Lanes(repeating: f16(p, 0)), qs = bytes(p, 2)
                store(d * (floats(qs & low4) - 8), y)
                store(d * (floats(qs &>> 4) - 8), y + 16)
            }
        case .q4_1:
            // [f16 d][f16 m][16 bytes], nibbles as Q4_0; x = d · q + m.
            eachBlock(n, src, 20, dst, 32) { p, y in
                let d = Lanes(repeating: f16(p, 0)), m = Lanes(repeating: f16(p, 2)), qs = bytes(p, 4)
                store(d * floats(qs & low4) + m, y)
                store(d * floats(qs &>> 4) + m, y + 16)
            }
        case .q5_0:
            // [f16 d][u32 qh][16 bytes]: nibbles as Q4_0, bit j of qh is bit 4 of element j;
            // x = d · (q − 16).
            eachBlock(n, src, 22, dst, 32) { p, y in
                let d = Lanes(repeating: f16(p, 0)), qs = bytes(p, 6)
                let (h0, h1) = fifthBits(p, 2)
                store(d * (floats(qs & low4 | h0) - 16), y)
                store(d * (floats(qs &>> 4 | h1) - 16), y + 16)
            }
        case .q5_1:
            // [f16 d][f16 m][u32 qh][16 bytes], bits as Q5_0; x = d · q + m.
            eachBlock(n, src, 24, dst, 32) { p, y in
                let d = Lanes(repeating: f16(p, 0)), m = Lanes(repeating: f16(p, 2)), qs = bytes(p, 8)
                let (h0, h1) = fifthBits(p, 4)
                store(d * floats(qs & low4 | h0) + m, y)
                store(d * floats(qs &>> 4 | h1) + m, y + 16)
            }
        case .q2_K:
            eachBlock(n, src, 84, dst, 256, q2K)
        case .q3_K:
            eachBlock(n, src, 110, dst, 256, q3K)
        case .q4_K:
            eachBlock(n, src, 144, dst, 256) { p, y in q45K(p, y, highBits: false) }
        case .q5_K:
            eachBlock(n, src, 176, dst, 256) { p, y in q45K(p, y, highBits: true) }
        case .q6_K:
            eachBlock(n, src, 210, dst, 256, q6K)
        case .q8_K:
            // [f32 d][256 × int8][16 × int16 sums]; x = d · q.
            eachBlock(n, src, 292, dst, 256) { p, y in
                let d = Lanes(repeating: Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))))
                for g in 0..<16 {
                    store(d * (floats(bytes(p, 4 + 16 * g) ^ 0x80) - 128), y + 16 * g)
                }
            }
        default:
            preconditionFailure("unsupported \(type)")
        }
    }

    /// Q5_0 / Q5_1: the 4 bytes at `at` (a little-endian u32) hold bit 4 of element j in
    /// bit j % 8 of byte j / 8; returns those bits (as 0 or 16) for elements 0–15 and 16–31.
    @inline(__always)
    private static func fifthBits(_ p: UnsafeRawPointer, _ at: Int) -> (Bytes, Bytes) {
        func byte(_ i: Int) -> SIMD8<UInt8> { SIMD8(repeating: p.load(fromByteOffset: at + i, as: UInt8.self)) }
        let lo = Bytes(lowHalf: byte(0), highHalf: byte(1)), hi = Bytes(lowHalf: byte(2), highHalf: byte(3))
        return (((lo &>> bitInByte) & 1) &<< 4, ((hi &>> bitInByte) & 1) &<< 4)
    }

    /// Q2_K: [16 scale bytes][64 quant bytes][f16 d][f16 dmin]. Element 128·h + 32·s + j
    /// is bits 2s…2s+1 of quant byte 32·h + j; its group of 16 is g = 8h + 2s + j/16, and
    /// scale byte g holds the group's scale (low nibble) and min (high nibble):
    /// x = (d · scale) · q − (dmin · min).
    @inline(__always)
    private static func q2K(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(p, 80), dmin = f16(p, 82)
        for h in 0..<2 {
            for half in 0..<2 {
                let qs = bytes(p, 16 + 32 * h + 16 * half)
                for s in 0..<4 {
                    let g = 8 * h + 2 * s + half
                    let sc = p.load(fromByteOffset: g, as: UInt8.self)
                    let dl = Lanes(repeating: d * Float(sc & 0x0F)), ml = Lanes(repeating: dmin * Float(sc >> 4))
                    let q = (qs &>> UInt8(2 * s)) & 3
                    store(dl * floats(q) - ml, y + 128 * h + 32 * s + 16 * half)
                }
            }
        }
    }

    /// Q3_K: [32 hmask bytes][64 quant bytes][12 scale bytes][f16 d]. Element
    /// 128·h + 32·s + j has low bits 2s…2s+1 of quant byte 32·h + j and high bit 4h + s of
    /// hmask byte j; a set high bit means q = low, a clear one q = low − 4. The 16 group
    /// scales are 6-bit: low 4 bits from nibbles of bytes 0–7 (groups 0–7 low nibbles,
    /// 8–15 high nibbles), top 2 bits from bytes 8–11 (group i: byte 8 + i%4, bits
    /// 2·(i/4)…), stored offset by 32. x = (d · (scale − 32)) · q.
    @inline(__always)
    private static func q3K(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(p, 108)
        for h in 0..<2 {
            for half in 0..<2 {
                let qs = bytes(p, 32 + 32 * h + 16 * half)
                let hm = bytes(p, 16 * half)
                for s in 0..<4 {
                    let g = 8 * h + 2 * s + half
                    let low = p.load(fromByteOffset: 96 + g % 8, as: UInt8.self) &>> (g < 8 ? 0 : 4) & 0x0F
                    let top = p.load(fromByteOffset: 96 + 8 + g % 4, as: UInt8.self) &>> UInt8(2 * (g / 4)) & 3
                    let dl = Lanes(repeating: d * Float(Int(low | top << 4) - 32))
                    // low | high << 2 is q + 4
                    let q = (qs &>> UInt8(2 * s)) & 3 | ((hm &>> UInt8(4 * h + s)) & 1) &<< 2
                    store(dl * (floats(q) - 4), y + 128 * h + 32 * s + 16 * half)
                }
            }
        }
    }

    /// The 6-bit scale and min of sub-block `s` (0–7) of Q4_K / Q5_K, packed in 12 bytes
    /// at `at`: for s < 4, the low 6 bits of bytes s (scale) and s + 4 (min); for s ≥ 4,
    /// byte s + 4 gives the low 4 bits (scale low nibble, min high nibble) and the top 2
    /// bits of bytes s − 4 (scale) and s (min) give bits 4–5.
    @inline(__always)
    private static func scaleMin(_ p: UnsafeRawPointer, _ at: Int, _ s: Int) -> (UInt8, UInt8) {
        func b(_ i: Int) -> UInt8 { p.load(fromByteOffset: at + i, as: UInt8.self) }
        if s < 4 { return (b(s) & 63, b(s + 4) & 63) }
        return (b(s + 4) & 0x0F | (b(s - 4) >> 6) << 4, b(s + 4) >> 4 | (b(s) >> 6) << 4)
    }

    /// Q4_K: [f16 d][f16 dmin][12 scale bytes][128 quant bytes]; Q5_K has 32 high-bit bytes
    /// before the quants. Sub-block s (32 elements) is the low (s even) or high (s odd)
    /// nibbles of quant bytes 32·(s/2)…+31; in Q5_K bit s of high-bit byte j is bit 4 of
    /// its element j. x = (d · scale) · q − (dmin · min).
    @inline(__always)
    private static func q45K(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, highBits: Bool) {
        let d = f16(p, 0), dmin = f16(p, 2)
        let quants = highBits ? 48 : 16
        for s in 0..<8 {
            let (sc, mn) = scaleMin(p, 4, s)
            let dl = Lanes(repeating: d * Float(sc)), ml = Lanes(repeating: dmin * Float(mn))
            for half in 0..<2 {
                let qs = bytes(p, quants + 32 * (s / 2) + 16 * half)
                var q = (qs &>> UInt8(4 * (s % 2))) & low4
                if highBits { q |= ((bytes(p, 16 + 16 * half) &>> UInt8(s)) & 1) &<< 4 }
                store(dl * floats(q) - ml, y + 32 * s + 16 * half)
            }
        }
    }

    /// Q6_K: [128 low-nibble bytes][64 high-bit bytes][16 × int8 scales][f16 d]. Element
    /// 128·h + 32·s + j takes the low (s < 2) or high (s ≥ 2) nibble of low byte
    /// 64·h + 32·(s%2) + j and bits 2s…2s+1 of high byte 32·h + j; q is stored offset by
    /// 32 and each group of 16 has its own scale: x = (d · scale) · (q − 32).
    @inline(__always)
    private static func q6K(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(p, 208)
        for h in 0..<2 {
            for half in 0..<2 {
                let qh = bytes(p, 128 + 32 * h + 16 * half)
                for s in 0..<4 {
                    let ql = bytes(p, 64 * h + 32 * (s % 2) + 16 * half)
                    let q = (ql &>> UInt8(4 * (s / 2))) & low4 | ((qh &>> UInt8(2 * s)) & 3) &<< 4
                    let e = 128 * h + 32 * s + 16 * half
                    let dl = Lanes(repeating: d * Float(p.load(fromByteOffset: 192 + e / 16, as: Int8.self)))
                    store(dl * (floats(q) - 32), y + e)
                }
            }
        }
    }

    /// Float32 → IEEE half / bfloat16 (round to nearest even), for the writers.
    public static func halfBits(_ x: Float) -> UInt16 { Float16(x).bitPattern }
    public static func bfloatBits(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        if x.isNaN { return UInt16(b >> 16) | 0x40 }
        let rounding = ((b >> 16) & 1) + 0x7FFF
        return UInt16((b &+ rounding) >> 16)
    }
}
