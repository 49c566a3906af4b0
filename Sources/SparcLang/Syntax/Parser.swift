/// Recursive-descent parser, one function per precedence level (lowest first):
///
///     or → and → not → comparison (== != < <= > >=) → | → & → + - → * / % @
///        → unary (- ~) → ** → postfix (call, index, member) → primary
///
/// Nesting deeper than `maxDepth` is a syntax error, not a stack overflow. The budget
/// is the height of the syntax tree, which evaluating and freeing it recurse through:
/// brackets, blocks and prefix operators count one level each, so does every link of an
/// operator, call, index or member chain (`1+1+…+1` is a tree as deep as it is long),
/// and a string's `{…}` parts are parsed on the same budget as the code around them.
public struct Parser {
    private let source: Source
    private var tokens: [Token]
    private var p = 0
    private var depth = 0
    static let maxDepth = 1000

    public init(_ source: Source) throws {
        self.source = source
        var lexer = Lexer(source)
        tokens = try lexer.tokens()
    }

    /// Parses a whole program.
    public static func parse(_ source: Source) throws -> [Stmt] {
        var parser = try Parser(source)
        return try parser.program()
    }

    /// Parses the source of one `{expression}` inside a string, `depth` levels deep already.
    static func parseInterpolation(_ text: String, at loc: SourceLocation, in source: Source, depth: Int) throws -> Expr {
        // Pad so columns in errors point into the original line.
        let padded = String(repeating: "\n", count: loc.line - 1) + String(repeating: " ", count: loc.column - 1) + text
        do {
            var parser = try Parser(Source(name: source.name, text: padded))
            parser.depth = depth
            parser.skipNewlines()
            let e = try parser.expression()
            guard case .end = parser.peek.kind else { throw parser.error("unexpected \(parser.describe(parser.peek)) in interpolation") }
            return e
        } catch var e as SparcError {
            // Report against the real line; the string itself is complete.
            e.source = source
            e.needsMoreInput = false
            throw e
        }
    }

    mutating func program() throws -> [Stmt] {
        var stmts: [Stmt] = []
        skipSeparators()
        while !isAtEnd {
            stmts.append(try statement())
            if !isAtEnd { try expectSeparator() }
            skipSeparators()
        }
        return stmts
    }

    // MARK: statements

    private mutating func statement() throws -> Stmt {
        let loc = peek.location
        switch peek.kind {
        case .keyword("let"), .keyword("var"):
            let mutable = peek.kind == .keyword("var")
            advance()
            let name = try identifier("a variable name")
            try expect("=", "after the variable name")
            return Stmt(kind: .binding(name: name, mutable: mutable, value: try expression()), location: loc)
        case .keyword("fn") where isIdentifier(peekAhead(1)):
            advance()
            let nameLoc = peek.location
            let name = try identifier("a function name")
            let decl = try functionRest(name: name, location: nameLoc)
            return Stmt(kind: .binding(name: name, mutable: false, value: Expr(kind: .function(decl), location: loc)), location: loc)
        case .keyword("if"):
            return try ifStatement()
        case .keyword("for"):
            advance()
            let name = try identifier("a loop variable")
            try expectKeyword("in", "after the loop variable")
            let seq = try expression()
            return Stmt(kind: .forIn(name: name, sequence: seq, body: try block()), location: loc)
        case .keyword("while"):
            advance()
            let cond = try expression()
            return Stmt(kind: .whileLoop(condition: cond, body: try block()), location: loc)
        case .keyword("return"):
            advance()
            if isSeparator(peek) || peek.kind == .symbol("}") || isAtEnd { return Stmt(kind: .returnValue(nil), location: loc) }
            return Stmt(kind: .returnValue(try expression()), location: loc)
        case .keyword("break"): advance(); return Stmt(kind: .breakLoop, location: loc)
        case .keyword("continue"): advance(); return Stmt(kind: .continueLoop, location: loc)
        case .keyword("import"):
            advance()
            guard case .string(let parts) = peek.kind, parts.count == 1, case .text(let name) = parts[0] else {
                throw error("import needs a module name in quotes, e.g. import \"ioi\"")
            }
            advance()
            return Stmt(kind: .importModule(name), location: loc)
        default:
            let e = try expression()
            if peek.kind == .symbol("=") {
                let eqLoc = peek.location
                advance()
                switch e.kind {
                case .identifier, .index, .member: break
                default: throw SparcError(.syntax, "cannot assign to this expression", at: eqLoc, in: source)
                }
                return Stmt(kind: .assign(target: e, value: try expression()), location: eqLoc)
            }
            return Stmt(kind: .expression(e), location: loc)
        }
    }

    private mutating func ifStatement() throws -> Stmt {
        try enter()  // `else if` chains nest
        defer { depth -= 1 }
        let loc = peek.location
        advance()  // if
        let cond = try expression()
        let then = try block()
        var otherwise: [Stmt]? = nil
        // `else` may start the next line.
        let save = p
        skipNewlines()
        if peek.kind == .keyword("else") {
            advance()
            otherwise = peek.kind == .keyword("if") ? [try ifStatement()] : try block()
        } else {
            p = save
        }
        return Stmt(kind: .ifElse(condition: cond, then: then, otherwise: otherwise), location: loc)
    }

    private mutating func block() throws -> [Stmt] {
        try enter()
        defer { depth -= 1 }
        try expect("{", "to open a block")
        var stmts: [Stmt] = []
        skipSeparators()
        while peek.kind != .symbol("}") {
            if isAtEnd { throw needMore("expected } to close the block") }
            stmts.append(try statement())
            if peek.kind != .symbol("}") { try expectSeparator() }
            skipSeparators()
        }
        advance()
        return stmts
    }

    private mutating func functionRest(name: String, location: SourceLocation) throws -> FunctionDecl {
        try expect("(", "to open the parameter list")
        var params: [(name: String, defaultValue: Expr?)] = []
        var seenDefault = false
        while peek.kind != .symbol(")") {
            let paramLoc = peek.location
            let pname = try identifier("a parameter name")
            if params.contains(where: { $0.name == pname }) {
                throw SparcError(.syntax, "duplicate parameter \(pname)", at: paramLoc, in: source)
            }
            var def: Expr? = nil
            if peek.kind == .symbol("=") { advance(); def = try expression(); seenDefault = true }
            else if seenDefault { throw SparcError(.syntax, "parameter \(pname) needs a default value (it follows one that has one)", at: paramLoc, in: source) }
            params.append((pname, def))
            if peek.kind == .symbol(",") { advance() } else if peek.kind != .symbol(")") {
                throw isAtEnd ? needMore("expected ) to close the parameter list") : error("expected , or ) in the parameter list, found \(describe(peek))")
            }
        }
        advance()
        let body: [Stmt]
        if peek.kind == .symbol("=>") {
            let arrow = peek.location
            advance()
            body = [Stmt(kind: .returnValue(try expression()), location: arrow)]
        } else {
            body = try block()
        }
        return FunctionDecl(name: name, parameters: params, body: body, location: location)
    }

    // MARK: expressions

    mutating func expression() throws -> Expr {
        try enter()
        defer { depth -= 1 }
        return try orExpr()
    }

    private mutating func orExpr() throws -> Expr { try logical("or", operand: { try $0.andExpr() }) }
    private mutating func andExpr() throws -> Expr { try logical("and", operand: { try $0.notExpr() }) }

    /// A left-associative chain of `and` or `or`.
    private mutating func logical(_ keyword: String, operand: (inout Parser) throws -> Expr) throws -> Expr {
        var e = try operand(&self)
        let outer = depth
        defer { depth = outer }
        while peek.kind == .keyword(keyword) {
            try enter()  // each link makes the tree one level deeper
            let loc = peek.location; advance()
            e = Expr(kind: .logical(keyword, e, try operand(&self)), location: loc)
        }
        return e
    }

    private mutating func notExpr() throws -> Expr {
        if peek.kind == .keyword("not") {
            let loc = peek.location; advance()
            try enter(); defer { depth -= 1 }
            return Expr(kind: .unary("not", try notExpr()), location: loc)
        }
        return try binaryLevel(0)
    }

    private static let levels: [[String]] = [["==", "!=", "<", "<=", ">", ">="], ["|"], ["&"], ["+", "-"], ["*", "/", "%", "@"]]

    private mutating func binaryLevel(_ level: Int) throws -> Expr {
        if level == Parser.levels.count { return try unary() }
        var e = try binaryLevel(level + 1)
        let outer = depth
        defer { depth = outer }
        while case .symbol(let op) = peek.kind, Parser.levels[level].contains(op) {
            try enter()  // each link makes the tree one level deeper
            let loc = peek.location; advance()
            e = Expr(kind: .binary(op, e, try binaryLevel(level + 1)), location: loc)
        }
        return e
    }

    private mutating func unary() throws -> Expr {
        if case .symbol(let op) = peek.kind, op == "-" || op == "~" {
            let loc = peek.location; advance()
            try enter(); defer { depth -= 1 }
            return Expr(kind: .unary(op, try unary()), location: loc)
        }
        return try power()
    }

    private mutating func power() throws -> Expr {
        let base = try postfix()
        if peek.kind == .symbol("**") {
            let loc = peek.location; advance()
            try enter(); defer { depth -= 1 }
            return Expr(kind: .binary("**", base, try unary()), location: loc)  // right-associative
        }
        return base
    }

    private mutating func postfix() throws -> Expr {
        var e = try primary()
        let outer = depth
        defer { depth = outer }
        while true {
            let loc = peek.location
            if [.symbol("("), .symbol("["), .symbol(".")].contains(peek.kind) { try enter() }  // one level per link
            if peek.kind == .symbol("(") {
                advance()
                e = Expr(kind: .call(e, try arguments()), location: e.location)  // errors point at the callee
            } else if peek.kind == .symbol("[") {
                advance()
                e = Expr(kind: .index(e, try indexItems()), location: loc)
            } else if peek.kind == .symbol(".") {
                advance()
                let nameLoc = peek.location
                let name = try identifier("a field or function name after .")
                e = Expr(kind: .member(e, name), location: nameLoc)
            } else {
                return e
            }
        }
    }

    private mutating func arguments() throws -> [CallArgument] {
        var args: [CallArgument] = []
        var seenNamed = false
        while peek.kind != .symbol(")") {
            if isAtEnd { throw needMore("expected ) to close the argument list") }
            if case .identifier(let name) = peek.kind, peekAhead(1).kind == .symbol(":") {
                advance(); advance()
                args.append(CallArgument(name: name, value: try expression()))
                seenNamed = true
            } else {
                if seenNamed { throw error("positional argument after a named one") }
                args.append(CallArgument(name: nil, value: try expression()))
            }
            if peek.kind == .symbol(",") { advance() } else if peek.kind != .symbol(")") {
                throw isAtEnd ? needMore("expected ) to close the argument list") : error("expected , or ) in the argument list, found \(describe(peek))")
            }
        }
        advance()
        return args
    }

    private mutating func indexItems() throws -> [IndexItem] {
        var items: [IndexItem] = []
        while true {
            if isAtEnd { throw needMore("expected ] to close the index") }
            var start: Expr? = nil
            if peek.kind != .symbol(":") { start = try expression() }
            if peek.kind == .symbol(":") {
                advance()
                var stop: Expr? = nil
                if peek.kind != .symbol(",") && peek.kind != .symbol("]") { stop = try expression() }
                items.append(.slice(start, stop))
            } else if let s = start {
                items.append(.single(s))
            }
            if peek.kind == .symbol(",") { advance(); continue }
            if peek.kind == .symbol("]") { advance(); return items }
            throw isAtEnd ? needMore("expected ] to close the index") : error("expected , : or ] in the index, found \(describe(peek))")
        }
    }

    private mutating func primary() throws -> Expr {
        let t = peek
        let loc = t.location
        switch t.kind {
        case .number(let v): advance(); return Expr(kind: .number(v), location: loc)
        case .string(let parts):
            advance()
            return Expr(kind: .string(try parts.map { part in
                switch part {
                case .text(let s): return .text(s)
                case .interpolation(let code, let at):
                    try enter(); defer { depth -= 1 }
                    return .expression(try Parser.parseInterpolation(code, at: at, in: source, depth: depth))
                }
            }), location: loc)
        case .keyword("true"): advance(); return Expr(kind: .bool(true), location: loc)
        case .keyword("false"): advance(); return Expr(kind: .bool(false), location: loc)
        case .keyword("nil"): advance(); return Expr(kind: .nilLiteral, location: loc)
        case .identifier(let name): advance(); return Expr(kind: .identifier(name), location: loc)
        case .keyword("fn"):
            advance()
            return Expr(kind: .function(try functionRest(name: "<anonymous>", location: loc)), location: loc)
        case .symbol("("):
            advance()
            let e = try expression()
            if isAtEnd { throw needMore("expected ) to close the parenthesis") }
            try expect(")", "to close the parenthesis")
            return e
        case .symbol("["):
            advance()
            var items: [Expr] = []
            while peek.kind != .symbol("]") {
                if isAtEnd { throw needMore("expected ] to close the list") }
                items.append(try expression())
                if peek.kind == .symbol(",") { advance() } else if peek.kind != .symbol("]") {
                    throw isAtEnd ? needMore("expected ] to close the list") : error("expected , or ] in the list, found \(describe(peek))")
                }
            }
            advance()
            return Expr(kind: .list(items), location: loc)
        case .symbol("{"):
            advance()
            var fields: [(String, Expr)] = []
            skipNewlines()
            while peek.kind != .symbol("}") {
                if isAtEnd { throw needMore("expected } to close the record") }
                let key: String
                switch peek.kind {
                case .identifier(let k), .keyword(let k): key = k
                case .string(let parts) where parts.count == 1:
                    guard case .text(let k) = parts[0] else { throw error("record keys are names or plain strings") }
                    key = k
                default: throw error("expected a field name in the record, found \(describe(peek))")
                }
                advance()
                try expect(":", "after the field name")
                if fields.contains(where: { $0.0 == key }) { throw error("duplicate field \(key)") }
                fields.append((key, try expression()))
                skipNewlines()
                if peek.kind == .symbol(",") { advance(); skipNewlines() } else if peek.kind != .symbol("}") {
                    throw isAtEnd ? needMore("expected } to close the record") : error("expected , or } in the record, found \(describe(peek))")
                }
            }
            advance()
            return Expr(kind: .record(fields), location: loc)
        case .end:
            throw needMore("unexpected end of input")
        default:
            throw error("expected an expression, found \(describe(t))")
        }
    }

    // MARK: helpers

    private var peek: Token { tokens[p] }
    private func peekAhead(_ n: Int) -> Token { tokens[min(p + n, tokens.count - 1)] }
    private var isAtEnd: Bool { peek.kind == .end }
    private mutating func advance() { if p < tokens.count - 1 { p += 1 } }
    private func isSeparator(_ t: Token) -> Bool { t.kind == .newline || t.kind == .symbol(";") }
    private func isIdentifier(_ t: Token) -> Bool { if case .identifier = t.kind { return true }; return false }
    private mutating func skipNewlines() { while peek.kind == .newline { advance() } }
    private mutating func skipSeparators() { while isSeparator(peek) { advance() } }

    private mutating func enter() throws {
        depth += 1
        if depth > Parser.maxDepth { throw error("nesting too deep (more than \(Parser.maxDepth) levels)") }
    }

    private mutating func expectSeparator() throws {
        if isAtEnd { throw needMore("expected a new line or ; after the statement") }
        guard isSeparator(peek) else { throw error("expected a new line or ; after the statement, found \(describe(peek))") }
        advance()
    }

    private mutating func expect(_ symbol: String, _ context: String) throws {
        guard peek.kind == .symbol(symbol) else {
            throw isAtEnd ? needMore("expected \(symbol) \(context)") : error("expected \(symbol) \(context), found \(describe(peek))")
        }
        advance()
    }

    private mutating func expectKeyword(_ k: String, _ context: String) throws {
        guard peek.kind == .keyword(k) else { throw isAtEnd ? needMore("expected \(k) \(context)") : error("expected \(k) \(context), found \(describe(peek))") }
        advance()
    }

    private mutating func identifier(_ what: String) throws -> String {
        guard case .identifier(let name) = peek.kind else {
            throw isAtEnd ? needMore("expected \(what)") : error("expected \(what), found \(describe(peek))")
        }
        advance()
        return name
    }

    private func error(_ message: String) -> SparcError { SparcError(.syntax, message, at: peek.location, in: source) }

    private func needMore(_ message: String) -> SparcError {
        var e = SparcError(.syntax, message, at: peek.location, in: source)
        e.needsMoreInput = true
        return e
    }

    func describe(_ t: Token) -> String {
        switch t.kind {
        case .number(let v): return "number \(formatNumber(v))"
        case .string: return "a string"
        case .identifier(let n): return "name \(n)"
        case .keyword(let k): return "keyword \(k)"
        case .symbol(let s): return "'\(s)'"
        case .newline: return "end of line"
        case .end: return "end of input"
        }
    }
}
