import Foundation
import SparcTensor

/// A typed GGUF metadata value.
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String)
    case array(GGUFValueType, [GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [GGUFValue]? { if case .array(_, let a) = self { return a }; return nil }
}

/// GGUF metadata value type ids.
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8, uint16, int16, uint32, int32, float32, bool, string, array, uint64, int64, float64

    /// The fewest bytes one value of this type takes in a file (a string is at least its
    /// length field, an array its element type and count). Bounds the counts a file claims.
    var minimumBytes: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64, .string: return 8
        case .array: return 12
        }
    }
}

/// One tensor's entry in a GGUF file. `dims` are in ggml order (innermost first), so an
/// `[out, in]` PyTorch weight has `dims == [in, out]`.
public struct GGUFTensorInfo: Sendable {
    public let name: String
    public let dims: [Int]
    public let type: GGMLType
    /// Absolute byte offset of the data in the file.
    public let offset: Int
    public let byteCount: Int
    /// Product of `dims`, checked for overflow when the file was opened.
    public let elementCount: Int

    /// The shape in PyTorch order (outermost first).
    public var shape: [Int] { dims.reversed() }
}

/// A GGUF (v2/v3) file: metadata and tensor directory, read eagerly and checked; tensor
/// data is decoded on request.
///
/// Everything a hostile file could use to make sparc allocate, index or loop is checked
/// at open, before any of it is used: counts against the bytes left, every string length,
/// every tensor's dims product and byte size (overflow-checked), and every tensor's data
/// range — aligned, inside the data section, and disjoint from every other tensor's.
/// Together these bound the memory any file can make sparc decode into by a small
/// multiple of the file's own size.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    private let file: FileBytes
    private let index: [String: Int]

    public static let magic: UInt32 = 0x4655_4747  // "GGUF" little-endian
    /// Fewest bytes of one metadata entry (key length, value type, a one-byte value) and
    /// of one tensor record (name length, rank, one dim, type, offset).
    static let minimumEntryBytes = 8 + 4 + 1
    static let minimumTensorRecordBytes = 8 + 4 + 8 + 4 + 8
    /// Metadata values (array elements included) a file may hold. Each decoded value costs
    /// ~50 bytes of memory, so an uncapped 100 MB file of byte arrays would need 5 GB; the
    /// largest real vocabularies (256k tokens, with scores, types and merges) need ~1.5M.
    static let maximumMetadataValues = 1 << 24

    public init(path: String) throws {
        self.path = path
        file = try FileBytes(path: path)
        var r = ByteReader(file.bytes, file: path)
        let magic = try r.read(UInt32.self, "the magic number")
        guard magic == GGUFFile.magic else { throw FormatError(path, "not a GGUF file (bad magic number)") }
        version = try r.read(UInt32.self, "the version")
        guard version == 2 || version == 3 else {
            throw FormatError(path, "unsupported GGUF version \(version) (sparc reads versions 2 and 3)")
        }
        let tensorCount = try r.read(UInt64.self, "the tensor count")
        let kvCount = try r.read(UInt64.self, "the metadata count")
        // Each entry takes at least a fixed number of bytes: counts beyond what the rest of
        // the file could hold are corrupt (checked before they size any loop or array).
        let (kvBytes, o1) = kvCount.multipliedReportingOverflow(by: UInt64(GGUFFile.minimumEntryBytes))
        let (tensorBytes, o2) = tensorCount.multipliedReportingOverflow(by: UInt64(GGUFFile.minimumTensorRecordBytes))
        let (needed, o3) = kvBytes.addingReportingOverflow(tensorBytes)
        guard !o1, !o2, !o3, needed <= UInt64(r.remaining) else {
            throw FormatError(path, "corrupt header: \(tensorCount) tensors and \(kvCount) metadata entries cannot fit in \(file.size) bytes")
        }

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        var budget = GGUFFile.maximumMetadataValues
        for _ in 0..<Int(kvCount) {
            let keyOffset = r.offset
            let key = try GGUFFile.readString(&r, "a metadata key")
            let rawType = try r.read(UInt32.self, "the type of \(key)")
            let value = try GGUFFile.readValue(&r, rawType: rawType, key: key, depth: 0, budget: &budget)
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw FormatError(path, "metadata key \(key) appears twice (second at offset \(keyOffset))")
            }
            keys.append(key)
        }
        self.metadata = metadata
        metadataKeys = keys

        let alignment = try GGUFFile.alignment(metadata["general.alignment"], path)
        self.alignment = alignment

        // The tensor directory: names, dims and types, each checked as it is read.
        struct Record { let name: String; let dims: [Int]; let type: GGMLType; let elements: Int; let bytes: Int; let offset: UInt64 }
        var records: [Record] = []
        var index: [String: Int] = [:]
        for i in 0..<Int(tensorCount) {
            let name = try GGUFFile.readString(&r, "the name of tensor #\(i)")
            guard index[name] == nil else { throw FormatError(path, "tensor \(name) appears twice") }
            let nDims = try r.read(UInt32.self, "the rank of \(name)")
            guard nDims >= 1, nDims <= 4 else { throw FormatError(path, "tensor \(name) has rank \(nDims) (ggml allows 1...4)") }
            var dims: [Int] = []
            var elements = 1
            for _ in 0..<nDims {
                let d = try r.read(UInt64.self, "a dimension of \(name)")
                guard d >= 1, d <= 1 << 40 else { throw FormatError(path, "tensor \(name) has invalid dimension \(d)") }
                let (p, overflow) = elements.multipliedReportingOverflow(by: Int(d))
                guard !overflow else { throw FormatError(path, "tensor \(name): dims \(dims + [Int(d)]) overflow the element count") }
                dims.append(Int(d))
                elements = p
            }
            let type = GGMLType(rawValue: try r.read(UInt32.self, "the type of \(name)"))
            guard let block = type.block else {
                throw FormatError(path, "tensor \(name) has unsupported type \(type); sparc reads \(GGMLType.supported.map(\.description).joined(separator: ", "))")
            }
            guard dims[0] % block.elements == 0 else {
                throw FormatError(path, "tensor \(name): row length \(dims[0]) is not a multiple of the \(type) block size \(block.elements)")
            }
            guard let bytes = type.byteCount(elements: elements) else {
                throw FormatError(path, "tensor \(name): \(elements) elements of \(type) overflow the byte count")
            }
            let offset = try r.read(UInt64.self, "the data offset of \(name)")
            index[name] = records.count
            records.append(Record(name: name, dims: dims, type: type, elements: elements, bytes: bytes, offset: offset))
        }

        // The data section starts at the next multiple of the alignment after the directory.
        let dataStart = (r.offset + alignment - 1) / alignment * alignment
        let dataSize = max(0, file.size - dataStart)
        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(records.count)
        for t in records {
            guard t.offset % UInt64(alignment) == 0 else {
                throw FormatError(path, "tensor \(t.name): data offset \(t.offset) is not aligned to \(alignment)")
            }
            // offset ≤ dataSize and bytes ≤ dataSize − offset: no sum that could overflow.
            guard t.offset <= UInt64(dataSize), t.bytes <= dataSize - Int(t.offset) else {
                throw FormatError(path, "tensor \(t.name): data (\(t.bytes) bytes at offset \(t.offset)) lies past the end of the data section (\(dataSize) bytes) — truncated?")
            }
            infos.append(GGUFTensorInfo(name: t.name, dims: t.dims, type: t.type, offset: dataStart + Int(t.offset),
                                        byteCount: t.bytes, elementCount: t.elements))
        }
        // Disjoint ranges: without this, 400 tensors at offset 0 in a 16 MB file would
        // each decode the same bytes and demand gigabytes.
        let byOffset = infos.sorted { $0.offset < $1.offset }
        for (a, b) in zip(byOffset, byOffset.dropFirst()) where b.offset < a.offset + a.byteCount {
            throw FormatError(path, "tensors \(a.name) (bytes \(a.offset)..<\(a.offset + a.byteCount)) and \(b.name) (from byte \(b.offset)) overlap")
        }
        tensors = infos
        self.index = index
    }

    public func info(_ name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    /// The tensor `name` decoded to Float32, in PyTorch shape order.
    public func tensor(_ name: String) throws -> Tensor { try tensor(name, keepingHalfPrecision: false) }

    /// The tensor `name`; with `keepingHalfPrecision`, an F16 or BF16 tensor keeps its
    /// 2-byte codes (`Tensor.elementType`), widened exactly to Float32 where it is read.
    public func tensor(_ name: String, keepingHalfPrecision: Bool) throws -> Tensor {
        guard let info = info(name) else { throw FormatError(path, "no tensor named \(name)") }
        let raw = try file.slice(offset: info.offset, count: info.byteCount, what: "tensor \(name)")
        if keepingHalfPrecision && (info.type == .f16 || info.type == .bf16) && info.byteCount > 0 {
            return Tensor(shape: info.shape, elementType: info.type == .f16 ? .f16 : .bf16, bits: raw.baseAddress!)
        }
        var t = Tensor(zeros: info.shape)
        t.withUnsafeMutableBufferPointer { Dequantize.decode(info.type, raw, count: info.elementCount, into: $0.baseAddress!) }
        return t
    }

    // MARK: reading values

    static func alignment(_ value: GGUFValue?, _ path: String) throws -> Int {
        guard let value else { return 32 }
        guard let a = value.int, a > 0, a <= 1 << 20, a % 8 == 0 else {
            throw FormatError(path, "invalid general.alignment \(value.int.map(String.init) ?? "\(value)") (must be a positive multiple of 8, at most 1 MiB)")
        }
        return a
    }

    static func readString(_ r: inout ByteReader, _ what: String) throws -> String {
        let n = try r.read(UInt64.self, "the length of \(what)")
        guard n <= UInt64(r.remaining) else {
            throw FormatError(r.file, "truncated: \(what) claims \(n) bytes at offset \(r.offset), \(r.remaining) left")
        }
        let bytes = try r.readBytes(Int(n), what)
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw FormatError(r.file, "\(what) at offset \(r.offset - Int(n)) is not valid UTF-8")
        }
        return s
    }

    static func readValue(_ r: inout ByteReader, rawType: UInt32, key: String, depth: Int, budget: inout Int) throws -> GGUFValue {
        guard let type = GGUFValueType(rawValue: rawType) else {
            throw FormatError(r.file, "metadata \(key) has unknown value type \(rawType)")
        }
        budget -= 1
        guard budget >= 0 else {
            throw FormatError(r.file, "metadata holds more than \(maximumMetadataValues) values (at \(key)); sparc reads at most that many")
        }
        let what = "the value of \(key)"
        switch type {
        case .uint8: return .uint8(try r.read(UInt8.self, what))
        case .int8: return .int8(try r.read(Int8.self, what))
        case .uint16: return .uint16(try r.read(UInt16.self, what))
        case .int16: return .int16(try r.read(Int16.self, what))
        case .uint32: return .uint32(try r.read(UInt32.self, what))
        case .int32: return .int32(try r.read(Int32.self, what))
        case .float32: return .float32(try r.readFloat(what))
        case .uint64: return .uint64(try r.read(UInt64.self, what))
        case .int64: return .int64(try r.read(Int64.self, what))
        case .float64: return .float64(try r.readDouble(what))
        case .bool:
            let b = try r.read(UInt8.self, what)
            guard b <= 1 else { throw FormatError(r.file, "metadata \(key): invalid bool \(b)") }
            return .bool(b == 1)
        case .string: return .string(try readString(&r, what))
        case .array:
            guard depth < 4 else { throw FormatError(r.file, "metadata \(key): arrays nested too deeply") }
            let elemRaw = try r.read(UInt32.self, "the element type of \(key)")
            guard let elemType = GGUFValueType(rawValue: elemRaw) else {
                throw FormatError(r.file, "metadata \(key) has unknown array element type \(elemRaw)")
            }
            let n = try r.read(UInt64.self, "the length of \(key)")
            // n elements take at least n × (smallest encoding) bytes: bound before reserving.
            guard n <= UInt64(r.remaining / elemType.minimumBytes) else {
                throw FormatError(r.file, "truncated: array \(key) claims \(n) elements of type \(elemType), \(r.remaining) bytes left")
            }
            guard n <= UInt64(budget) else {
                throw FormatError(r.file, "metadata holds more than \(maximumMetadataValues) values (at \(key)); sparc reads at most that many")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(n))
            for _ in 0..<Int(n) {
                items.append(try readValue(&r, rawType: elemRaw, key: key, depth: depth + 1, budget: &budget))
            }
            return .array(elemType, items)
        }
    }
}
