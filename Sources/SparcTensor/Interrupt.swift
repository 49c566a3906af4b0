import Synchronization

/// A process-wide "stop what you are doing" flag, set by the REPL's SIGINT handler and
/// polled by long loops (interpreter statements, generation, perplexity windows).
public enum Interrupt {
    private static let flag = Atomic<Bool>(false)

    public static func request() { flag.store(true, ordering: .relaxed) }
    public static func clear() { flag.store(false, ordering: .relaxed) }
    public static var isRequested: Bool { flag.load(ordering: .relaxed) }

    /// Throws `Interrupted` (and clears the flag) if an interrupt was requested.
    public static func check() throws {
        if flag.exchange(false, ordering: .relaxed) { throw Interrupted() }
    }
}

public struct Interrupted: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "interrupted" }
}
