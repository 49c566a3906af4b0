import SparcTensor

/// What a backward pass accumulates, across the batches of one attribution.
public final class Gradients: @unchecked Sendable {
    /// Σ over tokens (and batches) of ∂f/∂θ for each wanted parameter, in the runtime layout.
    public var parameters: [ParameterKey: Tensor] = [:]
    /// Which parameters' gradients to accumulate.
    public let wanted: Set<ParameterKey>
    /// Gradient at the token embeddings' output `[n, embedding]` (token relevance).
    public var tokenEmbeddings = Tensor(zeros: [0])
    /// Gradient at the first block's input `[n, hidden]` (position relevance of learned positions).
    public var blockInput = Tensor(zeros: [0])
    /// Gradient at each block's input (hidden-level relevance), when `wantResiduals`.
    public var residuals: [Tensor] = []
    /// Σ over tokens of activation ⊙ gradient at the MLP's output projection input
    /// `[layers][intermediate]` and at the attention output projection's input
    /// `[layers][heads·headDim]` (neuron relevances), when `wantNeurons`.
    public var mlpUnits: [Tensor] = []
    public var attentionChannels: [Tensor] = []
    public let wantNeurons: Bool
    public let wantResiduals: Bool

    public init(wanted: Set<ParameterKey> = [], wantNeurons: Bool = false, wantResiduals: Bool = false) {
        self.wanted = wanted
        self.wantNeurons = wantNeurons
        self.wantResiduals = wantResiduals
    }

    @inline(__always) func wants(_ key: ParameterKey) -> Bool { !wanted.isEmpty && wanted.contains(key) }

    /// The accumulator of `key`, created on first use (zeroed unless `uninitialized`, for
    /// callers that overwrite it whole the first time): its pointer and whether it is new.
    func buffer(_ key: ParameterKey, shape: [Int], uninitialized: Bool = false) -> (UnsafeMutablePointer<Float>, Bool) {
        let first = parameters[key] == nil
        if first { parameters[key] = uninitialized ? Tensor(unsafeUninitializedShape: shape) : Tensor(zeros: shape) }
        return (parameters[key]!.withUnsafeMutableBufferPointer { $0.baseAddress! }, first)
    }

    /// r[j] += Σ_rows a[row, j] · g[row, j].
    static func accumulateProducts(_ a: UnsafePointer<Float>, _ g: UnsafePointer<Float>, rows: Int, width: Int, into r: inout Tensor) {
        if r.count != width { r = Tensor(zeros: [width]) }
        let R = r.withUnsafeMutableBufferPointer { $0.baseAddress! }
        Parallel.forRanges(width, minChunk: 64) { cols in
            for i in 0..<rows { for j in cols { R[j] += a[i * width + j] * g[i * width + j] } }
        }
    }
}

/// The buffer of a tensor this code owns uniquely (made unique first, so the pointer is
/// stable while the tensor lives and is not copied).
@inline(__always)
func mutablePointer(_ t: inout Tensor) -> UnsafeMutablePointer<Float> {
    t.withUnsafeMutableBufferPointer { $0.baseAddress! }
}
