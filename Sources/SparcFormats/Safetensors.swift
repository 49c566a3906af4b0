import Foundation
import SparcTensor

/// A memory-mapped `.safetensors` file: an 8-byte little-endian header length, a JSON
/// header `{name: {dtype, shape, data_offsets}, "__metadata__": {…}}`, then the data.
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
    private let file: MappedFile
    private let index: [String: Int]

    /// Element encodings sparc reads, with their byte widths.
    static let dtypeBytes: [String: Int] = ["F32": 4, "F16": 2, "BF16": 2, "BOOL": 1, "U8": 1]

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        var r = ByteReader(file.bytes, file: path)
        let headerLength = try r.read(UInt64.self, "the header length")
        guard headerLength >= 2, headerLength <= UInt64(r.remaining), headerLength <= 100_000_000 else {
            throw FormatError(path, "corrupt header length \(headerLength) (file has \(file.size) bytes)")
        }
        let headerBytes = try r.readBytes(Int(headerLength), "the JSON header")
        let dataStart = r.offset
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(headerBytes))
        } catch {
            throw FormatError(path, "header is not valid JSON")
        }
        guard let header = json as? [String: Any] else { throw FormatError(path, "header is not a JSON object") }

        var metadata: [String: String] = [:]
        if let meta = header["__metadata__"] {
            guard let m = meta as? [String: Any] else { throw FormatError(path, "__metadata__ is not an object") }
            for (k, v) in m {
                guard let s = v as? String else { throw FormatError(path, "__metadata__.\(k) is not a string") }
                metadata[k] = s
            }
        }
        self.metadata = metadata

        let dataSize = file.size - dataStart
        var entries: [Entry] = []
        for (name, value) in header where name != "__metadata__" {
            guard let desc = value as? [String: Any],
                  let dtype = desc["dtype"] as? String,
                  let shapeAny = desc["shape"] as? [Any],
                  let offsAny = desc["data_offsets"] as? [Any], offsAny.count == 2 else {
                throw FormatError(path, "tensor \(name): header entry needs dtype, shape and two data_offsets")
            }
            let shape = try shapeAny.map { d -> Int in
                guard let n = (d as? NSNumber)?.intValue, (d as? NSNumber)?.doubleValue == Double(n), n >= 0, n <= 1 << 40 else {
                    throw FormatError(path, "tensor \(name): invalid dimension \(d)")
                }
                return n
            }
            let offs = try offsAny.map { d -> Int in
                guard let n = (d as? NSNumber)?.intValue, n >= 0 else { throw FormatError(path, "tensor \(name): invalid data offset \(d)") }
                return n
            }
            guard let width = SafetensorsFile.dtypeBytes[dtype] else {
                throw FormatError(path, "tensor \(name) has unsupported dtype \(dtype) (sparc reads F32, F16, BF16, BOOL, U8)")
            }
            let (count, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d); return (p, acc.1 || o)
            }
            guard !overflow, count <= Int.max / width else { throw FormatError(path, "tensor \(name) is too large") }
            guard offs[0] <= offs[1], offs[1] <= dataSize else {
                throw FormatError(path, "tensor \(name): data_offsets \(offs) lie past the end of the data (\(dataSize) bytes) — truncated?")
            }
            guard offs[1] - offs[0] == count * width else {
                throw FormatError(path, "tensor \(name): shape \(shape) of \(dtype) needs \(count * width) bytes, data_offsets give \(offs[1] - offs[0])")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, offset: dataStart + offs[0], byteCount: count * width))
        }
        entries.sort { $0.offset < $1.offset || ($0.offset == $1.offset && $0.name < $1.name) }
        self.entries = entries
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    public var names: [String] { entries.map(\.name) }

    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The tensor `name` decoded to Float32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entry(name) else { throw FormatError(path, "no tensor named \(name)") }
        let raw = try file.slice(offset: e.offset, count: e.byteCount, what: "tensor \(name)")
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

    public static func encode(_ tensors: [(String, Tensor)], dtype: DType = .f32, metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        let width = dtype.width
        var offset = 0
        for (name, t) in tensors {
            header[name] = ["dtype": dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + t.count * width]]
            offset += t.count * width
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces so the data starts 8-byte aligned.
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for (_, t) in tensors {
            t.withUnsafeBufferPointer { buf in
                switch dtype {
                case .f32: buf.withMemoryRebound(to: UInt8.self) { out.append(contentsOf: $0) }
                case .f16: out.append(contentsOf: buf.map { Dequantize.halfBits($0) }.withUnsafeBytes { Array($0) })
                case .bf16: out.append(contentsOf: buf.map { Dequantize.bfloatBits($0) }.withUnsafeBytes { Array($0) })
                case .bool: out.append(contentsOf: buf.map { $0 != 0 ? UInt8(1) : 0 })
                }
            }
        }
        return out
    }

    public static func write(_ tensors: [(String, Tensor)], to path: String, dtype: DType = .f32,
                             metadata: [String: String] = [:]) throws {
        try AtomicWrite.write(try encode(tensors, dtype: dtype, metadata: metadata), to: path)
    }
}
