import Foundation
import Testing
@testable import SparcCluster

@Suite("World: sharding and collectives")
struct WorldTests {
    @Test("shards cover 0..<count once, in order, sizes differing by at most one",
          arguments: [(0, 1), (1, 1), (7, 1), (7, 2), (7, 3), (8, 4), (2, 5), (0, 3), (1000, 7)])
    func shardsPartition(count: Int, size: Int) {
        let shards = (0..<size).map { World.shard(count, rank: $0, size: size) }
        #expect(shards.flatMap { Array($0) } == Array(0..<count))
        let sizes = shards.map(\.count)
        #expect(sizes.max()! - sizes.min()! <= 1)
        // The larger shards come first (uneven counts).
        #expect(sizes == sizes.sorted(by: >))
    }

    @Test("fewer items than ranks: the last ranks get empty shards")
    func fewerItemsThanRanks() {
        #expect(World.shard(2, rank: 0, size: 4) == 0..<1)
        #expect(World.shard(2, rank: 1, size: 4) == 1..<2)
        #expect(World.shard(2, rank: 2, size: 4).isEmpty)
        #expect(World.shard(2, rank: 3, size: 4).isEmpty)
    }

    @Test("float sums are the float64 sums of every rank's values, on every rank")
    func floatSums() throws {
        let n = 10
        let results = try InProcessGroup.run(size: 3) { world -> [Float] in
            var values = (0..<n).map { Float($0) * Float(world.rank + 1) + 0.25 }
            try values.withUnsafeMutableBufferPointer { try world.sum($0) }
            return values
        }
        let expected = (0..<n).map { Float($0) * 6 + 0.75 }
        for r in results { #expect(r == expected) }
    }

    @Test("sums longer than one chunk")
    func chunkedSums() throws {
        let n = World.chunk + 5
        let results = try InProcessGroup.run(size: 2) { world -> [Double] in
            var values = [Double](repeating: Double(world.rank + 1), count: n)
            try world.sum(&values)
            return [values.first!, values[World.chunk - 1], values[World.chunk], values.last!]
        }
        for r in results { #expect(r == [3, 3, 3, 3]) }
    }

    @Test("gather concatenates in rank order, also with empty parts and infinities")
    func gatherOrder() throws {
        let results = try InProcessGroup.run(size: 4) { world -> [Double] in
            let mine: [Double] = world.rank == 2 ? [] : [Double(world.rank), world.rank == 3 ? .infinity : -0.5]
            return try world.gather(mine)
        }
        for r in results { #expect(r == [0, -0.5, 1, -0.5, 3, .infinity]) }
    }

    @Test("map evaluates each item once and returns all in order", arguments: [1, 2, 3, 5])
    func mapOrder(size: Int) throws {
        let counter = Counter()
        let results = try InProcessGroup.run(size: size) { world -> [Int] in
            try world.map(7) { i in counter.add(); return i * i }
        }
        for r in results { #expect(r == (0..<7).map { $0 * $0 }) }
        #expect(counter.value == 7)
    }

    @Test("a process started by no launcher stays alone")
    func noLauncher() throws {
        #expect(World.launch(environment: ["HOME": "/root"]) == nil)
        let world = try World.join(environment: [:])
        #expect(world.rank == 0 && world.size == 1 && world.isRoot)
    }

    @Test("launchers are recognised by their environment")
    func launchers() {
        let openMPI = World.launch(environment: ["OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"])
        #expect(openMPI == World.Launch(rank: 1, size: 4, localSize: 2))
        let hydra = World.launch(environment: ["PMI_RANK": "0", "PMI_SIZE": "2", "MPI_LOCALNRANKS": "2"])
        #expect(hydra == World.Launch(rank: 0, size: 2, localSize: 2))
        let pmix = World.launch(environment: ["PMIX_RANK": "3"])
        #expect(pmix == World.Launch(rank: 3, size: nil, localSize: nil))
    }

    @Test("a launcher without a loadable MPI library is a clear error")
    func missingLibrary() {
        #expect {
            _ = try World.join(environment: ["OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2",
                                             "SPARC_MPI_LIBRARY": "/nonexistent/libmpi.so"])
        } throws: { error in
            "\(error)".contains("no MPI library loads") && "\(error)".contains("/nonexistent/libmpi.so")
        }
    }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

@Suite("World: batch shards")
struct BatchShardTests {
    @Test("whole batches per rank, covering every item once", arguments: [(10, 4, 2), (10, 4, 3), (16, 8, 2), (3, 8, 2), (0, 8, 3), (9, 1, 4)])
    func wholeBatches(count: Int, batch: Int, size: Int) throws {
        let shards = try InProcessGroup.run(size: size) { world in world.shard(batches: count, of: batch) }
        #expect(shards.flatMap { Array($0) } == Array(0..<count))
        for s in shards where !s.isEmpty && s.upperBound != count { #expect(s.count % batch == 0) }
        for s in shards where !s.isEmpty { #expect(s.lowerBound % batch == 0) }
    }
}
