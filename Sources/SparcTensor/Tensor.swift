import CAllocator
import Foundation

/// Reference-counted, 64-byte aligned Float32 buffer behind a `Tensor`.
/// Tensors share it until one of them writes (copy-on-write), so a pruned model can
/// share every untouched weight with the model it came from.
public final class TensorStorage: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    /// A zero-filled, 64-byte aligned buffer of `count` floats. The zeros are written
    /// here rather than taken from calloc's untouched pages: a page first read (as
    /// sgemm's accumulate does) maps the shared zero page, and the later write then
    /// copies it and flushes every core's TLB — measured at a quarter of an attribution pass.
    public convenience init(count: Int) { self.init(count: count, zeroed: true) }

    /// `zeroed: false` leaves the contents undefined, for buffers a kernel overwrites whole.
    public init(count: Int, zeroed: Bool) {
        precondition(count >= 0, "negative tensor size")
        _ = TensorStorage.keepBuffersInTheHeap
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        if zeroed { memset(raw, 0, bytes) }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { free(pointer) }

    /// glibc maps each large buffer separately and unmaps it on free; with several threads
    /// having touched it, every unmap interrupts all cores to flush TLBs, and the next
    /// buffer faults its pages in again. Measured on a 256-token attribution pass, that
    /// was a third of the time. Serving large buffers from a heap that is not trimmed
    /// reuses the memory instead (the process keeps its peak size).
    private static let keepBuffersInTheHeap: Void = {
        sparc_keep_large_buffers_in_heap()
    }()

    func copy() -> TensorStorage {
        let other = TensorStorage(count: count)
        other.pointer.update(from: pointer, count: count)
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

    public var scalars: [Float] { Array(UnsafeBufferPointer(start: storage.pointer, count: count)) }

    public subscript(flat index: Int) -> Float {
        get { precondition(index >= 0 && index < count); return storage.pointer[index] }
        set { precondition(index >= 0 && index < count); makeUnique(); storage.pointer[index] = newValue }
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    /// Whether two tensors share one buffer (used to check that pruning shares weights).
    public func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }

    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// Row `i` of a tensor viewed as a matrix `[count / lastDim, lastDim]`.
    public func row(_ i: Int) -> [Float] {
        let n = shape.last ?? 1
        precondition(i >= 0 && i * n < count)
        return Array(UnsafeBufferPointer(start: storage.pointer + i * n, count: n))
    }

    public var description: String { "Tensor(shape: \(shape))" }
}
