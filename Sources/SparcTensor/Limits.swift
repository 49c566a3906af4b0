import Foundation

/// Why a tensor could not be made: sizes are checked before they are multiplied or
/// allocated, so a script or a file asking for too much gets an error, not a trap.
public enum TensorError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A dimension below 0.
    case negativeDimension(shape: [Int])
    /// The element count or byte size does not fit in an Int.
    case shapeOverflow(shape: [Int])
    /// More bytes than `Tensor.allocationLimit` in one buffer.
    case tooLarge(shape: [Int], bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .negativeDimension(let shape):
            return "shape \(shape) has a negative dimension"
        case .shapeOverflow(let shape):
            return "shape \(shape) has more elements than can be counted"
        case .tooLarge(let shape, let bytes, let limit):
            return "shape \(shape) needs \(Tensor.formatBytes(bytes)), more than the \(Tensor.formatBytes(limit)) allowed for one tensor (set SPARC_MAX_ALLOCATION to change it)"
        }
    }
}

extension Tensor {
    /// The most bytes one tensor may take: `SPARC_MAX_ALLOCATION` (bytes, or with a K, M
    /// or G suffix), else 2 GiB. Well under the memory of the machines sparc runs on, and
    /// 5× the largest buffer a 2,048-token pass of SmolLM2 needs (its logits, 400 MB).
    public static let allocationLimit: Int = {
        if let text = ProcessInfo.processInfo.environment["SPARC_MAX_ALLOCATION"], let n = parseByteCount(text) { return n }
        return 2 << 30
    }()

    /// "512M", "8G", "1048576" → bytes; nil for anything else (then the default holds).
    static func parseByteCount(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        var digits = Substring(text.trimmingCharacters(in: .whitespaces).uppercased())
        var scale = 1
        if let last = digits.last, let u = units[last] { scale = u; digits = digits.dropLast() }
        guard let n = Int(digits), n > 0 else { return nil }
        let (bytes, overflow) = n.multipliedReportingOverflow(by: scale)
        return overflow ? nil : bytes
    }

    /// The element count of `shape`, checked: no negative dimension, no overflow, and (when
    /// `allocating`, as for a new buffer) at most `allocationLimit` bytes of Float32.
    public static func checkedElementCount(_ shape: [Int], allocating: Bool = true) throws -> Int {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError.negativeDimension(shape: shape) }
        // An empty tensor takes no memory, however large its other dimensions.
        if shape.contains(0) { return 0 }
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw TensorError.shapeOverflow(shape: shape) }
            count = product
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        guard !overflow else { throw TensorError.shapeOverflow(shape: shape) }
        guard !allocating || bytes <= allocationLimit else { throw TensorError.tooLarge(shape: shape, bytes: bytes, limit: allocationLimit) }
        return count
    }

    /// A zero-filled tensor whose shape came from outside (a script, a file): checked first.
    public init(checkedZeros shape: [Int]) throws {
        _ = try Tensor.checkedElementCount(shape)
        self.init(zeros: shape)
    }

    /// "3.0 GiB", "512 B".
    public static func formatBytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var v = Double(n), u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
    }

    /// Matrix product that checks the output size first (the operands may be empty with a
    /// huge outer dimension: `[1e9, 0] @ [0, 1e9]` would ask for 4e18 bytes).
    public func checkedMatmul(_ other: Tensor) throws -> Tensor {
        precondition(rank == 2 && other.rank == 2 && shape[1] == other.shape[0],
                     "matmul shapes \(shape) and \(other.shape) do not agree")
        _ = try Tensor.checkedElementCount([shape[0], other.shape[1]])
        // OpenBLAS takes 32-bit sizes (reachable only with a raised allocation limit).
        guard [shape[0], shape[1], other.shape[1]].allSatisfy({ $0 <= Int(Int32.max) }) else {
            throw TensorError.shapeOverflow(shape: [shape[0], shape[1], other.shape[1]])
        }
        return matmul(other)
    }
}
