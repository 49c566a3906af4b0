/// Tensor element types of ggml (GGUF). The raw ids are ggml's `enum ggml_type`.
public struct GGMLType: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let f32 = GGMLType(rawValue: 0)
    public static let f16 = GGMLType(rawValue: 1)
    public static let q4_0 = GGMLType(rawValue: 2)
    public static let q4_1 = GGMLType(rawValue: 3)
    public static let q5_0 = GGMLType(rawValue: 6)
    public static let q5_1 = GGMLType(rawValue: 7)
    public static let q8_0 = GGMLType(rawValue: 8)
    public static let q2_K = GGMLType(rawValue: 10)
    public static let q3_K = GGMLType(rawValue: 11)
    public static let q4_K = GGMLType(rawValue: 12)
    public static let q5_K = GGMLType(rawValue: 13)
    public static let q6_K = GGMLType(rawValue: 14)
    public static let q8_K = GGMLType(rawValue: 15)
    public static let bf16 = GGMLType(rawValue: 30)

    /// Types sparc can dequantise.
    public static let supported: [GGMLType] = [
        .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1,
        .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K,
    ]

    /// Elements per k-quant super-block (ggml's QK_K).
    public static let superBlock = 256

    private static let names: [UInt32: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
        10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
        17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
        24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
    ]

    public var description: String { GGMLType.names[rawValue] ?? "type #\(rawValue)" }

    public var isSupported: Bool { GGMLType.supported.contains(self) }

    /// Elements per block and bytes per block (ggml's block layouts, `ggml-common.h`; the
    /// byte counts equal gguf-py's `GGML_QUANT_SIZES`). Fields in storage order.
    public var block: (elements: Int, bytes: Int)? {
        let k = GGMLType.superBlock
        switch self {
        case .f32: return (1, 4)
        case .f16, .bf16: return (1, 2)
        case .q8_0: return (32, 2 + 32)          // f16 d, 32 × int8
        case .q4_0: return (32, 2 + 16)          // f16 d, 32 × 4-bit
        case .q4_1: return (32, 2 + 2 + 16)      // f16 d, f16 m, 32 × 4-bit
        case .q5_0: return (32, 2 + 4 + 16)      // f16 d, 32 high bits, 32 × low 4 bits
        case .q5_1: return (32, 2 + 2 + 4 + 16)  // f16 d, f16 m, 32 high bits, 32 × low 4 bits
        // 16 × (4-bit scale | 4-bit min), 256 × 2-bit, f16 d, f16 dmin
        case .q2_K: return (k, k / 16 + k / 4 + 2 + 2)
        // 256 high bits, 256 × low 2 bits, 16 × 6-bit scales in 12 bytes, f16 d
        case .q3_K: return (k, k / 8 + k / 4 + 12 + 2)
        // f16 d, f16 dmin, 8 × (6-bit scale, 6-bit min) in 12 bytes, 256 × 4-bit
        case .q4_K: return (k, 2 + 2 + 12 + k / 2)
        // as Q4_K plus 256 high bits before the nibbles
        case .q5_K: return (k, 2 + 2 + 12 + k / 8 + k / 2)
        // 256 × low 4 bits, 256 × high 2 bits, 16 × int8 scales, f16 d
        case .q6_K: return (k, k / 2 + k / 4 + k / 16 + 2)
        // f32 d, 256 × int8, 16 × int16 block sums (unused when decoding)
        case .q8_K: return (k, 4 + k + 2 * k / 16)
        default: return nil
        }
    }

    /// Bytes needed for `count` elements, or nil if `count` is not a whole number of blocks
    /// or the type is unknown.
    public func byteCount(elements count: Int) -> Int? {
        guard let (n, b) = block, count >= 0, count % n == 0 else { return nil }
        let (bytes, overflow) = (count / n).multipliedReportingOverflow(by: b)
        return overflow ? nil : bytes
    }
}
