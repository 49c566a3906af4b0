import SparcTensor

/// Activations of one forward pass, kept for a hand-written backward pass (attribution).
/// Rows are the tokens of all sequences stacked, as in the forward pass.
public final class ActivationTrace: @unchecked Sendable {
    public struct Layer: Sendable {
        /// Residual stream entering the layer `[n, d]`.
        public var residualIn = Tensor(zeros: [0])
        /// RMSNorm output feeding q/k/v `[n, d]`, and each row's 1/rms.
        public var attentionNormOut = Tensor(zeros: [0])
        public var attentionNormScale: [Float] = []
        /// Queries and keys after RoPE, values: `[n, heads·headDim]`, `[n, kvHeads·headDim]`.
        public var queries = Tensor(zeros: [0]), keys = Tensor(zeros: [0]), values = Tensor(zeros: [0])
        /// Attention probabilities per sequence: `[heads, rows, rows]`.
        public var probabilities: [Tensor] = []
        /// Attention output before o_proj `[n, heads·headDim]`.
        public var attentionOut = Tensor(zeros: [0])
        /// Residual stream after attention `[n, d]`.
        public var residualMid = Tensor(zeros: [0])
        public var mlpNormOut = Tensor(zeros: [0])
        public var mlpNormScale: [Float] = []
        /// gate_proj and up_proj outputs, and SiLU(gate)·up (down_proj's input): `[n, intermediate]`.
        public var gate = Tensor(zeros: [0]), up = Tensor(zeros: [0]), product = Tensor(zeros: [0])
    }

    public private(set) var tokens: [[Int]] = []
    /// Row offset of each sequence (and the total row count last).
    public private(set) var starts: [Int] = []
    public private(set) var rope: RopeTable?
    public internal(set) var layers: [Layer]
    /// Residual stream after the last layer and the final norm's 1/rms per row.
    public internal(set) var finalResidual = Tensor(zeros: [0])
    public internal(set) var finalNormScale: [Float] = []

    public init(layers: Int) { self.layers = [Layer](repeating: Layer(), count: layers) }

    /// Starts a trace; the attention probabilities are allocated up front because the
    /// heads write them concurrently.
    func begin(tokens: [[Int]], starts: [Int], rope: RopeTable, heads: Int) {
        self.tokens = tokens
        self.starts = starts
        self.rope = rope
        for l in layers.indices {
            layers[l].probabilities = tokens.map { Tensor(zeros: [heads, $0.count, $0.count]) }
        }
    }

    /// Copies a buffer into layer `l`'s field.
    func record(_ l: Int, _ field: WritableKeyPath<Layer, Tensor>, _ src: UnsafePointer<Float>, _ shape: [Int]) {
        layers[l][keyPath: field] = Tensor(shape: shape) { $0.baseAddress!.update(from: src, count: $0.count) }
    }

    /// Called from concurrent head jobs: each writes its own `[rows, rows]` slice of a
    /// buffer this trace alone owns.
    func recordProbabilities(layer: Int, sequence: Int, head: Int, _ p: UnsafePointer<Float>, rows: Int, total: Int) {
        precondition(rows == total, "traces are taken without a KV cache")
        (layers[layer].probabilities[sequence].storage.pointer + head * rows * rows).update(from: p, count: rows * rows)
    }

    func recordFinal(_ src: UnsafePointer<Float>, _ shape: [Int]) {
        finalResidual = Tensor(shape: shape) { $0.baseAddress!.update(from: src, count: $0.count) }
    }
}
