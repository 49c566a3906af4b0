/// A position in a source text: 1-based line and column (columns count characters).
public struct SourceLocation: Equatable, Sendable, CustomStringConvertible {
    public let line: Int
    public let column: Int
    public init(line: Int, column: Int) { self.line = line; self.column = column }
    public var description: String { "\(line):\(column)" }
}

/// A named source text, kept so that errors can quote the offending line.
public final class Source: Sendable {
    public let name: String
    public let text: String
    public let lines: [Substring]

    public init(name: String, text: String) {
        self.name = name
        // Windows line ends and a byte-order mark are how editors save files, not code:
        // "\r\n" is one Character in Swift, which would hide the end of a comment line.
        var text = text.replacingOccurrences(of: "\r\n", with: "\n")
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        self.text = text
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }
}

/// Any error the language reports: where, and what.
public struct SparcError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case syntax, name, type, value, runtime, interrupted }
    public let kind: Kind
    public let message: String
    public var location: SourceLocation?
    public var source: Source?
    /// True for a syntax error at the end of the input: more lines could complete it (REPL).
    public var needsMoreInput = false

    public init(_ kind: Kind, _ message: String, at location: SourceLocation? = nil, in source: Source? = nil) {
        self.kind = kind
        self.message = message
        self.location = location
        self.source = source
    }

    /// `FILE:LINE:COL: error: MESSAGE`, then the source line and a caret under the column.
    public var description: String {
        guard let loc = location, let src = source else { return "error: \(message)" }
        var out = "\(src.name):\(loc.line):\(loc.column): error: \(message)"
        if loc.line >= 1 && loc.line <= src.lines.count {
            // A long line (a generated script) is shown as a window around the column.
            var line = Array(String(src.lines[loc.line - 1]).replacingTabs())
            var caret = max(0, loc.column - 1)
            let width = 120
            if line.count > width {
                let start = min(max(0, caret - width / 2), line.count - width)
                let end = start + width
                line = (start > 0 ? ["…"] : []) + Array(line[start..<end]) + (end < line.count ? ["…"] : [])
                caret -= start - (start > 0 ? 1 : 0)
            }
            out += "\n\(String(line))\n" + String(repeating: " ", count: caret) + "^"
        }
        return out
    }

    func located(_ loc: SourceLocation, _ src: Source) -> SparcError {
        var e = self
        if e.location == nil { e.location = loc; e.source = src }
        return e
    }
}

extension String {
    /// Tabs shown as single spaces so that the caret lines up with the column count.
    func replacingTabs() -> String { String(map { $0 == "\t" ? " " : $0 }) }
}
