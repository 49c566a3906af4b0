import Foundation

/// N members in one process (threads), for testing code written against `World` without
/// `mpirun`: `InProcessGroup.run(size:) { world in … }` runs the body once per member,
/// concurrently, and returns the results in rank order. Sums are added in rank order.
public final class InProcessGroup: @unchecked Sendable {
    private let size: Int
    private let condition = NSCondition()
    /// The deposits of each exchange in progress (the k-th collective call of every member
    /// is exchange k), and how many members have read them.
    private var rounds: [Int: (deposits: [[UInt8]?], readers: Int)] = [:]

    private init(size: Int) { self.size = size }

    /// Every member hands in its bytes; each gets all of them in rank order.
    fileprivate func exchange(_ round: Int, _ rank: Int, _ bytes: [UInt8]) -> [[UInt8]] {
        condition.lock()
        defer { condition.unlock() }
        rounds[round, default: (Array(repeating: nil, count: size), 0)].deposits[rank] = bytes
        condition.broadcast()
        while rounds[round]!.deposits.contains(where: { $0 == nil }) { condition.wait() }
        let all = rounds[round]!.deposits.map { $0! }
        rounds[round]!.readers += 1
        if rounds[round]!.readers == size { rounds[round] = nil }
        return all
    }

    public static func run<T: Sendable>(size: Int, _ body: @escaping @Sendable (World) throws -> T) throws -> [T] {
        let group = InProcessGroup(size: size)
        let results = ResultSlots<T>(size)
        let threads = (0..<size).map { rank in
            Thread {
                results.set(rank, Result { try body(World(Member(group: group, rank: rank))) })
            }
        }
        threads.forEach { $0.stackSize = 16 << 20; $0.start() }
        return try results.waitAll().map { try $0.get() }
    }

    private final class ResultSlots<T>: @unchecked Sendable {
        private let condition = NSCondition()
        private var slots: [Result<T, Error>?]
        init(_ n: Int) { slots = Array(repeating: nil, count: n) }
        func set(_ i: Int, _ r: Result<T, Error>) { condition.lock(); slots[i] = r; condition.broadcast(); condition.unlock() }
        func waitAll() -> [Result<T, Error>] {
            condition.lock(); defer { condition.unlock() }
            while slots.contains(where: { $0 == nil }) { condition.wait() }
            return slots.map { $0! }
        }
    }

    private final class Member: Communicator, @unchecked Sendable {
        let group: InProcessGroup
        let rank: Int
        private var calls = 0
        init(group: InProcessGroup, rank: Int) { self.group = group; self.rank = rank }
        var size: Int { group.size }
        var library: String { "threads" }

        func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
            let bytes = Array(UnsafeRawBufferPointer(buffer))
            let all = exchange(bytes)
            for i in 0..<buffer.count { buffer[i] = 0 }
            for part in all {
                part.withUnsafeBytes { raw in
                    let values = raw.bindMemory(to: Double.self)
                    for i in 0..<buffer.count { buffer[i] += values[i] }
                }
            }
        }

        func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] { exchange(bytes) }

        /// Only this member's thread calls its collectives, so `calls` needs no lock.
        private func exchange(_ bytes: [UInt8]) -> [[UInt8]] {
            calls += 1
            return group.exchange(calls, rank, bytes)
        }
        func abort(code: Int32) -> Never { fatalError("rank \(rank) aborted with code \(code)") }
        func finish() {}
    }
}
