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
    /// What the linear layers' accumulators hold (`parameters` of `ParameterRole.isLinearWeight`
    /// keys); other parameters always sum ∂θ.
    public let linearFold: WeightGradientFold
    /// Where each sample's rows start in the batch, and the rows' end (`ActivationTrace.starts`):
    /// per-sample |·| folds take one ∂W per sample. Empty: the batch is one sample.
    public var sampleStarts: [Int] = []
    /// Linear layers' ∂W before they are folded in (reused across layers and batches).
    private var foldScratch = Tensor(zeros: [0])
    /// Room for ∂W of several samples at once (per-sample |·|), within cache-friendly bounds.
    static let scratchBytes = 32 << 20

    public init(wanted: Set<ParameterKey> = [], wantNeurons: Bool = false, wantResiduals: Bool = false,
                linearFold: WeightGradientFold = .sum) {
        self.wanted = wanted
        self.wantNeurons = wantNeurons
        self.wantResiduals = wantResiduals
        self.linearFold = linearFold
    }

    /// A fresh set for the next sample that keeps the linear layers' accumulators, when they
    /// fold per-sample quantities (|W ⊙ ∂W| summed over samples) rather than sum gradients.
    public func nextSample() -> Gradients {
        let next = Gradients(wanted: wanted, wantNeurons: wantNeurons, wantResiduals: wantResiduals, linearFold: linearFold)
        next.parameters = parameters.filter { $0.key.role.isLinearWeight }
        next.foldScratch = foldScratch
        next.sampleStarts = sampleStarts
        return next
    }

    @inline(__always) func wants(_ key: ParameterKey) -> Bool { !wanted.isEmpty && wanted.contains(key) }

    /// The accumulator of `key`, created on first use (zeroed unless `uninitialized`, for
    /// callers that overwrite it whole the first time): its pointer and whether it is new.
    func buffer(_ key: ParameterKey, shape: [Int], uninitialized: Bool = false) -> (UnsafeMutablePointer<Float>, Bool) {
        let first = parameters[key] == nil
        if first { parameters[key] = uninitialized ? Tensor(unsafeUninitializedShape: shape) : Tensor(zeros: shape) }
        return (parameters[key]!.withUnsafeMutableBufferPointer { $0.baseAddress! }, first)
    }

    /// The row range of each sample among `rows` rows.
    func sampleRows(_ rows: Int) -> [Range<Int>] {
        guard sampleStarts.count > 2 else { return [0..<rows] }
        precondition(sampleStarts.last == rows, "sample starts \(sampleStarts) do not cover \(rows) rows")
        return zip(sampleStarts, sampleStarts.dropFirst()).map { $0..<$1 }
    }

    /// Scratch room for `count` floats (contents undefined).
    func scratch(_ count: Int) -> UnsafeMutablePointer<Float> {
        if foldScratch.count < count { foldScratch = Tensor(unsafeUninitializedShape: [count]) }
        return mutablePointer(&foldScratch)
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

/// How each backward's weight gradient ∂W of a linear layer enters its accumulator:
/// acc += scale · f(∂W) with f(∂W) = ∂W, W ⊙ ∂W (Gradient×Input: AttnLRP's weight relevance),
/// or their absolute values (per-sample |R|: one ∂W per sample of the batch, `sampleStarts`).
///
/// Folding right after ∂W's product, while ∂W and W are still in cache (the input gradient
/// has just read W), replaces a pass over every relevance at the end (106 M values of SmolLM2:
/// ~1.3 GB of memory traffic) and per-sample |R|'s pass after each sample.
public struct WeightGradientFold: Sendable, Equatable {
    public var timesWeight: Bool
    public var absolute: Bool
    /// 1/N for a mean over N samples (applied per batch, so no pass is left for the end).
    public var scale: Float

    public init(timesWeight: Bool, absolute: Bool, scale: Float) {
        self.timesWeight = timesWeight
        self.absolute = absolute
        self.scale = scale
    }

    /// Σ ∂W, the plain gradient.
    public static let sum = WeightGradientFold(timesWeight: false, absolute: false, scale: 1)

    /// Whether ∂W must go through a scratch buffer (the others scale inside the product).
    var needsScratch: Bool { timesWeight || absolute }
}

extension ParameterRole {
    /// The weight matrices of `Linear` layers: their gradients follow `Gradients.linearFold`.
    public var isLinearWeight: Bool {
        switch self {
        case .query, .key, .value, .output, .gate, .up, .down, .projectIn, .projectOut: return true
        default: return false
        }
    }
}

/// The buffer of a tensor this code owns uniquely (made unique first, so the pointer is
/// stable while the tensor lives and is not copied).
@inline(__always)
func mutablePointer(_ t: inout Tensor) -> UnsafeMutablePointer<Float> {
    t.withUnsafeMutableBufferPointer { $0.baseAddress! }
}
