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

    public var elementCount: Int { dims.reduce(1, *) }
    /// The shape in PyTorch order (outermost first).
    public var shape: [Int] { dims.reversed() }
}

/// A memory-mapped GGUF (v2/v3) file: metadata and tensor directory, read eagerly and
/// checked; tensor data is decoded on request.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    private let file: MappedFile
    private let index: [String: Int]

    public static let magic: UInt32 = 0x4655_4747  // "GGUF" little-endian

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        var r = ByteReader(file.bytes, file: path)
        let magic = try r.read(UInt32.self, "the magic number")
        guard magic == GGUFFile.magic else { throw FormatError(path, "not a GGUF file (bad magic number)") }
        version = try r.read(UInt32.self, "the version")
        guard version == 2 || version == 3 else {
            throw FormatError(path, "unsupported GGUF version \(version) (sparc reads versions 2 and 3)")
        }
        let tensorCount = try r.read(UInt64.self, "the tensor count")
        let kvCount = try r.read(UInt64.self, "the metadata count")
        // Every entry takes at least 8 bytes: a count beyond that is corrupt.
        guard tensorCount <= UInt64(r.remaining / 8), kvCount <= UInt64(r.remaining / 8) else {
            throw FormatError(path, "corrupt header: \(tensorCount) tensors and \(kvCount) metadata entries cannot fit in \(file.size) bytes")
        }

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        for _ in 0..<Int(kvCount) {
            let key = try GGUFFile.readString(&r, "a metadata key")
            let rawType = try r.read(UInt32.self, "the type of \(key)")
            let value = try GGUFFile.readValue(&r, rawType: rawType, key: key, depth: 0)
            if metadata.updateValue(value, forKey: key) == nil { keys.append(key) }
        }
        self.metadata = metadata
        metadataKeys = keys

        let alignment = metadata["general.alignment"]?.int ?? 32
        guard alignment > 0, alignment <= 1 << 20, alignment % 8 == 0 else {
            throw FormatError(path, "invalid general.alignment \(alignment) (must be a positive multiple of 8)")
        }
        self.alignment = alignment

        struct Raw { let name: String; let dims: [Int]; let type: GGMLType; let offset: UInt64 }
        var raws: [Raw] = []
        for i in 0..<Int(tensorCount) {
            let name = try GGUFFile.readString(&r, "the name of tensor #\(i)")
            let nDims = try r.read(UInt32.self, "the rank of \(name)")
            guard nDims >= 1, nDims <= 4 else { throw FormatError(path, "tensor \(name) has rank \(nDims) (ggml allows 1...4)") }
            var dims: [Int] = []
            for _ in 0..<nDims {
                let d = try r.read(UInt64.self, "a dimension of \(name)")
                guard d >= 1, d <= 1 << 40 else { throw FormatError(path, "tensor \(name) has invalid dimension \(d)") }
                dims.append(Int(d))
            }
            let type = GGMLType(rawValue: try r.read(UInt32.self, "the type of \(name)"))
            let offset = try r.read(UInt64.self, "the data offset of \(name)")
            raws.append(Raw(name: name, dims: dims, type: type, offset: offset))
        }
        let dataStart = (r.offset + alignment - 1) / alignment * alignment

        var infos: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        for raw in raws {
            let (count, overflow) = raw.dims.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d); return (p, acc.1 || o)
            }
            guard !overflow else { throw FormatError(path, "tensor \(raw.name) is too large") }
            guard raw.type.block != nil else {
                throw FormatError(path, "tensor \(raw.name) has unsupported type \(raw.type); sparc reads \(GGMLType.supported.map(\.description).joined(separator: ", "))")
            }
            guard let bytes = raw.type.byteCount(elements: count), count % raw.type.block!.elements == 0,
                  raw.dims[0] % raw.type.block!.elements == 0 else {
                throw FormatError(path, "tensor \(raw.name): row length \(raw.dims[0]) is not a multiple of the \(raw.type) block size")
            }
            guard raw.offset % UInt64(alignment) == 0 else {
                throw FormatError(path, "tensor \(raw.name): data offset \(raw.offset) is not aligned to \(alignment)")
            }
            guard raw.offset <= UInt64(file.size), Int(raw.offset) <= file.size - dataStart,
                  bytes <= file.size - dataStart - Int(raw.offset) else {
                throw FormatError(path, "tensor \(raw.name): data (\(bytes) bytes at offset \(raw.offset)) lies past the end of the file — truncated?")
            }
            guard index[raw.name] == nil else { throw FormatError(path, "tensor \(raw.name) appears twice") }
            index[raw.name] = infos.count
            infos.append(GGUFTensorInfo(name: raw.name, dims: raw.dims, type: raw.type,
                                        offset: dataStart + Int(raw.offset), byteCount: bytes))
        }
        tensors = infos
        self.index = index
    }

    public func info(_ name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    /// The tensor `name` decoded to Float32, in PyTorch shape order.
    public func tensor(_ name: String) throws -> Tensor {
        guard let info = info(name) else { throw FormatError(path, "no tensor named \(name)") }
        let raw = try file.slice(offset: info.offset, count: info.byteCount, what: "tensor \(name)")
        var t = Tensor(zeros: info.shape)
        t.withUnsafeMutableBufferPointer { Dequantize.decode(info.type, raw, count: info.elementCount, into: $0.baseAddress!) }
        return t
    }

    // MARK: reading values

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

    static func readValue(_ r: inout ByteReader, rawType: UInt32, key: String, depth: Int) throws -> GGUFValue {
        guard let type = GGUFValueType(rawValue: rawType) else {
            throw FormatError(r.file, "metadata \(key) has unknown value type \(rawType)")
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
            guard n <= UInt64(r.remaining) else {
                throw FormatError(r.file, "truncated: array \(key) claims \(n) elements, \(r.remaining) bytes left")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(n))
            for _ in 0..<Int(n) {
                items.append(try readValue(&r, rawType: elemRaw, key: key, depth: depth + 1))
            }
            return .array(elemType, items)
        }
    }
}
