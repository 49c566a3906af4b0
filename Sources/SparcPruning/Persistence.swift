import SparcFormats
import SparcTensor

/// Masks saved as safetensors of BOOL tensors keyed like the mask, with metadata.
extension Mask {
    public func save(to path: String, metadata: [String: String] = [:]) throws {
        var meta = provenance.merging(metadata) { $1 }
        meta["sparc_kind"] = "mask"
        meta["granularity"] = granularity.rawValue
        meta["selected"] = String(count)
        try SafetensorsWriter.write(tensors(), to: path, dtype: .bool, metadata: meta)
    }

    /// Reads a mask written by `save`; nil if the file holds something else.
    public static func load(from file: SafetensorsFile) throws -> Mask? {
        guard file.metadata["sparc_kind"] == "mask" else { return nil }
        guard let g = Granularity(rawValue: file.metadata["granularity"] ?? "") else {
            throw FormatError(file.path, "mask metadata names an unknown granularity")
        }
        var mask = Mask(granularity: g, tensors: try file.names.map { ($0, try file.tensor($0)) })
        mask.provenance = file.metadata.filter { !["sparc_kind", "granularity", "selected"].contains($0.key) }
        return mask
    }
}
