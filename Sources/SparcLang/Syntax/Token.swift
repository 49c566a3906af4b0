public enum TokenKind: Equatable, Sendable {
    case number(Double)
    /// A string literal's parts: text, and the source of each `{expression}`.
    case string([StringPart])
    case identifier(String)
    case keyword(String)
    case symbol(String)
    case newline
    case end
}

public enum StringPart: Equatable, Sendable {
    case text(String)
    case interpolation(String, SourceLocation)
}

public struct Token: Equatable, Sendable {
    public let kind: TokenKind
    public let location: SourceLocation
}

let keywords: Set<String> = [
    "let", "var", "fn", "if", "else", "for", "in", "while", "return", "break", "continue",
    "import", "true", "false", "nil", "and", "or", "not",
]
