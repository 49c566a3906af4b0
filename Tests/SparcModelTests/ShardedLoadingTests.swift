import Foundation
import SparcFormats
import SparcTensor
import Testing
@testable import SparcModel

/// Hugging Face folders whose weights are split over shards listed in
/// `model.safetensors.index.json`, and half-precision weights (scripts/make_sharded_fixtures.py:
/// one tiny Llama saved as one F32 file and as three BF16 shards holding the same numbers).
@Suite struct ShardedLoadingTests {
    static let f32 = Fixtures.path("sharded/f32"), bf16 = Fixtures.path("sharded/bf16-shards")
    static let prompts = [[1, 17, 230, 5, 99, 383, 42], [2], Array(0..<40)]

    @Test func bf16ShardsLoadTheSameModelAsF32() throws {
        let a = try Model.load(Self.f32), b = try Model.load(Self.bf16)
        #expect(a.parameterNames == b.parameterNames && a.parameterNames.count == 21)
        for name in a.parameterNames {
            #expect(a.parameters[name]!.shape == b.parameters[name]!.shape, "\(name)")
            #expect(a.parameters[name]!.scalars == b.parameters[name]!.scalars, "\(name)")
        }
        for ids in Self.prompts {
            let la = try a.logits(ids), lb = try b.logits(ids)
            #expect(la.shape == lb.shape && la.scalars == lb.scalars)
        }
        #expect(try SafetensorsIndex(path: Self.bf16 + "/" + SafetensorsIndex.fileName).shards.count == 3)
    }

    @Test func f16ShardsLoadTheirValues() throws {
        // F16 shards written by sparc: every parameter is the F16 rounding of the F32 one.
        let a = try Model.load(Self.f32)
        let dir = TempDir()
        try copyConfigAndTokenizer(to: dir.path)
        var map: [String: String] = [:]
        let names = a.parameterNames
        for (k, part) in [names.prefix(10), names.dropFirst(10)].enumerated() {
            let shard = "part-\(k).safetensors"
            try SafetensorsWriter.write(part.map { ($0, a.parameters[$0]!) }, to: dir.file(shard), dtype: .f16)
            for n in part { map[n] = shard }
        }
        try writeIndex(map, in: dir.path)
        let b = try Model.load(dir.path)
        for name in names {
            #expect(b.parameters[name]!.scalars == a.parameters[name]!.scalars.map { Float(Float16($0)) }, "\(name)")
        }
    }

    @Test func singleFileWinsOverAnIndex() throws {
        // As transformers: model.safetensors is used when present, the index ignored.
        let dir = TempDir()
        let folder = try copyFolder(Self.f32, into: dir)
        try "{not json".write(toFile: folder + "/" + SafetensorsIndex.fileName, atomically: true, encoding: .utf8)
        _ = try Model.load(folder)
    }

    // MARK: malformed indexes

    func copyFolder(_ source: String, into dir: TempDir) throws -> String {
        let folder = dir.file("m")
        try FileManager.default.copyItem(atPath: source, toPath: folder)
        return folder
    }

    func copyConfigAndTokenizer(to folder: String) throws {
        for f in ["config.json", "tokenizer.json"] { try FileManager.default.copyItem(atPath: Self.f32 + "/" + f, toPath: folder + "/" + f) }
    }

    func writeIndex(_ map: [String: Any], in folder: String) throws {
        let data = try JSONSerialization.data(withJSONObject: ["metadata": ["total_size": 0], "weight_map": map])
        try data.write(to: URL(fileURLWithPath: folder + "/" + SafetensorsIndex.fileName))
    }

    func index(_ folder: String) throws -> [String: String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + SafetensorsIndex.fileName))
        return (try JSONSerialization.jsonObject(with: data) as! [String: Any])["weight_map"] as! [String: String]
    }

    func expectError(_ folder: String, _ words: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try Model.load(folder)
            Issue.record("loaded; expected an error mentioning \(words.debugDescription)", sourceLocation: sourceLocation)
        } catch let e as FormatError {
            #expect(e.message.contains(words), "\(e.message)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    /// Loading a copy of the BF16 folder with its index edited by `edit` fails with `words`.
    func expectEdited(_ words: String, sourceLocation: SourceLocation = #_sourceLocation, _ edit: (inout [String: Any]) -> Void) throws {
        let dir = TempDir()
        let folder = try copyFolder(Self.bf16, into: dir)
        var map: [String: Any] = try index(folder)
        edit(&map)
        try writeIndex(map, in: folder)
        expectError(folder, words, sourceLocation: sourceLocation)
        withExtendedLifetime(dir) {}
    }

    @Test func malformedIndexesAreRejected() throws {
        let shard1 = "model-00001-of-00003.safetensors", shard2 = "model-00002-of-00003.safetensors"
        do {
            let dir = TempDir()
            let folder = try copyFolder(Self.bf16, into: dir)
            try "{\"weight_map\": [".write(toFile: folder + "/" + SafetensorsIndex.fileName, atomically: true, encoding: .utf8)
            expectError(folder, "the shard index is not a JSON object")
            try "{\"metadata\": {}}".write(toFile: folder + "/" + SafetensorsIndex.fileName, atomically: true, encoding: .utf8)
            expectError(folder, "has no \"weight_map\" object")
            try "{\"weight_map\": {}}".write(toFile: folder + "/" + SafetensorsIndex.fileName, atomically: true, encoding: .utf8)
            expectError(folder, "weight_map is empty")
        }
        try expectEdited("weight_map[\"lm_head.weight\"] is not a file name") { $0["lm_head.weight"] = 3 }
        for bad in ["../\(shard1)", "/etc/passwd", "a/../../x.safetensors", "", "./x"] {
            try expectEdited("is not a file inside the model folder") { $0["lm_head.weight"] = bad }
        }
        // A shard that is not there.
        do {
            let dir = TempDir()
            let folder = try copyFolder(Self.bf16, into: dir)
            try FileManager.default.removeItem(atPath: folder + "/" + shard2)
            expectError(folder, "shard \(shard2) is missing")
        }
        // The index and the shards disagree.
        try expectEdited("holds tensor model.norm.weight, which the index does not list") { $0["model.norm.weight"] = nil }
        try expectEdited("tensor model.extra.weight is missing from its shard \(shard1)") { $0["model.extra.weight"] = shard1 }
        try expectEdited("holds tensor model.embed_tokens.weight, which the index puts in \(shard2)") { $0["model.embed_tokens.weight"] = shard2 }
        // One tensor in two shards.
        do {
            let dir = TempDir()
            let folder = try copyFolder(Self.bf16, into: dir)
            let embed = try SafetensorsFile(path: folder + "/" + shard1).tensor("model.embed_tokens.weight")
            try SafetensorsWriter.write([("model.embed_tokens.weight", embed), ("z", Tensor(zeros: [2]))], to: folder + "/zz.safetensors")
            var map: [String: Any] = try index(folder)
            map["z"] = "zz.safetensors"
            try writeIndex(map, in: folder)
            expectError(folder, "tensor model.embed_tokens.weight is in two shards, \(shard1) and zz.safetensors")
        }
        // A truncated shard is named.
        do {
            let dir = TempDir()
            let folder = try copyFolder(Self.bf16, into: dir)
            let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + shard2))
            try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: folder + "/" + shard2))
            expectError(folder, "truncated")
        }
    }
}
