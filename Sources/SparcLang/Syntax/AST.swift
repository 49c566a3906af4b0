/// The syntax tree. Every expression and statement keeps its source location so that
/// runtime errors can point at it.
public struct Expr: Sendable {
    public indirect enum Kind: Sendable {
        case number(Double)
        case string([InterpolatedPart])
        case bool(Bool)
        case nilLiteral
        case identifier(String)
        case list([Expr])
        case record([(String, Expr)])
        case unary(String, Expr)
        case binary(String, Expr, Expr)
        case logical(String, Expr, Expr)          // and / or, short-circuiting
        case call(Expr, [CallArgument])
        case index(Expr, [IndexItem])
        case member(Expr, String)
        case function(FunctionDecl)
    }
    public let kind: Kind
    public let location: SourceLocation
}

public enum InterpolatedPart: Sendable {
    case text(String)
    case expression(Expr)
}

public struct CallArgument: Sendable {
    public let name: String?
    public let value: Expr
}

public enum IndexItem: Sendable {
    case single(Expr)
    case slice(Expr?, Expr?)
}

public final class FunctionDecl: Sendable {
    public let name: String
    public let parameters: [(name: String, defaultValue: Expr?)]
    public let body: [Stmt]
    public let location: SourceLocation

    init(name: String, parameters: [(name: String, defaultValue: Expr?)], body: [Stmt], location: SourceLocation) {
        self.name = name
        self.parameters = parameters
        self.body = body
        self.location = location
    }
}

public struct Stmt: Sendable {
    public indirect enum Kind: Sendable {
        case binding(name: String, mutable: Bool, value: Expr)
        case assign(target: Expr, value: Expr)
        case expression(Expr)
        case ifElse(condition: Expr, then: [Stmt], otherwise: [Stmt]?)
        case forIn(name: String, sequence: Expr, body: [Stmt])
        case whileLoop(condition: Expr, body: [Stmt])
        case returnValue(Expr?)
        case breakLoop
        case continueLoop
        case importModule(String)
    }
    public let kind: Kind
    public let location: SourceLocation
}
