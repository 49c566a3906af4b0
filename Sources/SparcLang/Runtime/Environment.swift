/// A lexical scope: bindings plus the enclosing scope.
public final class Environment: @unchecked Sendable {
    struct Binding {
        var value: Value
        let mutable: Bool
    }

    let parent: Environment?
    private(set) var bindings: [String: Binding] = [:]
    /// Names in definition order (for `:vars`).
    private(set) var order: [String] = []

    init(parent: Environment?) { self.parent = parent }

    /// A scope's values are freed through `Teardown`, so that deeply nested values and
    /// long chains of closures do not overflow the stack when they die.
    deinit {
        guard !bindings.isEmpty else { return }
        var values = bindings.values.map(\.value)
        bindings = [:]
        Teardown.release(&values)
    }

    func define(_ name: String, _ value: Value, mutable: Bool) {
        if var old = bindings.updateValue(Binding(value: value, mutable: mutable), forKey: name)?.value {
            Teardown.release(&old)
        } else {
            order.append(name)
        }
    }

    func lookup(_ name: String) -> Value? {
        var env: Environment? = self
        while let e = env {
            if let b = e.bindings[name] { return b.value }
            env = e.parent
        }
        return nil
    }

    enum AssignResult { case done, immutable, undefined }

    func assign(_ name: String, _ value: Value) -> AssignResult {
        var env: Environment? = self
        while let e = env {
            if let mutable = e.bindings[name]?.mutable {
                guard mutable else { return .immutable }
                var old = e.bindings[name]!.value
                e.bindings[name]!.value = value
                Teardown.release(&old)
                return .done
            }
            env = e.parent
        }
        return .undefined
    }

    /// Every name visible from here (for suggestions and completion).
    var allNames: [String] {
        var names: [String] = []
        var env: Environment? = self
        while let e = env { names += e.order; env = e.parent }
        return names
    }

    /// (name, value) pairs of this scope only, in definition order.
    var entries: [(String, Value)] { order.compactMap { n in bindings[n].map { (n, $0.value) } } }
}

/// Edit distance counting an adjacent transposition as one edit ("pritn" → "print"),
/// for "did you mean" suggestions (optimal string alignment distance).
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            var best = Swift.min(d[i - 1][j] + 1, d[i][j - 1] + 1)
            best = Swift.min(best, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { best = Swift.min(best, d[i - 2][j - 2] + 1) }
            d[i][j] = best
        }
    }
    return d[a.count][b.count]
}

/// The closest candidate within a small edit distance, if any.
public func suggestion(for name: String, among candidates: [String]) -> String? {
    // The distance table is name × candidate: long names (a generated record key) would
    // make it gigabytes, and are not typos anyway.
    guard name.count <= 64 else { return nil }
    let limit = name.count <= 2 ? 0 : (name.count <= 4 ? 1 : Swift.max(2, name.count / 3))
    var best: (name: String, distance: Int)? = nil
    for c in candidates where c != name && Swift.abs(c.count - name.count) <= limit {
        if limit == 0 && c.lowercased() != name.lowercased() { continue }
        let d = editDistance(name.lowercased(), c.lowercased())
        guard d <= limit else { continue }
        if let b = best, b.distance < d || (b.distance == d && b.name <= c) { continue }
        best = (c, d)
    }
    return best?.name
}
