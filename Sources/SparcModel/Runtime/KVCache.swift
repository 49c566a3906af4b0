import SparcTensor

/// Keys and values of past positions for one sequence, per layer: `[capacity, kvHeads·headDim]`.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public private(set) var length = 0
    let keys: [Tensor]
    let values: [Tensor]

    public convenience init(config: ModelConfig, capacity: Int) {
        self.init(config: config, capacity: capacity, layers: 0..<config.numLayers)
    }

    /// A cache with room in the given layers only (a block run again for a checkpointed trace).
    init(config: ModelConfig, capacity: Int, layers: Range<Int>) {
        self.capacity = capacity
        let kvDim = config.numKVHeads * config.headDim
        keys = (0..<config.numLayers).map { Tensor(zeros: [layers.contains($0) ? capacity : 0, kvDim]) }
        values = (0..<config.numLayers).map { Tensor(zeros: [layers.contains($0) ? capacity : 0, kvDim]) }
    }

    func advance(by n: Int) { length += n }

    /// Forgets everything after the first `n` positions.
    public func truncate(to n: Int) { length = min(length, max(0, n)) }
}
