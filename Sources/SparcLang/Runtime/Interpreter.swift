import Foundation
import SparcAttribution
import SparcCluster
import SparcFormats
import SparcModel
import SparcPruning
import SparcTensor
import SparcWorkflows

/// The tree-walking evaluator. Builtins live in the outermost scope; a session's
/// variables in `globals`, which survives errors (the REPL keeps going after one).
public final class Interpreter: @unchecked Sendable {
    public let builtins: [String: Builtin]
    let builtinScope: Environment
    public let globals: Environment
    /// Where `print` writes (tests capture it).
    public var output: (String) -> Void = { s in FileHandle.standardOutput.write((s + "\n").data(using: .utf8)!) }
    /// Whether this process prints and writes files: under `mpirun` every rank runs the
    /// script alike and only rank 0 speaks (`print`, `save`, `plot`, `heatmap`).
    public var speaks = World.current.isRoot
    /// Folders searched by `import` after the importing file's folder.
    public var modulePath: [String] = []
    private var stdlibModules: [String: Environment] = [:]
    private var imported: Set<String> = []
    private var callDepth = 0
    static let maxCallDepth = 800

    public init(arguments: [String] = []) {
        var table: [String: Builtin] = [:]
        for b in CoreBuiltins.all + TensorBuiltins.all + ModelBuiltins.all + AttributionBuiltins.all + PruningBuiltins.all + WorkflowBuiltins.all + EvaluationBuiltins.all { table[b.name] = b }
        builtins = table
        builtinScope = Environment(parent: nil)
        for (name, b) in table.sorted(by: { $0.key < $1.key }) { builtinScope.define(name, .builtin(b), mutable: false) }
        builtinScope.define("args", .list(arguments.map { .string($0) }), mutable: false)
        globals = Environment(parent: builtinScope)
        modulePath = Interpreter.defaultModulePath()
    }

    // MARK: running

    /// Runs a program; returns the value of its last statement if that is an expression.
    /// Parsing, evaluation and freeing the syntax tree all run on a thread with a large
    /// stack, and evaluation stops with an error before that stack runs out.
    public func run(_ source: Source) throws -> Value {
        try onLargeStack {
            let program = try Parser.parse(source)
            return try self.execute(program, in: self.globals, source: source, topLevel: true)
        }
    }

    public func run(code: String, name: String) throws -> Value { try run(Source(name: name, text: code)) }

    /// Parses without running (the REPL asks whether an entry is complete), on the same
    /// large stack as `run`.
    public func checkSyntax(_ source: Source) throws {
        try onLargeStack { _ = try Parser.parse(source) }
    }

    /// Renders a value for the REPL or `-e` on the large stack, and frees it there
    /// (iteratively), so neither can overflow the caller's stack.
    public func display(_ value: inout Value) -> String? {
        nonisolated(unsafe) var v = value
        value = .null
        let text = try? onLargeStack { () -> String? in
            defer { Teardown.release(&v) }
            if case .null = v { return nil }
            return v.repr
        }
        return text ?? nil
    }

    static let stackSize = 1 << 29
    /// Stack left below the evaluation guard for builtins, printing and freeing values.
    static let stackReserve = 64 << 20
    /// The lowest stack address evaluation may reach on the running thread (0: no guard).
    private var stackFloor: UInt = 0

    /// Where the large-stack thread leaves its result. The caller takes it out, so the
    /// thread's closure (released on whichever thread lets go of it last) holds no value:
    /// a deeply nested one freed on the caller's small stack would overflow it.
    private final class Outcome<T>: @unchecked Sendable {
        var result: Result<T, Error>?
    }

    private func onLargeStack<T>(_ body: @escaping () throws -> T) throws -> T {
        // The caller blocks until the thread is done, so handing `body` over is safe.
        nonisolated(unsafe) let work = body
        let outcome = Outcome<T>()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            let saved = stackFloor
            stackFloor = currentStackAddress() - UInt(Interpreter.stackSize - Interpreter.stackReserve)
            outcome.result = Result { try work() }
            stackFloor = saved
            done.signal()
        }
        thread.stackSize = Interpreter.stackSize
        thread.start()
        done.wait()
        guard let result = outcome.result else { throw SparcError(.runtime, "internal error: the evaluation thread gave no result") }
        outcome.result = nil
        return try result.get()
    }

    /// Throws before evaluation recursion gets near the end of the stack: deep user
    /// recursion, or deep nesting the parser's limits allow within each call.
    @inline(__always)
    private func checkStack(_ loc: SourceLocation, _ source: Source) throws {
        guard stackFloor != 0, currentStackAddress() < stackFloor else { return }
        throw SparcError(.runtime, callDepth > 0 ? "recursion too deep (the stack is exhausted)" : "nesting too deep (the stack is exhausted)",
                         at: loc, in: source)
    }

    enum Flow { case normal, returned(Value), broke, continued }

    private func execute(_ program: [Stmt], in env: Environment, source: Source, topLevel: Bool) throws -> Value {
        var last: Value = .null
        for stmt in program {
            last = .null
            if case .expression(let e) = stmt.kind {
                last = try evaluate(e, env, source)
                continue
            }
            switch try exec(stmt, env, source) {
            case .normal: break
            case .returned: throw SparcError(.syntax, "return outside a function", at: stmt.location, in: source)
            case .broke, .continued: throw SparcError(.syntax, "break or continue outside a loop", at: stmt.location, in: source)
            }
        }
        return last
    }

    // MARK: statements

    private func execBlock(_ stmts: [Stmt], _ env: Environment, _ source: Source) throws -> Flow {
        for s in stmts {
            let flow = try exec(s, env, source)
            if case .normal = flow { continue }
            return flow
        }
        return .normal
    }

    private func exec(_ stmt: Stmt, _ env: Environment, _ source: Source) throws -> Flow {
        try checkStack(stmt.location, source)
        if Interrupt.isRequested { Interrupt.clear(); throw SparcError(.interrupted, "interrupted", at: stmt.location, in: source) }
        switch stmt.kind {
        case .binding(let name, let mutable, let value):
            if builtins[name] != nil && env === globals {
                throw SparcError(.name, "\(name) is a builtin function; choose another name", at: stmt.location, in: source)
            }
            env.define(name, try evaluate(value, env, source), mutable: mutable)
        case .assign(let target, let value):
            try assign(target, try evaluate(value, env, source), env, source)
        case .expression(let e):
            _ = try evaluate(e, env, source)
        case .ifElse(let cond, let then, let otherwise):
            if try evaluate(cond, env, source).isTruthy {
                return try execBlock(then, Environment(parent: env), source)
            } else if let o = otherwise {
                return try execBlock(o, Environment(parent: env), source)
            }
        case .forIn(let name, let seqExpr, let body):
            let items = try iterate(try evaluate(seqExpr, env, source), at: seqExpr.location, source)
            for i in 0..<items.count {
                // An empty body runs no statement: check for Ctrl-C here too.
                if Interrupt.isRequested { Interrupt.clear(); throw SparcError(.interrupted, "interrupted", at: stmt.location, in: source) }
                let scope = Environment(parent: env)
                scope.define(name, items.item(i), mutable: false)
                switch try execBlock(body, scope, source) {
                case .broke: return .normal
                case .returned(let v): return .returned(v)
                case .normal, .continued: continue
                }
            }
        case .whileLoop(let cond, let body):
            while try evaluate(cond, env, source).isTruthy {
                switch try execBlock(body, Environment(parent: env), source) {
                case .broke: return .normal
                case .returned(let v): return .returned(v)
                case .normal, .continued:
                    if Interrupt.isRequested { Interrupt.clear(); throw SparcError(.interrupted, "interrupted", at: stmt.location, in: source) }
                }
            }
        case .returnValue(let e):
            return .returned(try e.map { try evaluate($0, env, source) } ?? .null)
        case .breakLoop: return .broke
        case .continueLoop: return .continued
        case .importModule(let name):
            try importModule(name, from: source, at: stmt.location, into: env)
        }
        return .normal
    }

    /// What a `for` loop walks: values, or a tensor's rows made one at a time (a tensor of
    /// shape [1e9, 0] has a billion rows and no memory).
    enum Sequence {
        case values([Value])
        case rows(Tensor)
        var count: Int {
            switch self {
            case .values(let v): return v.count
            case .rows(let t): return t.shape[0]
            }
        }
        func item(_ i: Int) -> Value {
            switch self {
            case .values(let v): return v[i]
            case .rows(let t): return TensorOps.select(t, index: i)
            }
        }
    }

    private func iterate(_ v: Value, at loc: SourceLocation, _ source: Source) throws -> Sequence {
        switch v {
        case .list(let l): return .values(l)
        case .string(let s): return .values(s.map { .string(String($0)) })
        case .record(let r): return .values(r.keys.map { .string($0) })
        case .relevance(let r): return .values(r.names.map { .string($0) })
        case .tensor(let t):
            guard t.rank > 0 else { throw SparcError(.type, "cannot iterate over a 0-d tensor", at: loc, in: source) }
            return .rows(t)
        default:
            throw SparcError(.type, "cannot iterate over a \(v.typeName)", at: loc, in: source)
        }
    }

    // MARK: assignment (value semantics: rebuild the container, then store it back)

    private func assign(_ target: Expr, _ value: Value, _ env: Environment, _ source: Source) throws {
        switch target.kind {
        case .identifier(let name):
            switch env.assign(name, value) {
            case .done: return
            case .immutable:
                let hint = builtins[name] != nil ? "\(name) is a builtin" : "\(name) was declared with let; declare it with var to change it"
                throw SparcError(.name, "cannot assign to \(name): \(hint)", at: target.location, in: source)
            case .undefined:
                throw undefinedName(name, env, at: target.location, source, assigning: true)
            }
        case .index(let base, let items):
            let container = try evaluate(base, env, source)
            let indices = try items.map { try evaluateIndex($0, env, source) }
            let updated = try Indexing.set(container, indices, value).mapError(target.location, source)
            try assign(base, updated, env, source)
        case .member(let base, let name):
            guard case .record(var r) = try evaluate(base, env, source) else {
                throw SparcError(.type, "only record fields can be assigned with .\(name)", at: target.location, in: source)
            }
            r[name] = value
            try assign(base, .record(r), env, source)
        default:
            throw SparcError(.syntax, "cannot assign to this expression", at: target.location, in: source)
        }
    }

    // MARK: expressions

    func evaluate(_ e: Expr, _ env: Environment, _ source: Source) throws -> Value {
        try checkStack(e.location, source)
        switch e.kind {
        case .number(let v): return .number(v)
        case .bool(let b): return .bool(b)
        case .nilLiteral: return .null
        case .string(let parts):
            var s = ""
            for p in parts {
                switch p {
                case .text(let t): s += t
                case .expression(let x): s += try evaluate(x, env, source).displayString
                }
            }
            return .string(s)
        case .identifier(let name):
            guard let v = env.lookup(name) else { throw undefinedName(name, env, at: e.location, source) }
            return v
        case .list(let items):
            return .list(try items.map { try evaluate($0, env, source) })
        case .record(let fields):
            return .record(Record(try fields.map { ($0.0, try evaluate($0.1, env, source)) }))
        case .unary(let op, let x):
            return try Operators.unary(op, try evaluate(x, env, source)).mapError(e.location, source)
        case .binary(let op, let a, let b):
            let l = try evaluate(a, env, source), r = try evaluate(b, env, source)
            return try Operators.binary(op, l, r).mapError(e.location, source)
        case .logical(let op, let a, let b):
            let l = try evaluate(a, env, source)
            if op == "and" { return l.isTruthy ? try evaluate(b, env, source) : l }
            return l.isTruthy ? l : try evaluate(b, env, source)
        case .function(let decl):
            return .function(Function(decl: decl, closure: env, source: source))
        case .index(let base, let items):
            let container = try evaluate(base, env, source)
            let indices = try items.map { try evaluateIndex($0, env, source) }
            return try Indexing.get(container, indices).mapError(e.location, source)
        case .member(let base, let name):
            let object = try evaluate(base, env, source)
            if case .record(let r) = object {
                if let v = r[name] { return v }
                throw SparcError(.name, "record has no field \(name)" + (suggestion(for: name, among: r.keys).map { "; did you mean \($0)?" } ?? ""), at: e.location, in: source)
            }
            // x.f means f(x).
            guard let f = env.lookup(name) else { throw undefinedName(name, env, at: e.location, source, member: object) }
            return try call(f, [object], [], at: e.location, source)
        case .call(let calleeExpr, let args):
            var positional: [Value] = []
            var named: [(String, Value)] = []
            let callee: Value
            if case .member(let base, let name) = calleeExpr.kind {
                // x.f(a) means f(x, a), unless x is a record with a field f.
                let object = try evaluate(base, env, source)
                if case .record(let r) = object, let field = r[name] {
                    callee = field
                } else {
                    guard let f = env.lookup(name) else { throw undefinedName(name, env, at: calleeExpr.location, source, member: object) }
                    callee = f
                    positional.append(object)
                }
            } else {
                callee = try evaluate(calleeExpr, env, source)
            }
            for a in args {
                let v = try evaluate(a.value, env, source)
                if let n = a.name {
                    if named.contains(where: { $0.0 == n }) {
                        throw SparcError(.type, "argument \(n) given twice", at: a.value.location, in: source)
                    }
                    named.append((n, v))
                } else {
                    positional.append(v)
                }
            }
            return try call(callee, positional, named, at: e.location, source)
        }
    }

    private func evaluateIndex(_ item: IndexItem, _ env: Environment, _ source: Source) throws -> Indexing.Index {
        switch item {
        case .single(let x): return .single(try evaluate(x, env, source))
        case .slice(let a, let b):
            return .slice(try a.map { try evaluate($0, env, source) }, try b.map { try evaluate($0, env, source) })
        }
    }

    // MARK: calls

    /// Calls a function value. Errors inside a builtin are reported at the call.
    public func call(_ callee: Value, _ positional: [Value], _ named: [(String, Value)],
                     at loc: SourceLocation, _ source: Source) throws -> Value {
        switch callee {
        case .builtin(let b):
            let args: Arguments
            do { args = try bind(b, positional, named) } catch let e as SparcError { throw e.located(loc, source) }
            do {
                return try b.body(args)
            } catch var e as SparcError {
                if e.location == nil { e = e.located(loc, source) }
                throw e
            } catch {
                throw languageError(error, context: b.name).located(loc, source)
            }
        case .function(let f):
            callDepth += 1
            defer { callDepth -= 1 }
            guard callDepth <= Interpreter.maxCallDepth else {
                throw SparcError(.runtime, "recursion too deep (more than \(Interpreter.maxCallDepth) nested calls)", at: loc, in: source)
            }
            let scope = Environment(parent: f.closure)
            let params = f.decl.parameters
            guard positional.count <= params.count else {
                throw SparcError(.type, "\(f.signature) takes \(params.count) argument\(params.count == 1 ? "" : "s"), got \(positional.count)", at: loc, in: source)
            }
            var given: [String: Value] = [:]
            for (i, v) in positional.enumerated() { given[params[i].name] = v }
            for (n, v) in named {
                guard params.contains(where: { $0.name == n }) else {
                    let hint = suggestion(for: n, among: params.map(\.name)).map { "; did you mean \($0)?" } ?? ""
                    throw SparcError(.type, "\(f.signature) has no parameter \(n)\(hint)", at: loc, in: source)
                }
                guard given[n] == nil else { throw SparcError(.type, "argument \(n) given twice", at: loc, in: source) }
                given[n] = v
            }
            for p in params {
                if let v = given[p.name] { scope.define(p.name, v, mutable: true) }
                else if let d = p.defaultValue { scope.define(p.name, try evaluate(d, scope, f.source), mutable: true) }
                else { throw SparcError(.type, "\(f.signature): missing argument \(p.name)", at: loc, in: source) }
            }
            // The value of a function is its return value, else its last expression.
            var last: Value = .null
            for s in f.decl.body {
                if case .expression(let e) = s.kind { last = try evaluate(e, scope, f.source); continue }
                last = .null
                switch try exec(s, scope, f.source) {
                case .normal: continue
                case .returned(let v): return v
                case .broke, .continued: throw SparcError(.syntax, "break or continue outside a loop", at: s.location, in: f.source)
                }
            }
            return last
        default:
            throw SparcError(.type, "a \(callee.typeName) is not a function", at: loc, in: source)
        }
    }

    private func bind(_ b: Builtin, _ positional: [Value], _ named: [(String, Value)]) throws -> Arguments {
        var values: [String: Value] = [:]
        var rest: [Value] = []
        for (i, v) in positional.enumerated() {
            if i < b.parameters.count { values[b.parameters[i].name] = v }
            else if b.variadic { rest.append(v) }
            else {
                throw SparcError(.type, "\(b.signature) takes at most \(b.parameters.count) positional argument\(b.parameters.count == 1 ? "" : "s"), got \(positional.count)")
            }
        }
        let all = b.parameters + b.keywordOnly
        for (n, v) in named {
            guard all.contains(where: { $0.name == n }) else {
                let hint = suggestion(for: n, among: all.map(\.name)).map { "; did you mean \($0)?" } ?? ""
                throw SparcError(.type, "\(b.name) has no parameter \(n)\(hint) (signature: \(b.signature))")
            }
            guard values[n] == nil else { throw SparcError(.type, "\(b.name): argument \(n) given twice") }
            values[n] = v
        }
        for p in all where values[p.name] == nil {
            guard let d = p.defaultValue else { throw SparcError(.type, "\(b.signature): missing argument \(p.name)") }
            values[p.name] = d
        }
        return Arguments(builtin: b, values: values, rest: rest, interpreter: self)
    }

    private func undefinedName(_ name: String, _ env: Environment, at loc: SourceLocation, _ source: Source,
                               assigning: Bool = false, member: Value? = nil) -> SparcError {
        var message = member.map { "\($0.typeName) has no field or function \(name)" } ?? "unknown name \(name)"
        if let s = suggestion(for: name, among: env.allNames) { message += "; did you mean \(s)?" }
        else if assigning { message += " (declare it first with let or var)" }
        return SparcError(.name, message, at: loc, in: source)
    }

    // MARK: modules

    static func defaultModulePath() -> [String] {
        var path: [String] = []
        if let env = ProcessInfo.processInfo.environment["SPARC_PATH"] {
            path += env.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        }
        // The installed stdlib: share/sparc/stdlib beside the binary's folder, or the
        // stdlib/ folder of the source tree the binary was built in (.build/<triple>/release).
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        path.append(dir.appendingPathComponent("../share/sparc/stdlib").standardized.path)
        for _ in 0..<4 {
            dir = dir.deletingLastPathComponent()
            let candidate = dir.appendingPathComponent("stdlib").path
            if FileManager.default.fileExists(atPath: candidate + "/lists.sparc") { path.append(candidate); break }
        }
        return path
    }

    /// A top-level value of a stdlib module, for builtins written in sparc (`ioi`). The
    /// module runs once per interpreter, in its own scope.
    func stdlibMember(_ module: String, _ name: String) throws -> Value {
        if stdlibModules[module] == nil {
            guard let path = findModule(module + ".sparc", in: modulePath) else {
                throw SparcError(.runtime, "the stdlib module \(module) is not installed (looked in \(modulePath.joined(separator: ", ")); set SPARC_PATH to sparc's stdlib folder)")
            }
            stdlibModules[module] = try runModule(path, text: try readSourceFile(path).get())
        }
        guard let v = stdlibModules[module]!.entries.first(where: { $0.0 == name })?.1 else {
            throw SparcError(.runtime, "the stdlib module \(module) defines no \(name)")
        }
        return v
    }

    private func importModule(_ name: String, from source: Source, at loc: SourceLocation, into env: Environment) throws {
        let file = name.hasSuffix(".sparc") ? name : name + ".sparc"
        let folders = [URL(fileURLWithPath: source.name).deletingLastPathComponent().path] + modulePath
        guard let path = findModule(file, in: folders) else {
            throw SparcError(.name, "no module \(name) (looked in \(folders.joined(separator: ", ")))", at: loc, in: source)
        }
        guard !imported.contains(path) else { return }
        imported.insert(path)
        let scope = try runModule(path, text: try readSourceFile(path).mapError(loc, source))
        for (n, v) in scope.entries { env.define(n, v, mutable: false) }
    }

    /// The first folder's `file` that exists.
    private func findModule(_ file: String, in folders: [String]) -> String? {
        folders.map { URL(fileURLWithPath: $0).appendingPathComponent(file).standardized.path }
            .first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Runs a module in a scope of its own under the builtins, and returns that scope.
    private func runModule(_ path: String, text: String) throws -> Environment {
        let source = Source(name: path, text: text)
        let scope = Environment(parent: builtinScope)
        _ = try execute(try Parser.parse(source), in: scope, source: source, topLevel: true)
        return scope
    }
}

/// The largest script or text file read whole (`text`, `lines`, `import`).
let maxTextFileBytes = 1 << 30

/// Reads a UTF-8 source file; invalid UTF-8 is an error, not replacement characters.
public func readSourceFile(_ path: String) -> Result<String, SparcError> {
    // Files and pipes (`sparc <(…)`) are read, to at most maxTextFileBytes; devices such
    // as /dev/zero never end and directories are not text.
    var info = stat()
    guard stat(path, &info) == 0 else { return .failure(SparcError(.runtime, "cannot read \(path)")) }
    let kind = info.st_mode & S_IFMT
    guard kind == S_IFREG || kind == S_IFIFO else {
        return .failure(SparcError(.runtime, "cannot read \(path): not a regular file"))
    }
    guard let handle = FileHandle(forReadingAtPath: path) else { return .failure(SparcError(.runtime, "cannot read \(path)")) }
    defer { try? handle.close() }
    var data = Data()
    while true {
        let next: Data?
        do { next = try handle.read(upToCount: 1 << 20) } catch { return .failure(SparcError(.runtime, "cannot read \(path): \(error)")) }
        guard let chunk = next, !chunk.isEmpty else { break }  // end of file
        data.append(chunk)
        if data.count > maxTextFileBytes {
            return .failure(SparcError(.value, "\(path) is larger than the \(Tensor.formatBytes(maxTextFileBytes)) a text file may have"))
        }
    }
    guard let text = String(validating: data, as: UTF8.self) else {
        return .failure(SparcError(.value, "\(path) is not valid UTF-8 text"))
    }
    return .success(text)
}

extension Result where Failure == SparcError {
    /// The value, or the error located at `loc` if it has no location yet.
    func mapError(_ loc: SourceLocation, _ source: Source) throws -> Success {
        switch self {
        case .success(let v): return v
        case .failure(let e): throw e.located(loc, source)
        }
    }
}

extension Interpreter {
    /// The session's own variables (not builtins), in definition order.
    public var sessionVariables: [(String, Value)] { globals.entries }
}

/// The one place library errors become language errors: the kind says whether the
/// script asked for something invalid (`.value`) or the world failed it (`.runtime`);
/// the message names the builtin or operator (`context`) and keeps the library's words.
func languageError(_ error: Error, context: String?) -> SparcError {
    let prefix = context.map { "\($0): " } ?? ""
    switch error {
    case let e as SparcError: return e
    case is Interrupted: return SparcError(.interrupted, "interrupted")
    case is TensorError, is MaskError, is WorkflowError, is AttributionError:
        return SparcError(.value, prefix + "\(error)")
    default:  // model, file format and system errors
        return SparcError(.runtime, prefix + "\(error)")
    }
}

/// The address of a local of the caller's frame: how far down the stack evaluation is.
@inline(__always)
func currentStackAddress() -> UInt {
    var marker: UInt8 = 0
    return withUnsafeMutablePointer(to: &marker) { UInt(bitPattern: $0) }
}
