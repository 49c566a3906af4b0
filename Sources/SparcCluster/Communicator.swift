import Foundation

/// The collective operations sparc needs from a group of processes (MPI ranks, or the
/// threads of `InProcessGroup` in tests). Every member calls each operation, in the same
/// order; a member that stops calling leaves the others waiting (MPI's rule too).
public protocol Communicator: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// buffer[i] = Σ over members of buffer[i], on every member (count ≤ Int32.max).
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    /// Every member's bytes, in rank order, on every member.
    func allGather(_ bytes: [UInt8]) throws -> [[UInt8]]
    /// Ends every member of the group with `code` (a failure on one rank ends the job).
    func abort(code: Int32) -> Never
    /// Releases the group at a normal exit.
    func finish()
    /// What carries the group ("Open MPI v4.1.4", "threads", "single process").
    var library: String { get }
}

/// One process alone: the collectives are the identity.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] { [bytes] }
    public func abort(code: Int32) -> Never { exit(code) }
    public func finish() {}
    public var library: String { "single process" }
}

public enum ClusterError: Error, CustomStringConvertible {
    case launch(String)
    case communication(String)
    public var description: String {
        switch self {
        case .launch(let m), .communication(let m): return m
        }
    }
}
