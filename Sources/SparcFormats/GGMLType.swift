/// Tensor element types of ggml (GGUF). The raw ids are ggml's `enum ggml_type`.
public struct GGMLType: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let f32 = GGMLType(rawValue: 0)
    public static let f16 = GGMLType(rawValue: 1)
    public static let q4_0 = GGMLType(rawValue: 2)
    public static let q4_1 = GGMLType(rawValue: 3)
    public static let q8_0 = GGMLType(rawValue: 8)
    public static let bf16 = GGMLType(rawValue: 30)

    /// Types sparc can dequantise.
    public static let supported: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1]

    private static let names: [UInt32: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
        10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
        17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
        24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
    ]

    public var description: String { GGMLType.names[rawValue] ?? "type #\(rawValue)" }

    public var isSupported: Bool { GGMLType.supported.contains(self) }

    /// Elements per block and bytes per block (ggml's block layouts).
    public var block: (elements: Int, bytes: Int)? {
        switch self {
        case .f32: return (1, 4)
        case .f16, .bf16: return (1, 2)
        case .q8_0: return (32, 2 + 32)      // f16 scale d, 32 × int8
        case .q4_0: return (32, 2 + 16)      // f16 scale d, 32 × 4-bit
        case .q4_1: return (32, 2 + 2 + 16)  // f16 scale d, f16 minimum m, 32 × 4-bit
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
