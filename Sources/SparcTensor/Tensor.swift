import CAllocator
import Foundation

/// How a tensor's elements are stored. Every computation reads Float32; F16 and BF16
/// checkpoint matrices stay in their 2-byte encoding in memory (half the size) and are
/// widened exactly to Float32 where they are used (`Tensor.withFloat32`).
public enum ElementType: String, Sendable {
    case f32, f16, bf16

    /// Bytes per element.
    public var width: Int { self == .f32 ? 4 : 2 }
}

/// Reference-counted, 64-byte aligned buffer behind a `Tensor`: Float32 values, or the
/// raw 2-byte encodings of a half-precision tensor.
/// Tensors share it until one of them writes (copy-on-write), so a pruned model can
/// share every untouched weight with the model it came from.
public final class TensorStorage: @unchecked Sendable {
    public let count: Int
    public let elementType: ElementType
    private let base: UnsafeMutableRawPointer
    /// What malloc returned (`base` is it rounded up to `alignment`).
    private let allocation: UnsafeMutableRawPointer

    /// The Float32 elements. Half-precision storage has none: reading it through this
    /// pointer would reinterpret 2-byte codes as floats, so that traps; use
    /// `Tensor.withFloat32` (which works for both) instead.
    public var pointer: UnsafeMutablePointer<Float> {
        @inline(__always) get {
            precondition(elementType == .f32, "a \(elementType) tensor has no Float32 pointer: read it with withFloat32")
            return base.assumingMemoryBound(to: Float.self)
        }
    }

    /// The 2-byte codes of a half-precision buffer (little-endian host).
    public var halfBits: UnsafeMutablePointer<UInt16> {
        precondition(elementType != .f32, "a Float32 tensor has no half-precision codes")
        return base.assumingMemoryBound(to: UInt16.self)
    }

    /// A zero-filled, 64-byte aligned buffer of `count` floats. The zeros are written
    /// here rather than taken from calloc's untouched pages: a page first read (as
    /// sgemm's accumulate does) maps the shared zero page, and the later write then
    /// copies it and flushes every core's TLB — measured at a quarter of an attribution pass.
    public convenience init(count: Int) { self.init(count: count, zeroed: true) }

    /// `zeroed: false` leaves the contents undefined, for buffers a kernel overwrites whole.
    public convenience init(count: Int, zeroed: Bool) { self.init(count: count, elementType: .f32, zeroed: zeroed) }

    public init(count: Int, elementType: ElementType, zeroed: Bool) {
        precondition(count >= 0, "negative tensor size")
        self.count = count
        self.elementType = elementType
        let bytes = max(count, 1) * elementType.width
        // malloc and align by hand rather than posix_memalign: glibc's aligned allocations do
        // not reuse freed large chunks (each 8 MiB buffer of a round of four landed on fresh
        // heap, faulted in anew), where plain malloc hands the same memory back.
        guard let allocation = malloc(bytes + TensorStorage.alignment - 1) else {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        let address = (Int(bitPattern: allocation) + TensorStorage.alignment - 1) & ~(TensorStorage.alignment - 1)
        let raw = UnsafeMutableRawPointer(bitPattern: address)!
        if zeroed { memset(raw, 0, bytes) }
        if elementType == .f32 { raw.bindMemory(to: Float.self, capacity: max(count, 1)) } else { raw.bindMemory(to: UInt16.self, capacity: max(count, 1)) }
        self.allocation = allocation
        base = raw
    }

    /// Cache-line (and AVX-512 vector) alignment of every buffer.
    static let alignment = 64

    deinit { free(allocation) }

    /// glibc maps each large buffer separately and unmaps it on free; with several threads
    /// having touched it, every unmap interrupts all cores to flush TLBs, and the next
    /// buffer faults its pages in again (10 % of a 229-token attribution pass's samples, in
    /// the kernel). Serving large buffers from a heap that is not trimmed reuses the memory
    /// instead (the process keeps its peak size). The same keeps the per-use Float32 copies
    /// of half-precision weights cheap: each reuses the last one's memory. The settings are
    /// made before main (allocator.c); this is true where they took (glibc).
    static let keepsBuffersInTheHeap: Bool = sparc_keep_large_buffers_in_heap() != 0

    func copy() -> TensorStorage {
        let other = TensorStorage(count: count, elementType: elementType, zeroed: false)
        other.base.copyMemory(from: base, byteCount: count * elementType.width)
        return other
    }

    /// A Float32 copy of the elements (what writing to a half-precision tensor starts from).
    func widened() -> TensorStorage {
        let other = TensorStorage(count: count, elementType: .f32, zeroed: false)
        HalfPrecision.widen(self, into: other.pointer)
        return other
    }
}

/// An n-dimensional, row-major (C-contiguous) Float32 tensor with value semantics.
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
    public private(set) var shape: [Int]
    public private(set) var storage: TensorStorage

    /// Number of elements.
    public var count: Int { storage.count }
    public var rank: Int { shape.count }

    /// A zero-filled tensor.
    public init(zeros shape: [Int]) {
        self.shape = shape
        self.storage = TensorStorage(count: Tensor.elementCount(shape))
    }

    /// A tensor whose contents are undefined until written: for outputs a kernel overwrites
    /// entirely (saves a pass over memory for large buffers).
    public init(unsafeUninitializedShape shape: [Int]) {
        self.shape = shape
        self.storage = TensorStorage(count: Tensor.elementCount(shape), zeroed: false)
    }

    /// A tensor holding `values` (row-major) with the given shape.
    public init(shape: [Int], values: [Float]) {
        precondition(Tensor.elementCount(shape) == values.count,
                     "shape \(shape) needs \(Tensor.elementCount(shape)) values, got \(values.count)")
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    /// A tensor filled by `fill`, which receives the zeroed destination buffer.
    public init(shape: [Int], fill: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        self.init(zeros: shape)
        try fill(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    /// A half-precision tensor holding a copy of `count` 2-byte codes (little-endian, as
    /// safetensors and GGUF store them) from `bits`.
    public init(shape: [Int], elementType: ElementType, bits: UnsafeRawPointer) {
        precondition(elementType != .f32, "bits: takes F16 or BF16 codes")
        self.shape = shape
        let n = Tensor.elementCount(shape)
        storage = TensorStorage(count: n, elementType: elementType, zeroed: false)
        UnsafeMutableRawPointer(storage.halfBits).copyMemory(from: bits, byteCount: 2 * n)
    }

    /// How the elements are stored: F32, or F16/BF16 codes widened on use.
    public var elementType: ElementType { storage.elementType }

    /// Runs `body` on the elements as Float32: the tensor's own buffer, or for a
    /// half-precision tensor a temporary widened copy (exact: every F16 and BF16 value is
    /// a Float32), so that only one widened matrix exists at a time.
    public func withFloat32<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        if storage.elementType == .f32 { return try body(storage.pointer) }
        let scratch = WideningScratch.take(count)
        defer { WideningScratch.give(scratch) }
        HalfPrecision.widen(storage, into: scratch.pointer)
        return try body(scratch.pointer)
    }

    /// The tensor with Float32 storage (itself when it already has it).
    public func float32() -> Tensor {
        if storage.elementType == .f32 { return self }
        var t = self
        t.storage = storage.widened()
        return t
    }

    /// The product of the dimensions (0 if any is 0, before multiplying the others, so an
    /// empty shape with huge dimensions cannot overflow). Traps on overflow: sizes from
    /// outside go through `checkedElementCount` first.
    public static func elementCount(_ shape: [Int]) -> Int { shape.contains(0) ? 0 : shape.reduce(1, *) }

    /// The same elements viewed with another shape (no copy).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(Tensor.elementCount(newShape) == count, "cannot reshape \(shape) to \(newShape)")
        var t = self
        t.shape = newShape
        return t
    }

    public var scalars: [Float] { withUnsafeBufferPointer { Array($0) } }

    public subscript(flat index: Int) -> Float {
        get {
            precondition(index >= 0 && index < count)
            if storage.elementType != .f32 { return HalfPrecision.widen(storage.halfBits[index], storage.elementType) }
            return storage.pointer[index]
        }
        set { precondition(index >= 0 && index < count); makeUnique(); storage.pointer[index] = newValue }
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withFloat32 { try body(UnsafeBufferPointer(start: $0, count: count)) }
    }

    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    /// Whether two tensors share one buffer (used to check that pruning shares weights).
    public func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }

    /// Before a write: a buffer of this tensor's own, in Float32 (writing to a
    /// half-precision tensor widens it, so pruned weights keep their exact values).
    private mutating func makeUnique() {
        if storage.elementType != .f32 { storage = storage.widened() }
        else if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// Row `i` of a tensor viewed as a matrix `[count / lastDim, lastDim]`.
    public func row(_ i: Int) -> [Float] {
        let n = shape.last ?? 1
        precondition(i >= 0 && i * n < count)
        if storage.elementType != .f32 {
            let bits = storage.halfBits + i * n, type = storage.elementType
            return (0..<n).map { HalfPrecision.widen(bits[$0], type) }
        }
        return Array(UnsafeBufferPointer(start: storage.pointer + i * n, count: n))
    }

    /// Elements `range` as Float32 into `out`: one row of an embedding table, without
    /// widening the whole table when it is half-precision.
    public func copyElements(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        if storage.elementType == .f32 { out.update(from: storage.pointer + range.lowerBound, count: range.count); return }
        HalfPrecision.widen(storage.elementType, storage.halfBits + range.lowerBound, count: range.count, into: out)
    }

    public var description: String { "Tensor(shape: \(shape))" }
}
