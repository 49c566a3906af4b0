import Foundation
import SparcFormats
import SparcModel
import SparcTensor

/// Relevance maps saved as safetensors, keyed like the map, with metadata saying what
/// they are (so `load` gives back a relevance map).
extension RelevanceMap {
    public static let sparcVersion = "0.1.0"

    public func save(to path: String, model: Model? = nil) throws {
        var meta = provenance
        meta.merge(["sparc_kind": "relevance", "method": method.rawValue, "level": level.rawValue,
                    "samples": String(sampleCount), "sparc_version": RelevanceMap.sparcVersion]) { $1 }
        if let model { meta["model"] = model.source }
        try SafetensorsWriter.write(names.map { ($0, tensors[$0]!) }, to: path, metadata: meta)
    }

    /// Reads a map written by `save`; nil if the file is plain tensors.
    public static func load(from file: SafetensorsFile) throws -> RelevanceMap? {
        guard file.metadata["sparc_kind"] == "relevance" else { return nil }
        guard let method = AttributionMethod(rawValue: file.metadata["method"] ?? ""),
              let level = AttributionLevel(rawValue: file.metadata["level"] ?? "") else {
            throw FormatError(file.path, "relevance metadata names an unknown method or level")
        }
        // Saved in map order: tensors in file-offset order are that order.
        let names = file.names
        var tensors: [String: Tensor] = [:]
        for n in names { tensors[n] = try file.tensor(n) }
        var map = RelevanceMap(names: names, tensors: tensors, method: method, level: level,
                               sampleCount: Int(file.metadata["samples"] ?? "") ?? 0, explained: [])
        map.provenance = file.metadata.filter { !["sparc_kind", "method", "level", "samples"].contains($0.key) }
        return map
    }
}
