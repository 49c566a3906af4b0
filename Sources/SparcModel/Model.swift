import Foundation
import SparcFormats
import SparcTensor
import Synchronization

/// A loaded language model: configuration, tokenizer and parameters under the Hugging Face
/// checkpoint's own names and layouts (`model.layers.3.self_attn.q_proj.weight` `[out, in]`;
/// GPT-2's `transformer.h.3.attn.c_attn.weight` `[in, 3·out]`), whatever file it came from,
/// and its family (`architecture`). Immutable: pruning makes a new model sharing tensors.
public final class Model: @unchecked Sendable {
    public let config: ModelConfig
    public let tokenizer: Tokenizer
    /// Parameter names in canonical order (embeddings, layers in order, final norm, head).
    public let parameterNames: [String]
    public let parameters: [String: Tensor]
    /// Where the model was loaded from (for messages and metadata).
    public let source: String

    /// True for models derived from the file by replacing parameters (pruning): the
    /// file's hash then no longer describes the weights.
    public private(set) var isModified = false
    private let hashCache = Mutex<String?>(nil)

    /// The model's family: names, layouts, config, components.
    public let architecture: any Architecture
    /// Every checkpoint tensor and the runtime parameters it holds.
    public let layout: ParameterLayout
    /// The parameters in the runtime's layout (shared with `parameters` where the layouts
    /// agree; GPT-2's Conv1D weights are transposed copies).
    public let runtimeParameters: [ParameterKey: Tensor]
    let weights: DecoderWeights

    /// Checks `parameters` against the family's layout for `config` (names and shapes),
    /// then binds the runtime to them.
    public init(config: ModelConfig, tokenizer: Tokenizer, parameters: [String: Tensor], source: String) throws {
        guard let family = Architectures.named(config.architecture) else {
            throw ModelError.invalidInput("unsupported architecture \"\(config.architecture)\" (sparc runs: \(Architectures.modelTypes.joined(separator: ", ")))")
        }
        let layout = family.layout(config)
        for t in layout.tensors {
            guard let p = parameters[t.name] else { throw ModelError.missingParameter(source, t.name) }
            guard p.shape == t.shape else { throw ModelError.shapeMismatch(source, t.name, expected: t.shape, found: p.shape) }
        }
        if let extra = parameters.keys.sorted().first(where: { layout.tensor(named: $0) == nil }) {
            throw ModelError.unexpectedParameter(source, extra)
        }
        self.config = config
        self.tokenizer = tokenizer
        self.parameters = parameters
        self.parameterNames = layout.names
        self.source = source
        self.architecture = family
        self.layout = layout
        self.runtimeParameters = layout.runtimeParameters(parameters)
        self.weights = DecoderWeights(config: config, parameters: runtimeParameters)
    }

    /// Where this model's attention and MLP components live (`model.layers.3.mlp`, …).
    public var components: ComponentNames { architecture.components }

    /// A model with some parameters replaced (same names and shapes); the rest are shared.
    /// With `config`, the layout may grow (biases added by mean ablation): `replacements`
    /// must then hold every new tensor.
    public func replacing(_ replacements: [String: Tensor], config newConfig: ModelConfig? = nil) throws -> Model {
        var p = parameters
        for (k, v) in replacements { p[k] = v }
        let m = try Model(config: newConfig ?? config, tokenizer: tokenizer, parameters: p, source: source)
        m.isModified = true
        return m
    }

    /// SHA-256 of the model's weight file(s) (a GGUF file, or a folder's `*.safetensors` in
    /// name order), computed once; nil for a modified model or a source that is not on disk.
    public var fileSHA256: String? {
        guard !isModified else { return nil }
        if let h = hashCache.withLock({ $0 }) { return h }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDir) else { return nil }
        let files = isDir.boolValue
            ? ((try? FileManager.default.contentsOfDirectory(atPath: source)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted().map { source + "/" + $0 }
            : [source]
        guard !files.isEmpty, let h = try? SHA256.hex(ofFiles: files) else { return nil }
        hashCache.withLock { $0 = h }
        return h
    }

    /// What relevance maps and masks record about the model they were computed on.
    public var provenance: [String: String] {
        var p = ["model": source, "model_modified": String(isModified)]
        if let h = fileSHA256 { p["model_sha256"] = h }
        return p
    }

    /// Number of parameters stored (tied embeddings counted once).
    public var parameterCount: Int { parameters.values.reduce(0) { $0 + $1.count } }
}

public enum ModelError: Error, CustomStringConvertible {
    case missingParameter(String, String)
    case unexpectedParameter(String, String)
    case shapeMismatch(String, String, expected: [Int], found: [Int])
    case notInstalled(name: String, path: String)
    case notFound(String)
    case invalidInput(String)

    public var description: String {
        switch self {
        case .missingParameter(let f, let n): return "\(f): parameter \(n) is missing"
        case .unexpectedParameter(let f, let n): return "\(f): unexpected parameter \(n) for this architecture"
        case .shapeMismatch(let f, let n, let e, let s):
            return "\(f): parameter \(n) has shape \(s), but the config implies \(e)"
        case .notInstalled(let name, let path):
            return "model \"\(name)\" is not installed (looked for \(path)); install it with:\n    sparc install \(name)"
        case .notFound(let s):
            return "no model at \"\(s)\": give a .gguf file, a Hugging Face folder (config.json, *.safetensors, tokenizer.json) or an installed name (\(ModelRegistry.known.map(\.name).joined(separator: ", ")))"
        case .invalidInput(let m): return m
        }
    }
}
