import SparcTensor

/// The runtime's view of a model's parameters: ops bound to their tensors (runtime
/// layout), resolved once from the typed parameter dictionary.
struct DecoderWeights: @unchecked Sendable {
    struct Block {
        let attentionNorm: Norm
        let query, key, value, output: Linear
        let mlpNorm: Norm
        let mlp: MLP
    }

    let tokenEmbedding: Tensor
    /// Learned positions `[positions, hidden]` (GPT-2, OPT).
    let positionEmbedding: Tensor?
    let projectIn: Linear?
    let blocks: [Block]
    let finalNorm: Norm?
    let projectOut: Linear?
    /// The output projection `[vocab, embedding]`: the head, or the token embeddings when tied.
    let head: Tensor
    /// RoPE inverse frequencies, for rotary models.
    let inverseFrequencies: [Float]?
    let attention: Attention

    /// `p` holds every parameter the config's layout names (checked by `Model.init`).
    init(config c: ModelConfig, parameters p: [ParameterKey: Tensor]) {
        let eps = Float(c.normEps)
        func t(_ role: ParameterRole, _ l: Int? = nil) -> Tensor? { p[ParameterKey(role, layer: l)] }
        func linear(_ role: ParameterRole, _ l: Int?) -> Linear {
            Linear(weight: t(role, l)!, bias: role.biasRole.flatMap { t($0, l) }, key: ParameterKey(role, layer: l))
        }
        func norm(_ role: ParameterRole, _ l: Int?) -> Norm {
            Norm(kind: c.norm, weight: t(role, l)!, bias: role.biasRole.flatMap { t($0, l) }, eps: eps, key: ParameterKey(role, layer: l))
        }
        tokenEmbedding = t(.embedding)!
        positionEmbedding = t(.positions)
        projectIn = t(.projectIn) == nil ? nil : linear(.projectIn, nil)
        blocks = (0..<c.numLayers).map { l in
            Block(attentionNorm: norm(.attentionNorm, l),
                  query: linear(.query, l), key: linear(.key, l), value: linear(.value, l), output: linear(.output, l),
                  mlpNorm: norm(.mlpNorm, l),
                  mlp: MLP(gate: c.gatedMLP ? linear(.gate, l) : nil, up: linear(.up, l), down: linear(.down, l),
                           activation: c.activation))
        }
        finalNorm = c.finalNorm ? norm(.finalNorm, nil) : nil
        projectOut = t(.projectOut) == nil ? nil : linear(.projectOut, nil)
        head = c.tieWordEmbeddings ? tokenEmbedding : t(.head)!
        inverseFrequencies = c.positions == .rotary ? RopeTable.inverseFrequencies(c) : nil
        attention = Attention(heads: c.numHeads, kvHeads: c.numKVHeads, headDim: c.headDim)
    }
}
