import Foundation
import SparcTensor

/// A `.safetensors` file: an 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets}, "__metadata__": {…}}`, then the data.
///
/// Checked at open, before any tensor is decoded: the header length against the file,
/// every dimension and offset an exact non-negative integer, dtype × shape equal to the
/// byte range, every range inside the data section and disjoint from every other.
public final class SafetensorsFile: @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let dtype: String
        public let shape: [Int]
        /// Absolute byte range in the file.
        public let offset: Int
        public let byteCount: Int
    }

    public let path: String
    public let metadata: [String: String]
    /// Entries in data-offset order.
    public let entries: [Entry]
    private let file: FileBytes
    private let index: [String: Int]

    /// Element encodings sparc reads, with their byte widths.
    static let dtypeBytes: [String: Int] = ["F32": 4, "F16": 2, "BF16": 2, "BOOL": 1, "U8": 1]
    /// The key safetensors reserves for string metadata; no tensor may use it.
    public static let metadataKey = "__metadata__"

    public init(path: String) throws {
        self.path = path
        file = try FileBytes(path: path)
        var r = ByteReader(file.bytes, file: path)
        let headerLength = try r.read(UInt64.self, "the header length")
        guard headerLength >= 2, headerLength <= UInt64(r.remaining), headerLength <= 100_000_000 else {
            throw FormatError(path, "corrupt header length \(headerLength) (file has \(file.size) bytes)")
        }
        let headerBytes = try r.readBytes(Int(headerLength), "the JSON header")
        let dataStart = r.offset
        let json: Any
        do {
            // Foundation's parser refuses nesting deeper than 512, so hostile depth is an error.
            json = try JSONSerialization.jsonObject(with: Data(headerBytes))
        } catch {
            throw FormatError(path, "header is not valid JSON")
        }
        guard let header = json as? [String: Any] else { throw FormatError(path, "header is not a JSON object") }

        var metadata: [String: String] = [:]
        if let meta = header[SafetensorsFile.metadataKey] {
            guard let m = meta as? [String: Any] else { throw FormatError(path, "__metadata__ is not an object") }
            for (k, v) in m {
                guard let s = v as? String else { throw FormatError(path, "__metadata__.\(k) is not a string") }
                metadata[k] = s
            }
        }
        self.metadata = metadata

        let dataSize = file.size - dataStart
        var entries: [Entry] = []
        for (name, value) in header where name != SafetensorsFile.metadataKey {
            guard let desc = value as? [String: Any],
                  let dtype = desc["dtype"] as? String,
                  let shapeAny = desc["shape"] as? [Any],
                  let offsAny = desc["data_offsets"] as? [Any], offsAny.count == 2 else {
                throw FormatError(path, "tensor \(name): header entry needs dtype, shape and two data_offsets")
            }
            guard let width = SafetensorsFile.dtypeBytes[dtype] else {
                throw FormatError(path, "tensor \(name) has unsupported dtype \(dtype) (sparc reads F32, F16, BF16, BOOL, U8)")
            }
            guard shapeAny.count <= 16 else { throw FormatError(path, "tensor \(name) has rank \(shapeAny.count) (sparc reads at most 16)") }
            var shape: [Int] = []
            var count = 1
            for d in shapeAny {
                guard let n = SafetensorsFile.exactInt(d), n >= 0, n <= 1 << 40 else {
                    throw FormatError(path, "tensor \(name): invalid dimension \(d)")
                }
                let (p, overflow) = count.multipliedReportingOverflow(by: n)
                guard !overflow else { throw FormatError(path, "tensor \(name): shape \(shapeAny) overflows the element count") }
                shape.append(n)
                count = p
            }
            let (bytes, overflow) = count.multipliedReportingOverflow(by: width)
            guard !overflow else { throw FormatError(path, "tensor \(name) is too large") }
            guard let start = SafetensorsFile.exactInt(offsAny[0]), let end = SafetensorsFile.exactInt(offsAny[1]), start >= 0, end >= 0 else {
                throw FormatError(path, "tensor \(name): invalid data_offsets \(offsAny)")
            }
            guard start <= end, end <= dataSize else {
                throw FormatError(path, "tensor \(name): data_offsets [\(start), \(end)] lie past the end of the data (\(dataSize) bytes) — truncated?")
            }
            guard end - start == bytes else {
                throw FormatError(path, "tensor \(name): shape \(shape) of \(dtype) needs \(bytes) bytes, data_offsets give \(end - start)")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, offset: dataStart + start, byteCount: bytes))
        }
        entries.sort { $0.offset < $1.offset || ($0.offset == $1.offset && $0.name < $1.name) }
        // Disjoint ranges (empty tensors take no bytes and cannot overlap): otherwise many
        // entries could alias one large range and multiply the memory a small file demands.
        var previous: Entry?
        for e in entries where e.byteCount > 0 {
            if let p = previous, e.offset < p.offset + p.byteCount {
                throw FormatError(path, "tensors \(p.name) (data_offsets \(p.offset - dataStart)..<\(p.offset - dataStart + p.byteCount)) and \(e.name) (from \(e.offset - dataStart)) overlap")
            }
            previous = e
        }
        self.entries = entries
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    /// A JSON number that is an exact integer: not a bool (Foundation bridges `true` to 1),
    /// not 2.5, not 1e300 or 2^64 (which would trap on conversion).
    static func exactInt(_ value: Any) -> Int? {
        guard let n = value as? NSNumber, String(cString: n.objCType) != "c" else { return nil }
        return value as? Int
    }

    public var names: [String] { entries.map(\.name) }

    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The tensor `name` decoded to Float32.
    public func tensor(_ name: String) throws -> Tensor { try tensor(name, keepingHalfPrecision: false) }

    /// The tensor `name`; with `keepingHalfPrecision`, an F16 or BF16 tensor keeps its
    /// 2-byte codes (`Tensor.elementType`), widened exactly to Float32 where it is read.
    public func tensor(_ name: String, keepingHalfPrecision: Bool) throws -> Tensor {
        guard let e = entry(name) else { throw FormatError(path, "no tensor named \(name)") }
        let raw = try file.slice(offset: e.offset, count: e.byteCount, what: "tensor \(name)")
        if keepingHalfPrecision && (e.dtype == "F16" || e.dtype == "BF16") && e.byteCount > 0 {
            return Tensor(shape: e.shape, elementType: e.dtype == "F16" ? .f16 : .bf16, bits: raw.baseAddress!)
        }
        if e.dtype == "BOOL" || e.dtype == "U8" {
            return Tensor(shape: e.shape) { out in for i in 0..<out.count { out[i] = Float(raw[i]) } }
        }
        let type: GGMLType = e.dtype == "F32" ? .f32 : (e.dtype == "F16" ? .f16 : .bf16)
        var t = Tensor(zeros: e.shape)
        t.withUnsafeMutableBufferPointer { Dequantize.decode(type, raw, count: $0.count, into: $0.baseAddress!) }
        return t
    }
}

/// Writes `.safetensors` files.
public enum SafetensorsWriter {
    public enum DType: String, Sendable {
        case f32 = "F32", f16 = "F16", bf16 = "BF16"
        /// One byte per element, nonzero → 1 (masks).
        case bool = "BOOL"

        var width: Int { self == .f32 ? 4 : (self == .bool ? 1 : 2) }
    }

    /// The whole file in memory (small files, tests); `write` streams instead.
    public static func encode(_ tensors: [(String, Tensor)], dtype: DType = .f32, metadata: [String: String] = [:]) throws -> Data {
        var out = try header(tensors, dtype: dtype, metadata: metadata, file: "<safetensors>")
        for (_, t) in tensors { try TensorBytes.emit(t, as: dtype.encoding) { out.append(contentsOf: $0) } }
        return out
    }

    /// Writes the file atomically, streaming tensor data instead of building it in memory.
    /// - Throws: `FormatError` for a tensor named `__metadata__`, a name used twice, a
    ///   shape that does not describe the tensor's elements, or a failed write.
    /// `keepingHalfPrecision`: F16/BF16 tensors are written in their own dtype (exactly),
    /// the others in `dtype`.
    public static func write(_ tensors: [(String, Tensor)], to path: String, dtype: DType = .f32,
                             keepingHalfPrecision: Bool = false, metadata: [String: String] = [:]) throws {
        let dtypes = tensors.map { keepingHalfPrecision ? DType(keeping: $0.1, else: dtype) : dtype }
        let head = try header(tensors, dtypes: dtypes, metadata: metadata, file: path)
        try AtomicWrite.write(to: path) { sink in
            try sink.write(head)
            for ((_, t), d) in zip(tensors, dtypes) { try TensorBytes.emit(t, as: d.encoding) { try sink.write($0) } }
        }
    }

    static func header(_ tensors: [(String, Tensor)], dtype: DType, metadata: [String: String], file: String) throws -> Data {
        try header(tensors, dtypes: Array(repeating: dtype, count: tensors.count), metadata: metadata, file: file)
    }

    /// The length prefix and JSON header, after checking everything `SafetensorsFile`
    /// would check, so that sparc never writes a file it cannot read back.
    static func header(_ tensors: [(String, Tensor)], dtypes: [DType], metadata: [String: String], file: String) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header[SafetensorsFile.metadataKey] = metadata }
        var offset = 0
        for ((name, t), dtype) in zip(tensors, dtypes) {
            let width = dtype.width
            guard name != SafetensorsFile.metadataKey else {
                throw FormatError(file, "cannot save a tensor named \(name): safetensors reserves that key for the file's metadata")
            }
            guard header[name] == nil else { throw FormatError(file, "cannot save two tensors named \(name)") }
            guard t.shape.allSatisfy({ $0 >= 0 }), Tensor.elementCount(t.shape) == t.count else {
                throw FormatError(file, "cannot save tensor \(name): shape \(t.shape) does not describe its \(t.count) elements")
            }
            let (bytes, o1) = t.count.multipliedReportingOverflow(by: width)
            let (end, o2) = offset.addingReportingOverflow(bytes)
            guard !o1, !o2 else { throw FormatError(file, "cannot save tensor \(name): too large") }
            header[name] = ["dtype": dtype.rawValue, "shape": t.shape, "data_offsets": [offset, end]]
            offset = end
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces so the data starts 8-byte aligned.
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        return out
    }
}

extension SafetensorsWriter.DType {
    /// A half-precision tensor's own dtype, else `other`.
    init(keeping t: Tensor, else other: Self) {
        switch t.elementType {
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .f32: self = other
        }
    }

    var encoding: TensorBytes.Encoding {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .bool: return .bool
        }
    }
}

/// A tensor's elements in a file encoding, handed out in chunks so that writers can
/// stream large tensors without a second full-size copy.
enum TensorBytes {
    enum Encoding { case f32, f16, bf16, bool }

    static func emit(_ t: Tensor, as encoding: Encoding, _ out: (UnsafeRawBufferPointer) throws -> Void) throws {
        try t.withUnsafeBufferPointer { buf in
            if encoding == .f32 { return try out(UnsafeRawBufferPointer(buf)) }
            let chunk = 1 << 16
            var start = 0
            while start < buf.count {
                let part = buf[start ..< min(start + chunk, buf.count)]
                switch encoding {
                case .f16: try part.map { Dequantize.halfBits($0).littleEndian }.withUnsafeBytes(out)
                case .bf16: try part.map { Dequantize.bfloatBits($0).littleEndian }.withUnsafeBytes(out)
                case .bool: try part.map { $0 != 0 ? UInt8(1) : 0 }.withUnsafeBytes(out)
                case .f32: break
                }
                start += chunk
            }
        }
    }
}
