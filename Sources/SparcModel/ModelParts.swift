import Foundation

// Named parts of a model, for restricting relevance maps and masks (`only(r, "mlp")`):
// the paper searches circuits inside the MLP weights only (Hatefi et al. 2025, App. E)
// and corrects behaviours through fc1 neurons (App. F). A name means the same part in
// every family — "fc1" is Llama's gate and up projections, OPT's fc1 and GPT-2's c_fc —
// and is resolved from checkpoint names alone, so maps and masks loaded from files can be
// restricted without their model.

public enum ModelPart: String, CaseIterable, Sendable {
    /// q, k, v and the output projection (weights and biases).
    case attention
    /// Every MLP projection (weights and biases).
    case mlp
    /// The MLP's input projections: gate and up (Llama), fc1 (OPT), c_fc (GPT-2).
    case fc1
    /// The MLP's output projection: down (Llama), fc2 (OPT), mlp.c_proj (GPT-2).
    case fc2
    case q, k, v, o, gate, up, down
    /// The ParameterGroups of `attribute(parameters:)`.
    case linear, biases, norms, embeddings, head

    /// The runtime roles this part consists of.
    public var roles: Set<ParameterRole> {
        switch self {
        case .attention: return [.query, .queryBias, .key, .keyBias, .value, .valueBias, .output, .outputBias]
        case .mlp: return [.gate, .gateBias, .up, .upBias, .down, .downBias]
        case .fc1: return [.gate, .gateBias, .up, .upBias]
        case .fc2: return [.down, .downBias]
        case .q: return [.query, .queryBias]
        case .k: return [.key, .keyBias]
        case .v: return [.value, .valueBias]
        case .o: return [.output, .outputBias]
        case .gate: return [.gate, .gateBias]
        case .up: return [.up, .upBias]
        case .down: return [.down, .downBias]
        case .linear: return Set(ParameterRole.allCases.filter { $0.group == .linear })
        case .biases: return Set(ParameterRole.allCases.filter { $0.group == .biases })
        case .norms: return Set(ParameterRole.allCases.filter { $0.group == .norms })
        case .embeddings: return Set(ParameterRole.allCases.filter { $0.group == .embeddings })
        case .head: return Set(ParameterRole.allCases.filter { $0.group == .head })
        }
    }

    /// The component kinds (neuron and head maps) this part covers: an MLP unit is a row of
    /// fc1 and a column of fc2, so both name it.
    public var componentKinds: Set<ComponentNames.Kind> {
        switch self {
        case .attention, .o: return [.attention]
        case .mlp, .fc1, .fc2: return [.mlp]
        default: return []
        }
    }

    /// Whether the map or mask key `name` (a checkpoint tensor or a component) belongs to
    /// this part, in whichever registered family names it so.
    public func contains(_ name: String) -> Bool {
        let pattern = ModelParts.pattern(name)
        if let kind = ModelParts.table.components[pattern] { return componentKinds.contains(kind) }
        guard let roles = ModelParts.table.tensors[pattern] else { return false }
        return roles.allSatisfy(self.roles.contains)
    }
}

public enum ModelParts {
    /// A key with its layer indices replaced by `#` (`model.layers.#.mlp.up_proj.weight`).
    static func pattern(_ name: String) -> String {
        name.split(separator: ".", omittingEmptySubsequences: false)
            .map { $0.allSatisfy(\.isNumber) && !$0.isEmpty ? "#" : String($0) }.joined(separator: ".")
    }

    /// Every family's checkpoint-name and component-name patterns, from the layout of a
    /// small config with every optional tensor switched on.
    static let table: (tensors: [String: [ParameterRole]], components: [String: ComponentNames.Kind]) = {
        var tensors: [String: [ParameterRole]] = [:], components: [String: ComponentNames.Kind] = [:]
        for family in Architectures.all {
            for projected in [false, true] {
                var c = ModelConfig(vocabSize: 8, hiddenSize: 8, intermediateSize: 16, numLayers: 1, numHeads: 2, numKVHeads: 2)
                c.architecture = family.modelTypes[0]
                c.queryKeyValueBias = true
                c.attentionOutputBias = true
                c.mlpBias = true
                if projected { c.embeddingSize = 4 }
                for t in family.layout(c).tensors { tensors[pattern(t.name)] = t.pieces.map(\.key.role) }
            }
            components[pattern(family.components.attention(0))] = .attention
            components[pattern(family.components.mlp(0))] = .mlp
        }
        return (tensors, components)
    }()

    /// A filter on map and mask keys: a part name (`"mlp"`, `"fc1"`, `"attention"`, …) or
    /// else a regular expression searched in the key (`"layers\\.(3|4)\\."`).
    public static func filter(_ spec: String) throws -> @Sendable (String) -> Bool {
        if let part = ModelPart(rawValue: spec.lowercased()) { return { part.contains($0) } }
        let regex: Regex<AnyRegexOutput>
        do { regex = try Regex(spec) } catch {
            throw ModelError.invalidInput("\"\(spec)\" is neither a part (\(ModelPart.allCases.map(\.rawValue).joined(separator: ", "))) nor a valid regular expression: \(error)")
        }
        nonisolated(unsafe) let r = regex
        return { (try? r.firstMatch(in: $0)) != nil }
    }
}
