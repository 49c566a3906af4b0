import SparcTensor

/// The runtime's view of a model's parameters: ops bound to their tensors (runtime
/// layout), resolved once from the typed parameter dictionary.
struct DecoderWeights: @unchecked Sendable {
    struct Block {
        let attentionNorm: Norm
        let query, key, value, output: Linear
        /// Per-head q and k norms (Gemma 3), over rows of head_dim.
        let queryNorm, keyNorm: Norm?
        /// Norms of the sublayer outputs before the residual adds (Gemma).
        let attentionPostNorm: Norm?
        let mlpNorm: Norm
        let mlp: MLP
        let mlpPostNorm: Norm?
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
    /// Those of sliding-window layers, where they have their own base (Gemma 3).
    let localInverseFrequencies: [Float]?
    let attention: Attention
    /// √hidden_size for Gemma.
    let embeddingScale: Float?

    /// `p` holds every parameter the config's layout names (checked by `Model.init`).
    init(config c: ModelConfig, parameters p: [ParameterKey: Tensor]) {
        let eps = Float(c.normEps)
        func t(_ role: ParameterRole, _ l: Int? = nil) -> Tensor? { p[ParameterKey(role, layer: l)] }
        func linear(_ role: ParameterRole, _ l: Int?) -> Linear {
            Linear(weight: t(role, l)!, bias: role.biasRole.flatMap { t($0, l)?.float32() }, key: ParameterKey(role, layer: l))
        }
        func norm(_ role: ParameterRole, _ l: Int?) -> Norm {
            // Gemma's RMSNorm scales by 1 + w: the op gets the scale, the key stays w's.
            // Vectors are read through their pointers: Float32 (the loader widens them anyway).
            let w = t(role, l)!.float32(), offset = c.normWeightOffset
            let scale = offset == 0 ? w : Tensor(shape: w.shape, values: w.scalars.map { offset + $0 })
            return Norm(kind: c.norm, weight: scale, bias: role.biasRole.flatMap { t($0, l)?.float32() }, eps: eps, key: ParameterKey(role, layer: l))
        }
        tokenEmbedding = t(.embedding)!
        positionEmbedding = t(.positions)
        projectIn = t(.projectIn) == nil ? nil : linear(.projectIn, nil)
        blocks = (0..<c.numLayers).map { l in
            Block(attentionNorm: norm(.attentionNorm, l),
                  query: linear(.query, l), key: linear(.key, l), value: linear(.value, l), output: linear(.output, l),
                  queryNorm: c.queryKeyNorm ? norm(.queryNorm, l) : nil, keyNorm: c.queryKeyNorm ? norm(.keyNorm, l) : nil,
                  attentionPostNorm: c.postSublayerNorms ? norm(.attentionPostNorm, l) : nil,
                  mlpNorm: norm(.mlpNorm, l),
                  mlp: MLP(gate: c.gatedMLP ? linear(.gate, l) : nil, up: linear(.up, l), down: linear(.down, l),
                           activation: c.activation),
                  mlpPostNorm: c.postSublayerNorms ? norm(.mlpPostNorm, l) : nil)
        }
        finalNorm = c.finalNorm ? norm(.finalNorm, nil) : nil
        projectOut = t(.projectOut) == nil ? nil : linear(.projectOut, nil)
        head = c.tieWordEmbeddings ? tokenEmbedding : t(.head)!
        inverseFrequencies = c.positions == .rotary ? RopeTable.inverseFrequencies(c) : nil
        if let local = c.localRopeTheta, c.positions == .rotary {
            // Gemma 3's local rotary embedding: its own base, default (unscaled) frequencies.
            var lc = c
            lc.ropeTheta = local
            lc.ropeScaling = .none
            localInverseFrequencies = RopeTable.inverseFrequencies(lc)
        } else {
            localInverseFrequencies = nil
        }
        let windows: [Int?] = (0..<c.numLayers).map { l in
            l < c.slidingLayers.count && c.slidingLayers[l] ? c.slidingWindow : nil
        }
        attention = Attention(heads: c.numHeads, kvHeads: c.numKVHeads, headDim: c.headDim,
                              scale: c.queryPreAttentionScalar.map { Float(1 / $0.squareRoot()) }, windows: windows)
        embeddingScale = c.embeddingScale
    }
}
