import SparcTensor

/// Activations of one forward pass, kept for the backward pass (attribution): what each
/// op's forward saved, per block. Rows are the tokens of all sequences stacked.
public final class ActivationTrace: @unchecked Sendable {
    public struct Layer {
        /// Residual stream entering the block `[n, d]`.
        public internal(set) var residualIn = Tensor(zeros: [0])
        var attentionNorm: Norm.Saved?
        var queryNorm: Norm.Saved?, keyNorm: Norm.Saved?
        var attention = Attention.Saved()
        var attentionPostNorm: Norm.Saved?
        var mlpNorm: Norm.Saved?
        var mlp = MLP.Saved()
        var mlpPostNorm: Norm.Saved?

        /// The output projection's input `[n, heads·headDim]` (attention channels).
        public var attentionOutput: Tensor { attention.output }
        /// The attention sublayer's input, q/k/v's input (normed in pre-norm blocks) `[n, d]`.
        public internal(set) var attentionInput = Tensor(zeros: [0])
        /// The MLP's input `[n, d]` and its output projection's input (the neurons) `[n, f]`.
        public var mlpInput: Tensor { mlp.input }
        public var mlpProduct: Tensor { mlp.product }
    }

    public private(set) var tokens: [[Int]] = []
    /// Row offset of each sequence (and the total row count last).
    public private(set) var starts: [Int] = []
    /// Each row's position (what learned position tables and RoPE read).
    public internal(set) var positions: [Int] = []
    public internal(set) var layers: [Layer]
    /// Token embeddings `[n, embedding]` (token relevance: embeddings ⊙ their gradient).
    public internal(set) var tokenEmbeddings = Tensor(zeros: [0])
    /// The learned position rows added to the first block's input `[n, d]`.
    public internal(set) var positionEmbeddings: Tensor?
    var rope: RopeTable?
    /// Sliding-window layers' table, where they have their own base (Gemma 3).
    var localRope: RopeTable?
    var projectInInput = Tensor(zeros: [0])
    var finalNorm: Norm.Saved?
    /// Residual stream after the last block `[n, d]`.
    public internal(set) var finalResidual = Tensor(zeros: [0])
    var projectOutInput = Tensor(zeros: [0])
    /// The output head's input `[n, embedding]`, every row.
    public internal(set) var headInput = Tensor(zeros: [0])

    /// Whether a long input may keep only each block's input, the backward running the block
    /// again (only for traces that `backward` alone reads: Wanda's and mean ablation's
    /// statistics read every block's activations).
    let mayRecompute: Bool
    /// Whether this trace keeps each block's input alone (`residualIn`): set when the
    /// activations would exceed `storedActivationLimit`.
    public private(set) var recomputesBlocks = false

    /// Traces keep every block's activations up to this many bytes (SmolLM2: about 1000
    /// tokens); longer inputs of a trace that may recompute keep the block inputs alone,
    /// which costs one more forward pass of the blocks in the backward. Task-local, so that
    /// a caller (a test) can lower it for its own traces alone.
    @TaskLocal public static var storedActivationLimit = 1 << 30

    public init(layers: Int, mayRecompute: Bool = false) {
        self.layers = [Layer](repeating: Layer(), count: layers)
        self.mayRecompute = mayRecompute
    }

    /// Whether `layers` layers' attention probabilities of this trace's sequences fit in
    /// `Attention.storedProbabilityLimit`.
    func keepsProbabilities(of heads: Int, layers: Int) -> Bool {
        // In Double: layers × heads × Σ rows² overflows Int for long inputs of a wide model.
        let bytes = Double(layers) * Double(heads) * tokens.reduce(0.0) { $0 + Double($1.count) * Double($1.count) } * 4
        return bytes <= Double(Attention.storedProbabilityLimit)
    }

    /// Starts a trace. The attention probabilities are allocated up front because the heads
    /// write them concurrently — unless they would exceed `Attention.storedProbabilityLimit`,
    /// and the backward recomputes them; checkpointed traces allocate them per recomputed block.
    func begin(tokens: [[Int]], starts: [Int], heads: Int, activationBytes: Double) {
        self.tokens = tokens
        self.starts = starts
        recomputesBlocks = mayRecompute && activationBytes > Double(Self.storedActivationLimit)
        let keep = !recomputesBlocks && keepsProbabilities(of: heads, layers: layers.count)
        for l in layers.indices {
            // Written whole by the attention forward (`Attention.forward`).
            layers[l].attention.probabilities = keep ? tokens.map { Tensor(unsafeUninitializedShape: [heads, $0.count, $0.count]) } : []
        }
    }
}
