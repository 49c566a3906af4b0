import Synchronization

/// Exact widening of F16 and BF16 codes to Float32, written so that the compiler
/// vectorises the loops (no per-element calls: Swift's `Float16` conversion becomes a
/// library call on x86-64 builds without F16C, which would make widening a matrix per
/// use cost more than the multiply).
public enum HalfPrecision {
    /// BF16 is the top half of a Float32: widening is a shift.
    @inline(__always) public static func bfloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// IEEE half → single, branch-free (F. Giesen's method): move the exponent and
    /// mantissa into place and rebias; Inf/NaN get the remaining exponent bias; subnormals
    /// are normalised by a float subtraction, which is exact. Checked against `Float16`
    /// for all 65536 codes in the tests.
    @inline(__always) public static func half(_ bits: UInt16) -> Float {
        let shiftedExponent: UInt32 = 0x7C00 << 13
        var o = UInt32(bits & 0x7FFF) << 13
        let exponent = o & shiftedExponent
        o &+= (127 - 15) << 23
        let infOrNaN = o &+ ((128 - 16) << 23)
        let magic = Float(bitPattern: 113 << 23)
        let subnormal = (Float(bitPattern: o &+ (1 << 23)) - magic).bitPattern
        o = exponent == shiftedExponent ? infOrNaN : (exponent == 0 ? subnormal : o)
        return Float(bitPattern: o | (UInt32(bits & 0x8000) << 16))
    }

    @inline(__always) public static func widen(_ bits: UInt16, _ type: ElementType) -> Float {
        type == .bf16 ? bfloat(bits) : half(bits)
    }

    /// `count` codes of `type` from `src` as Float32 into `dst`.
    public static func widen(_ type: ElementType, _ src: UnsafePointer<UInt16>, count: Int, into dst: UnsafeMutablePointer<Float>) {
        switch type {
        case .bf16: for i in 0..<count { dst[i] = bfloat(src[i]) }
        case .f16: for i in 0..<count { dst[i] = half(src[i]) }
        case .f32: UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: 4 * count)
        }
    }

    /// A whole half-precision buffer into `dst`, split over the cores (a 5632×2048 matrix
    /// is 46 MB of Float32 written per use).
    static func widen(_ storage: TensorStorage, into dst: UnsafeMutablePointer<Float>) {
        let type = storage.elementType, src = UnsafePointer(storage.halfBits)
        Parallel.forRanges(storage.count, minChunk: 1 << 16) { r in
            widen(type, src + r.lowerBound, count: r.count, into: dst + r.lowerBound)
        }
    }
}

/// Float32 buffers that `Tensor.withFloat32` widens half-precision matrices into, kept
/// for the next use. Allocating one per use would map and unmap it each time (glibc maps
/// buffers over 32 MiB separately: a 5632×2048 matrix is 46 MB), faulting its pages in
/// again on every multiply. Concurrent users each take their own buffer.
enum WideningScratch {
    private static let free = Mutex<[TensorStorage]>([])
    /// Buffers kept between uses: enough for the concurrent uses sparc makes (one per
    /// thread at most) without holding many widened matrices.
    private static let kept = 2

    /// A buffer of at least `count` floats (contents undefined).
    static func take(_ count: Int) -> TensorStorage {
        let reused = free.withLock { buffers -> TensorStorage? in
            // The smallest that fits, so a large buffer stays free for a large matrix.
            guard let i = buffers.indices.filter({ buffers[$0].count >= count }).min(by: { buffers[$0].count < buffers[$1].count }) else { return nil }
            return buffers.remove(at: i)
        }
        return reused ?? TensorStorage(count: count, elementType: .f32, zeroed: false)
    }

    static func give(_ buffer: TensorStorage) {
        free.withLock { buffers in
            buffers.append(buffer)
            // Over the limit: drop the smallest (the next large matrix would not fit it).
            if buffers.count > kept, let i = buffers.indices.min(by: { buffers[$0].count < buffers[$1].count }) { buffers.remove(at: i) }
        }
    }
}
