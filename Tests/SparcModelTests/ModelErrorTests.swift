import Foundation
import Testing
import SparcFormats
@testable import SparcModel

/// Bad model files and inputs give errors that name the file and the problem, never a trap.
@Suite struct ModelErrorTests {
    /// A copy of the tiny-gqa folder whose files a test may edit.
    func folderCopy(_ dir: TempDir) throws -> String {
        let dst = dir.file("model")
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-gqa"), toPath: dst)
        return dst
    }

    func editConfig(_ folder: String, _ edit: (inout [String: Any]) -> Void) throws {
        let path = folder + "/config.json"
        var j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        edit(&j)
        try JSONSerialization.data(withJSONObject: j).write(to: URL(fileURLWithPath: path))
    }

    func expectError(_ path: String, _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try Model.load(path)
            Issue.record("loaded without error", sourceLocation: sourceLocation)
        } catch {
            for f in fragments { #expect("\(error)".contains(f), "\(error)", sourceLocation: sourceLocation) }
        }
    }

    /// A Gemma 3 config with 2³²−1 layers (found by the fuzzer in a GGUF) is refused before
    /// anything is sized by the layer count: the sliding-layer pattern was built first.
    @Test func gemmaLayerCountIsCheckedBeforeThePattern() throws {
        let dir = try TempDir()
        let folder = dir.file("gemma")
        try FileManager.default.copyItem(atPath: Fixtures.path("families/gemma3-six"), toPath: folder)
        try editConfig(folder) { j in
            j["num_hidden_layers"] = 4_294_967_295
            j["layer_types"] = nil
            j["sliding_window_pattern"] = 6
        }
        expectError(folder, "num_hidden_layers = 4294967295")
    }

    @Test func missingTokenizer() throws {
        let dir = TempDir()
        let folder = try folderCopy(dir)
        try FileManager.default.removeItem(atPath: folder + "/tokenizer.json")
        expectError(folder, "tokenizer.json is missing", folder)
    }

    @Test func unknownArchitecture() throws {
        let dir = TempDir()
        let folder = try folderCopy(dir)
        try editConfig(folder) { $0["model_type"] = "gpt_neox" }
        expectError(folder, "unsupported architecture \"gpt_neox\"", "config.json")
    }

    @Test func shapeMismatchWithConfig() throws {
        let dir = TempDir()
        let folder = try folderCopy(dir)
        try editConfig(folder) { $0["intermediate_size"] = 96 }
        expectError(folder, "model.layers.0.mlp.gate_proj.weight", "[128, 64]", "[96, 64]")
    }

    @Test func missingParameter() throws {
        let dir = TempDir()
        let folder = try folderCopy(dir)
        try editConfig(folder) { $0["num_hidden_layers"] = 3 }
        expectError(folder, "model.layers.2.input_layernorm.weight is missing")
    }

    @Test func invalidConfigNumbers() throws {
        let dir = TempDir()
        let folder = try folderCopy(dir)
        try editConfig(folder) { $0["num_key_value_heads"] = 3 }
        expectError(folder, "not a multiple of num_key_value_heads 3")
    }

    @Test func unsupportedRopeScaling() throws {
        let dir = TempDir()
        let folder = try folderCopy(dir)
        try editConfig(folder) { $0["rope_parameters"] = ["rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0] }
        expectError(folder, "unsupported rope scaling \"yarn\"")
    }

    @Test func truncatedWeightsInAFolder() throws {
        let dir = TempDir()
        let folder = try folderCopy(dir)
        let path = folder + "/model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        for n in [0, 4, 8, 100, data.count / 2, data.count - 1] {
            try data.prefix(n).write(to: URL(fileURLWithPath: path))
            expectError(folder, "model.safetensors")
        }
    }

    @Test(arguments: ["tiny-quant.gguf", "tiny-tied.gguf"])
    func truncatedGGUFModels(file: String) throws {
        let dir = TempDir()
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(file)))
        let path = dir.file(file)
        for n in stride(from: 0, to: data.count, by: max(1, data.count / 97)) {
            try data.prefix(n).write(to: URL(fileURLWithPath: path))
            expectError(path, path)
        }
    }

    @Test func flippedBytesInAGGUFModelNeverTrap() throws {
        let dir = TempDir()
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-quant.gguf")))
        let path = dir.file("flipped.gguf")
        var rng = SystemRandomNumberGenerator()
        // Header, metadata, tokenizer and tensor directory, sampled; then a few data bytes.
        let positions = Array(stride(from: 0, to: 12_000, by: 37)) + [data.count - 5, data.count - 1000]
        for i in positions where i < data.count {
            var d = data
            d[i] ^= UInt8.random(in: 1...255, using: &rng)
            try d.write(to: URL(fileURLWithPath: path))
            if let m = try? Model.load(path) { _ = try? m.logits([1, 2, 3]) }
        }
    }

    @Test func unknownNamesAndBadInputs() throws {
        expectError("no-such-model", "no model at \"no-such-model\"", "smollm2")
        #expect(ModelError.notInstalled(name: "smollm2", path: "/x/y.gguf").description.contains("sparc install smollm2"))
        let m = try Model.load(Fixtures.path("tiny-gqa"))
        #expect { _ = try m.logits([]) } throws: { "\($0)".contains("empty input") }
        #expect { _ = try m.logits([1, 384]) } throws: { "\($0)".contains("token id 384 is outside the vocabulary") }
        #expect { _ = try m.perplexity([1, 2, 3], window: 1) } throws: { "\($0)".contains("window") }
        // A text longer than the context is fine in windows that fit it, and equals the
        // average over its windows; a window longer than the context is not.
        let long = (0..<300).map { ($0 * 37 + 11) % 384 }
        #expect(try m.perplexity(long, window: 128).predictedTokens == 299)
        #expect { _ = try m.perplexity(long, window: 200) } throws: { "\($0)".contains("exceeds the model's context length (128)") }
        #expect { _ = try m.perplexity([1, 2, 384], window: 2) } throws: { "\($0)".contains("token id 384") }
        #expect { _ = try m.generate([1], maxTokens: -1) } throws: { "\($0)".contains("max_tokens") }
        #expect { _ = try m.logits([Int](repeating: 3, count: 129)) } throws: { "\($0)".contains("exceed the model's context length (128)") }
        #expect { _ = try m.generate([1, 2], maxTokens: 1 << 40) } throws: { "\($0)".contains("context length") }
    }
}
