import SparcTensor

/// Conversion of ggml / safetensors element encodings to Float32.
public enum Dequantize {
    @inline(__always) static func half(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }
    @inline(__always) static func bfloat(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// Decodes `count` elements of `type` from `src` into `dst`. `src` must hold exactly
    /// `type.byteCount(elements: count)` bytes (callers check sizes first).
    public static func decode(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int,
                              into dst: UnsafeMutablePointer<Float>) {
        guard let (perBlock, blockBytes) = type.block else { preconditionFailure("unsupported \(type)") }
        precondition(src.count == type.byteCount(elements: count), "byte size mismatch for \(type)")
        let blocks = count / perBlock
        Parallel.forRanges(blocks, minChunk: 4096) { range in
            for b in range {
                decodeBlock(type, src.baseAddress! + b * blockBytes, into: dst + b * perBlock)
            }
        }
    }

    @inline(__always)
    private static func decodeBlock(_ type: GGMLType, _ p: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        func u16(_ at: Int) -> UInt16 { UInt16(littleEndian: p.loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
        switch type {
        case .f32:
            y[0] = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
        case .f16:
            y[0] = half(u16(0))
        case .bf16:
            y[0] = bfloat(u16(0))
        case .q8_0:
            // x = d · q, q signed 8-bit
            let d = half(u16(0))
            for j in 0..<32 { y[j] = d * Float(p.load(fromByteOffset: 2 + j, as: Int8.self)) }
        case .q4_0:
            // byte j holds elements j (low nibble) and j + 16 (high nibble); x = d · (q − 8)
            let d = half(u16(0))
            for j in 0..<16 {
                let q = p.load(fromByteOffset: 2 + j, as: UInt8.self)
                y[j] = d * Float(Int(q & 0x0F) - 8)
                y[j + 16] = d * Float(Int(q >> 4) - 8)
            }
        case .q4_1:
            // same nibble order as Q4_0; x = d · q + m
            let d = half(u16(0)), m = half(u16(2))
            for j in 0..<16 {
                let q = p.load(fromByteOffset: 4 + j, as: UInt8.self)
                y[j] = d * Float(q & 0x0F) + m
                y[j + 16] = d * Float(q >> 4) + m
            }
        default:
            preconditionFailure("unsupported \(type)")
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
