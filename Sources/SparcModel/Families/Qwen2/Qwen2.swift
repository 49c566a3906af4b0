import Foundation
import SparcFormats

/// Qwen2 (`Qwen2ForCausalLM`): Llama's block with biases on q, k and v. llama.cpp keeps
/// Qwen2's q/k rows in Hugging Face order (no RoPE permutation).
public struct Qwen2: Architecture {
    public init() {}
    public var modelTypes: [String] { ["qwen2"] }
    public var ggufArchitecture: String? { "qwen2" }

    public func config(json: [String: Any], file: String) throws -> ModelConfig {
        let j = ConfigJSON(j: json, file: file)
        if j.bool("use_sliding_window") == true {
            throw FormatError(file, "Qwen2 with use_sliding_window is not supported yet")
        }
        var c = try Llama.decoderConfig(j)
        c.queryKeyValueBias = true
        return c
    }

    public func config(gguf: GGUFFile) throws -> ModelConfig {
        var c = try Llama.decoderConfig(gguf: gguf, arch: "qwen2")
        c.queryKeyValueBias = true
        return c
    }

    public func configJSON(_ c: ModelConfig) -> [String: Any] {
        var j = Llama.decoderConfigJSON(c, className: "Qwen2ForCausalLM")
        j["use_sliding_window"] = false
        return j
    }

    public func layout(_ c: ModelConfig) -> ParameterLayout { Llama.layout(c) }
    public var components: ComponentNames { Llama.components }
    public var ggufNames: GGUFNameMap? { Llama.ggufNames(permutesQueryKey: false) }
}
