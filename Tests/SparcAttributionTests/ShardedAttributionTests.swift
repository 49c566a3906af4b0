import Foundation
import SparcCluster
import Testing
@testable import SparcAttribution
import SparcModel
import SparcTensor

/// Attribution sharded over the members of a group (`World`, as `mpirun` gives) equals
/// the one-process map: each member attributes a contiguous shard of the samples and the
/// sums are combined in float64. The members here are threads (`InProcessGroup`), each
/// with its own copy of the model.
@Suite struct ShardedAttributionTests {
    static let samples: [AttributionSample] = (0..<5).map { i in
        AttributionSample(ids: (0..<(4 + i)).map { ($0 * 37 + i * 11) % 250 + 3 }, target: i % 2 == 0 ? .predicted : .contrast(answer: 17, foil: 42))
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let method: AttributionMethod, level: AttributionLevel, absolute: Bool, ranks: Int
        var testDescription: String { "\(method.rawValue)/\(level.rawValue)\(absolute ? "/abs" : "") on \(ranks) ranks" }
    }

    static let cases: [Case] = [
        Case(method: .lrp, level: .weight, absolute: false, ranks: 2),
        Case(method: .lrp, level: .weight, absolute: false, ranks: 3),
        Case(method: .lrp, level: .weight, absolute: true, ranks: 2),
        Case(method: .gradient, level: .row, absolute: false, ranks: 3),
        Case(method: .lrp, level: .neuron, absolute: false, ranks: 2),
        Case(method: .lrp, level: .head, absolute: false, ranks: 3),
        Case(method: .lrp, level: .token, absolute: false, ranks: 2),
        Case(method: .wanda, level: .weight, absolute: false, ranks: 2),
        Case(method: .activation, level: .neuron, absolute: false, ranks: 3),
        // More ranks than samples: two members attribute nothing and add zeros.
        Case(method: .lrp, level: .weight, absolute: false, ranks: 7),
    ]

    @Test(arguments: cases)
    func shardedEqualsSingleProcess(_ c: Case) throws {
        let path = RelevanceFixtures.models + "/tiny-gqa"
        let single = try Attribution.attribute(try Model.load(path), samples: Self.samples, method: c.method, level: c.level,
                                               batchSize: 2, absolute: c.absolute, world: .single)
        let maps = try InProcessGroup.run(size: c.ranks) { world in
            try Attribution.attribute(try Model.load(path), samples: Self.samples, method: c.method, level: c.level,
                                      batchSize: 2, absolute: c.absolute, world: world)
        }
        for (rank, map) in maps.enumerated() {
            #expect(map.names == single.names, "rank \(rank)")
            #expect(map.sampleCount == single.sampleCount)
            #expect(map.explained.count == single.explained.count)
            for (a, b) in zip(map.explained, single.explained) { #expect(abs(a - b) <= 1e-5 * max(1, abs(b)), "rank \(rank) explained") }
            for name in single.names {
                let a = map[name]!.scalars, b = single[name]!.scalars
                #expect(a.count == b.count)
                let diff = zip(a, b).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
                let norm = b.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
                #expect(diff <= 1e-6 * max(norm, 1e-12), "rank \(rank) \(name): relative L2 \(diff / max(norm, 1e-30))")
            }
        }
        // Every member holds the same map, bit for bit.
        for map in maps.dropFirst() {
            for name in single.names { #expect(map[name]!.scalars == maps[0][name]!.scalars) }
        }
    }

    @Test func meanAblationInputsAreSharded() throws {
        let path = RelevanceFixtures.models + "/tiny-gqa"
        let prompts = Self.samples.map(\.ids)
        let single = try Attribution.inputMeans(try Model.load(path), prompts: prompts, batchSize: 2, world: .single)
        let shared = try InProcessGroup.run(size: 3) { world in
            try Attribution.inputMeans(try Model.load(path), prompts: prompts, batchSize: 2, world: world)
        }
        for means in shared {
            #expect(Set(means.keys) == Set(single.keys))
            for (key, values) in single {
                for (a, b) in zip(means[key]!, values) { #expect(abs(a - b) <= 1e-6 * max(1, abs(b))) }
            }
        }
    }
}
