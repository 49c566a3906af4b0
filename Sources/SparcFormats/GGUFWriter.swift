import Foundation
import SparcTensor

/// Writes GGUF v3 files: metadata in the given order, then tensors, each aligned.
public struct GGUFWriter {
    public enum Encoding: Sendable { case f32, f16, bf16 }

    public var metadata: [(String, GGUFValue)] = []
    private var tensors: [(name: String, tensor: Tensor, encoding: Encoding)] = []
    public let alignment = 32

    public init() {}

    public mutating func add(_ key: String, _ value: GGUFValue) { metadata.append((key, value)) }

    /// Adds a tensor given in PyTorch shape order; it is stored with ggml's reversed dims.
    public mutating func add(tensor: Tensor, named name: String, as encoding: Encoding = .f32) {
        tensors.append((name, tensor, encoding))
    }

    /// The whole file in memory (small files, tests); `write(to:)` streams instead.
    public func encoded() throws -> Data {
        var out = try header(file: "<gguf>")
        try emitTensors { out.append(contentsOf: $0) }
        return out
    }

    /// Writes the file atomically, streaming tensor data.
    /// - Throws: `FormatError` for anything `GGUFFile` would refuse to read back (a key or
    ///   tensor name used twice, a scalar or rank > 4 tensor, an empty dimension), or a
    ///   failed write.
    public func write(to path: String) throws {
        let head = try header(file: path)
        try AtomicWrite.write(to: path) { sink in
            try sink.write(head)
            try emitTensors { try sink.write($0) }
        }
    }

    private func byteCount(_ t: (name: String, tensor: Tensor, encoding: Encoding)) -> Int {
        t.encoding == .f32 ? 4 * t.tensor.count : 2 * t.tensor.count
    }

    private func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// Everything before the tensor data, padded to the alignment.
    private func header(file: String) throws -> Data {
        var keys = Set<String>()
        for (k, _) in metadata where !keys.insert(k).inserted {
            throw FormatError(file, "cannot write metadata key \(k) twice")
        }
        var names = Set<String>()
        for t in tensors {
            guard names.insert(t.name).inserted else { throw FormatError(file, "cannot write two tensors named \(t.name)") }
            guard (1...4).contains(t.tensor.rank), t.tensor.shape.allSatisfy({ $0 >= 1 }) else {
                throw FormatError(file, "cannot write tensor \(t.name) of shape \(t.tensor.shape): GGUF holds tensors of rank 1...4 without empty dimensions")
            }
        }

        var out = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func str(_ s: String) { let b = Array(s.utf8); u64(UInt64(b.count)); out.append(contentsOf: b) }
        func typeId(_ v: GGUFValue) -> GGUFValueType {
            switch v {
            case .uint8: return .uint8
            case .int8: return .int8
            case .uint16: return .uint16
            case .int16: return .int16
            case .uint32: return .uint32
            case .int32: return .int32
            case .float32: return .float32
            case .bool: return .bool
            case .string: return .string
            case .array: return .array
            case .uint64: return .uint64
            case .int64: return .int64
            case .float64: return .float64
            }
        }
        func value(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): out.append(x)
            case .int8(let x): out.append(UInt8(bitPattern: x))
            case .uint16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .int16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .uint32(let x): u32(x)
            case .int32(let x): u32(UInt32(bitPattern: x))
            case .float32(let x): u32(x.bitPattern)
            case .bool(let x): out.append(x ? 1 : 0)
            case .string(let s): str(s)
            case .array(let t, let items): u32(t.rawValue); u64(UInt64(items.count)); items.forEach(value)
            case .uint64(let x): u64(x)
            case .int64(let x): u64(UInt64(bitPattern: x))
            case .float64(let x): u64(x.bitPattern)
            }
        }
        func ggmlType(_ e: Encoding) -> GGMLType { e == .f32 ? .f32 : (e == .f16 ? .f16 : .bf16) }

        u32(GGUFFile.magic); u32(3)
        u64(UInt64(tensors.count)); u64(UInt64(metadata.count))
        for (k, v) in metadata { str(k); u32(typeId(v).rawValue); value(v) }
        var offset = 0
        for t in tensors {
            str(t.name)
            u32(UInt32(t.tensor.rank))
            for d in t.tensor.shape.reversed() { u64(UInt64(d)) }
            u32(ggmlType(t.encoding).rawValue)
            u64(UInt64(offset))
            offset += padded(byteCount(t))
        }
        out.append(contentsOf: [UInt8](repeating: 0, count: padded(out.count) - out.count))
        return out
    }

    private func emitTensors(_ out: (UnsafeRawBufferPointer) throws -> Void) throws {
        let zeros = [UInt8](repeating: 0, count: alignment)
        for t in tensors {
            let encoding: TensorBytes.Encoding = t.encoding == .f32 ? .f32 : (t.encoding == .f16 ? .f16 : .bf16)
            try TensorBytes.emit(t.tensor, as: encoding, out)
            let n = byteCount(t)
            try zeros[0 ..< padded(n) - n].withUnsafeBytes(out)
        }
    }
}
