import Foundation

/// Frees values without recursion. A list nested 100,000 deep (`x = [x]` in a loop) or a
/// chain of closures each capturing the previous one would otherwise be freed by a
/// release that recurses once per level and overflows the stack.
///
/// Values handed here go on a per-thread work list; a value whose container storage is
/// held by nobody else has its elements moved onto the list before it is dropped, so
/// each drop frees one level. Scopes (`Environment`) hand their bindings over when they
/// die, which makes closures and scopes part of the same loop.
public enum Teardown {
    private final class Queue {
        var pending: [Value] = []
        var running = false
    }

    private static let key = "sparc.teardown"

    private static var queue: Queue {
        let dict = Thread.current.threadDictionary
        if let q = dict[key] as? Queue { return q }
        let q = Queue()
        dict[key] = q
        return q
    }

    /// Drops `value` (leaving nil in its place), freeing what it alone held iteratively.
    public static func release(_ value: inout Value) {
        var values = [value]
        value = .null
        release(&values)
    }

    /// Drops every value of `values` (leaving it empty).
    static func release(_ values: inout [Value]) {
        // Only containers can nest; anything else is freed directly.
        guard values.contains(where: \.canNest) else { values = []; return }
        let q = queue
        q.pending.append(contentsOf: values)
        values = []
        // A drop below (a scope dying) lands here again: the running loop takes its values.
        if q.running { return }
        q.running = true
        defer { q.running = false }
        while var v = q.pending.popLast() {
            switch v {
            case .list(var items):
                v = .null
                if isUnique(&items) { q.pending.append(contentsOf: items.lazy.filter(\.canNest)); items = [] }
            case .record(var r):
                v = .null
                var fields = r.fields
                r = Record()
                if isUnique(&fields) { q.pending.append(contentsOf: fields.values.lazy.filter(\.canNest)); fields = [:] }
            default:
                break  // a function's scope, if it dies now, hands its bindings back to this loop
            }
        }
    }

    /// Whether an array's or dictionary's storage is referenced only by `storage`.
    /// Both are a single reference to a native storage object (stable ABI), which can be
    /// checked in place; anything else counts as shared and is not descended into.
    private static func isUnique<T>(_ storage: inout T) -> Bool {
        guard MemoryLayout<T>.size == MemoryLayout<AnyObject>.size else { return false }
        return withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: AnyObject.self, capacity: 1) { isKnownUniquelyReferenced(&$0.pointee) }
        }
    }
}

extension Value {
    /// Whether freeing this value can free other values (and so recurse).
    var canNest: Bool {
        switch self {
        case .list, .record, .function: return true
        default: return false
        }
    }
}
