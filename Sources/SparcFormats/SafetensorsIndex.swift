import Foundation

/// A sharded checkpoint's `model.safetensors.index.json`:
/// `{"metadata": {…}, "weight_map": {tensor name: shard file}}`, the shards beside it.
///
/// Checked before any tensor is read: every shard name is a relative path inside the
/// folder (no absolute path, no `..`), every shard exists, and each shard holds exactly
/// the tensors the map gives it — no tensor in two shards, none missing, none extra.
public struct SafetensorsIndex: Sendable {
    public static let fileName = "model.safetensors.index.json"

    public let path: String
    /// The folder the shard names are relative to.
    public let folder: String
    /// Tensor name → shard file name.
    public let weightMap: [String: String]
    /// The distinct shard names, sorted.
    public let shards: [String]

    public init(path: String) throws {
        self.path = path
        folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard let data = FileManager.default.contents(atPath: path) else { throw FormatError(path, "cannot read the shard index") }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw FormatError(path, "the shard index is not a JSON object")
        }
        guard let map = root["weight_map"] as? [String: Any] else {
            throw FormatError(path, "the shard index has no \"weight_map\" object (tensor name → shard file)")
        }
        guard !map.isEmpty else { throw FormatError(path, "the shard index's weight_map is empty") }
        var weightMap: [String: String] = [:]
        for (name, value) in map {
            guard let shard = value as? String else { throw FormatError(path, "weight_map[\(name.debugDescription)] is not a file name") }
            try Self.checkShardName(shard, path)
            weightMap[name] = shard
        }
        self.weightMap = weightMap
        shards = Set(weightMap.values).sorted()
        for s in shards {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder + "/" + s, isDirectory: &isDir), !isDir.boolValue else {
                throw FormatError(path, "shard \(s) is missing from \(folder)")
            }
        }
    }

    /// A relative path that stays inside the folder. Only the name is checked, not where a
    /// symbolic link leads: the Hugging Face cache links every shard to a blob outside it.
    private static func checkShardName(_ s: String, _ path: String) throws {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard !s.isEmpty, !s.hasPrefix("/"), !s.contains("\\"), !s.contains("\0"),
              parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw FormatError(path, "shard name \(s.debugDescription) is not a file inside the model folder")
        }
    }

    /// Opens every shard and checks its tensors against the map.
    public func openShards() throws -> [SafetensorsFile] {
        var seen: [String: String] = [:]
        var files: [SafetensorsFile] = []
        for s in shards {
            let f = try SafetensorsFile(path: folder + "/" + s)
            for name in f.names {
                if let other = seen.updateValue(s, forKey: name) {
                    throw FormatError(path, "tensor \(name) is in two shards, \(other) and \(s)")
                }
                guard let mapped = weightMap[name] else { throw FormatError(path, "shard \(s) holds tensor \(name), which the index does not list") }
                guard mapped == s else { throw FormatError(path, "shard \(s) holds tensor \(name), which the index puts in \(mapped)") }
            }
            files.append(f)
        }
        if let missing = weightMap.keys.sorted().first(where: { seen[$0] == nil }) {
            throw FormatError(path, "tensor \(missing) is missing from its shard \(weightMap[missing]!)")
        }
        return files
    }
}
