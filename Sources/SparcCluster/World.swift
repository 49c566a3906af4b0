import Foundation

/// The processes running one sparc script together: rank `rank` of `size`. Alone, a
/// world of one; under `mpirun -np N` (or Slurm's `srun`), MPI_COMM_WORLD. Work that is
/// a sum over samples is sharded with `shard` and combined with `sum`; independent
/// evaluations are split with `map`. Everything else runs on every rank alike (SPMD), and
/// only rank 0 prints or writes files.
public struct World: Sendable {
    public let communicator: any Communicator
    public var rank: Int { communicator.rank }
    public var size: Int { communicator.size }
    /// Rank 0 speaks for the job: it alone prints and writes.
    public var isRoot: Bool { rank == 0 }

    public init(_ communicator: any Communicator) { self.communicator = communicator }

    public static let single = World(SingleProcess())

    // MARK: the world of this process

    nonisolated(unsafe) private static var installed = World.single
    private static let lock = NSLock()

    /// The world library code uses by default: `single` until the CLI joins a job.
    public static var current: World { lock.withLock { installed } }
    public static func use(_ world: World) { lock.withLock { installed = world } }

    /// The launcher's view of this process, from its environment: Open MPI's `mpirun`
    /// (OMPI_COMM_WORLD_*), MPICH's Hydra and Slurm (PMI_*), PMIx launchers (PMIX_RANK).
    /// nil when no launcher started it.
    public struct Launch: Equatable, Sendable {
        public let rank: Int?
        public let size: Int?
        /// Ranks on this machine, to split its cores between them.
        public let localSize: Int?
    }

    public static func launch(environment: [String: String]) -> Launch? {
        func int(_ keys: String...) -> Int? { keys.lazy.compactMap { environment[$0].flatMap { Int($0) } }.first }
        let rank = int("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")
        guard rank != nil || environment["OMPI_COMM_WORLD_SIZE"] != nil || environment["PMI_SIZE"] != nil else { return nil }
        return Launch(rank: rank, size: int("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"),
                      localSize: int("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"))
    }

    /// Joins the MPI job this process was launched into, or stays alone when none.
    /// A launcher without a loadable MPI library is an error: running N unaware copies
    /// would do the work N times and write every file N times.
    public static func join(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> World {
        guard launch(environment: environment) != nil else { return .single }
        return World(try MPICommunicator(environment: environment))
    }

    // MARK: splitting work

    /// The contiguous block of `0..<count` this rank handles: the first `count % size`
    /// ranks take one item more; ranks beyond `count` get an empty range.
    public func shard(_ count: Int) -> Range<Int> { World.shard(count, rank: rank, size: size) }

    public static func shard(_ count: Int, rank: Int, size: Int) -> Range<Int> {
        precondition(size >= 1 && rank >= 0 && rank < size && count >= 0)
        let base = count / size, extra = count % size
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// The items of this rank's shard of `count` items taken in batches of `batch`: whole
    /// batches are dealt out, so every batch is the one a single process would run.
    public func shard(batches count: Int, of batch: Int) -> Range<Int> {
        precondition(batch >= 1)
        let mine = shard((count + batch - 1) / batch)
        return min(count, mine.lowerBound * batch)..<min(count, mine.upperBound * batch)
    }

    /// Values to combine are summed in float64 in chunks of this many (8 MiB of doubles),
    /// so a 106 M-float map needs no second copy of itself; Open MPI's shared-memory
    /// all-reduce measured faster on 8 MiB pieces than on 32 MiB ones (docs/SCALING.md).
    static let chunk = 1 << 20

    /// buffer[i] = Σ over ranks, in place, added in float64: the sum of N partial sums
    /// differs from one process's running sum only by float32 rounding of the partials.
    public func sum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard size > 1, buffer.count > 0 else { return }
        var scratch = [Double](repeating: 0, count: min(World.chunk, buffer.count))
        for start in stride(from: 0, to: buffer.count, by: World.chunk) {
            let n = min(World.chunk, buffer.count - start)
            try scratch.withUnsafeMutableBufferPointer { d in
                for i in 0..<n { d[i] = Double(buffer[start + i]) }
                try communicator.allReduceSum(UnsafeMutableBufferPointer(rebasing: d[0..<n]))
                for i in 0..<n { buffer[start + i] = Float(d[i]) }
            }
        }
    }

    public func sum(_ values: inout [Double]) throws {
        guard size > 1, !values.isEmpty else { return }
        try values.withUnsafeMutableBufferPointer { p in
            for start in stride(from: 0, to: p.count, by: World.chunk) {
                try communicator.allReduceSum(UnsafeMutableBufferPointer(rebasing: p[start..<min(start + World.chunk, p.count)]))
            }
        }
    }

    public func sum(_ value: Int) throws -> Int {
        var v = [Double(value)]
        try sum(&v)
        return Int(v[0])
    }

    /// Every rank's items, concatenated in rank order (with `shard`, the original order).
    public func gather<T: Codable>(_ local: [T]) throws -> [T] {
        guard size > 1 else { return local }
        let encoder = JSONEncoder()
        // Perplexities and KL divergences can be infinite; JSON has no spelling for it.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let parts = try communicator.allGather([UInt8](try encoder.encode(local)))
        return try parts.flatMap { try decoder.decode([T].self, from: Data($0)) }
    }

    /// `body(i)` for every i in 0..<count, each computed on one rank (contiguous shards),
    /// the results on every rank in order: for independent evaluations (sweep points).
    /// `done` is told how many of all `count` items are finished (`progress`).
    public func map<T: Codable>(_ count: Int, done: (Int) -> Void = { _ in }, _ body: (Int) throws -> T) throws -> [T] {
        var local: [T] = []
        for i in shard(count) {
            local.append(try body(i))
            done(progress(local.count, of: count))
        }
        return try gather(local)
    }

    /// How many of `total` items the job has done when this rank has done `local` of its
    /// shard: ranks advance alike, so this rank's count times the ranks, at most the total
    /// (what rank 0's progress bar shows).
    public func progress(_ local: Int, of total: Int) -> Int { min(total, local * size) }
}
