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

    /// The work list of the current thread (a pthread key: scopes die on every call and
    /// loop iteration, and Foundation's thread dictionary cost a microsecond each time).
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { p in
            if let p { Unmanaged<Queue>.fromOpaque(p).release() }
        }
        return key
    }()

    private static var queue: Queue {
        if let p = pthread_getspecific(key) { return Unmanaged<Queue>.fromOpaque(p).takeUnretainedValue() }
        let q = Queue()
        pthread_setspecific(key, Unmanaged.passRetained(q).toOpaque())
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
        while !q.pending.isEmpty {
            // Not `while var v = popLast()`, and the storage is copied out before `v` is
            // dropped after the switch: a debug build keeps copies of such temporaries
            // (the optional, the switched-on value) alive, which makes storage look shared.
            var v = q.pending.removeLast()
            var items: [Value] = [], fields: [String: Value] = [:]
            switch v {
            case .list(let l): items = l
            case .record(let r): fields = r.fields
            default: break  // a function's scope, if it dies now, hands its bindings back to this loop
            }
            v = .null
            if !items.isEmpty, isUnique(&items) { q.pending.append(contentsOf: items.lazy.filter(\.canNest)) }
            if !fields.isEmpty, isUnique(&fields) { q.pending.append(contentsOf: fields.values.lazy.filter(\.canNest)) }
            // `items` and `fields` die here: one level, their elements now on the list.
        }
    }

    /// Whether an array's or dictionary's storage is referenced only by `storage`.
    /// Both are a single reference to a native storage object (stable ABI); its strong
    /// count is read in place, without retaining it. (`isKnownUniquelyReferenced` on the
    /// storage rebound as AnyObject answered false for storage counted once, in debug
    /// builds, which left the teardown recursive.) Anything else counts as shared and is
    /// not descended into.
    private static func isUnique<T>(_ storage: inout T) -> Bool {
        guard MemoryLayout<T>.size == MemoryLayout<UnsafeRawPointer>.size else { return false }
        let object = withUnsafeBytes(of: &storage) { $0.load(as: UnsafeRawPointer.self) }
        return swiftRetainCount(object) == 1
    }
}

/// The Swift runtime's strong reference count of a native object (exported C function).
@_silgen_name("swift_retainCount")
private func swiftRetainCount(_ object: UnsafeRawPointer) -> Int

extension Value {
    /// Whether freeing this value can free other values (and so recurse).
    var canNest: Bool {
        switch self {
        case .list, .record, .function: return true
        default: return false
        }
    }
}

