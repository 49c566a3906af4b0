/// Turns source text into tokens, each with its line and column.
///
/// Newlines end statements except inside brackets and after a binary operator or
/// comma, so long expressions can span lines. `#` starts a comment (so a `#!` shebang
/// line is one too).
struct Lexer {
    private let chars: [Character]
    private let source: Source
    private var i = 0
    private var line = 1
    private var column = 1
    private var depth = 0  // open ( and [: newlines inside them are not statement ends

    init(_ source: Source) {
        self.source = source
        // A combining mark after a quote or bracket joins it into one Character ("\"\u{301}"
        // is not == "\""): split such clusters so syntax characters stand alone. Clusters
        // led by a letter or digit (a decomposed "é") stay whole.
        chars = source.text.flatMap { c -> [Character] in
            guard c.unicodeScalars.count > 1, let first = c.unicodeScalars.first, first.isASCII,
                  !first.properties.isAlphabetic, !("0"..."9").contains(first) else { return [c] }
            return c.unicodeScalars.map(Character.init)
        }
    }

    mutating func tokens() throws -> [Token] {
        var out: [Token] = []
        while true {
            skipSpaceAndComments()
            let loc = SourceLocation(line: line, column: column)
            guard i < chars.count else {
                out.append(Token(kind: .end, location: loc))
                return out
            }
            let c = chars[i]
            if c == "\n" {
                advance()
                if depth == 0, let last = out.last, !continuesLine(last) {
                    out.append(Token(kind: .newline, location: loc))
                }
            } else if c.isNumber && c.isASCII {
                out.append(Token(kind: .number(try number(loc)), location: loc))
            } else if c == "\"" {
                out.append(Token(kind: .string(try string(loc)), location: loc))
            } else if c.isLetter || c == "_" {
                var name = ""
                while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" { name.append(chars[i]); advance() }
                out.append(Token(kind: keywords.contains(name) ? .keyword(name) : .identifier(name), location: loc))
            } else {
                out.append(Token(kind: .symbol(try symbol(loc)), location: loc))
            }
        }
    }

    /// A newline after these tokens continues the statement.
    private func continuesLine(_ t: Token) -> Bool {
        switch t.kind {
        case .newline: return true
        case .symbol(let s): return ["+", "-", "*", "/", "%", "@", "=", "==", "!=", "<", "<=", ">", ">=", "|", "&", ",", "=>", "{", ":", "~", "**", "(", "["].contains(s)
        case .keyword(let k): return ["and", "or", "not", "else", "in"].contains(k)
        default: return false
        }
    }

    private mutating func advance() {
        if chars[i] == "\n" { line += 1; column = 1 } else { column += 1 }
        i += 1
    }

    private mutating func skipSpaceAndComments() {
        while i < chars.count {
            // Any horizontal space (a no-break space pasted from a web page, too).
            if chars[i] == "\r" || (chars[i].isWhitespace && !chars[i].isNewline) { advance() }
            else if chars[i] == "#" { while i < chars.count && chars[i] != "\n" { advance() } }
            else { return }
        }
    }

    private mutating func number(_ loc: SourceLocation) throws -> Double {
        var text = ""
        while i < chars.count, chars[i].isASCII, chars[i].isNumber || chars[i] == "_" {
            if chars[i] != "_" { text.append(chars[i]) }
            advance()
        }
        if i + 1 < chars.count, chars[i] == ".", chars[i + 1].isASCII, chars[i + 1].isNumber {
            text.append("."); advance()
            while i < chars.count, chars[i].isASCII, chars[i].isNumber { text.append(chars[i]); advance() }
        }
        if i < chars.count, chars[i] == "e" || chars[i] == "E" {
            var exp = "e"
            var j = i + 1
            if j < chars.count, chars[j] == "+" || chars[j] == "-" { exp.append(chars[j]); j += 1 }
            if j < chars.count, chars[j].isASCII, chars[j].isNumber {
                while i < j { advance() }
                text += exp
                while i < chars.count, chars[i].isASCII, chars[i].isNumber { text.append(chars[i]); advance() }
            }
        }
        guard let v = Double(text), v.isFinite else {
            throw SparcError(.syntax, "number literal \(text.prefix(40)) is out of range", at: loc, in: source)
        }
        return v
    }

    /// A string with escapes (\n \t \" \\ \{ \}) and `{expression}` interpolation.
    private mutating func string(_ loc: SourceLocation) throws -> [StringPart] {
        advance()  // opening quote
        var parts: [StringPart] = []
        var text = ""
        while true {
            guard i < chars.count, chars[i] != "\n" else {
                throw SparcError(.syntax, "unterminated string", at: loc, in: source)
            }
            let c = chars[i]
            if c == "\"" { advance(); break }
            if c == "\\" {
                let escLoc = SourceLocation(line: line, column: column)
                advance()
                guard i < chars.count else { throw SparcError(.syntax, "unterminated string", at: loc, in: source) }
                switch chars[i] {
                case "n": text.append("\n")
                case "t": text.append("\t")
                case "r": text.append("\r")
                case "0": text.append("\0")
                case "\"", "\\", "{", "}": text.append(chars[i])
                default: throw SparcError(.syntax, "unknown escape \\\(chars[i])", at: escLoc, in: source)
                }
                advance()
            } else if c == "{" {
                if !text.isEmpty { parts.append(.text(text)); text = "" }
                advance()
                let exprLoc = SourceLocation(line: line, column: column)
                var expr = "", nesting = 0
                while true {
                    guard i < chars.count, chars[i] != "\n" else {
                        throw SparcError(.syntax, "unterminated {…} in string", at: exprLoc, in: source)
                    }
                    if chars[i] == "\"" {
                        // A string inside the expression: copy it whole, braces and all.
                        expr.append(chars[i]); advance()
                        while i < chars.count, chars[i] != "\"", chars[i] != "\n" {
                            if chars[i] == "\\", i + 1 < chars.count { expr.append(chars[i]); advance() }
                            expr.append(chars[i]); advance()
                        }
                        guard i < chars.count, chars[i] == "\"" else {
                            throw SparcError(.syntax, "unterminated string inside {…}", at: exprLoc, in: source)
                        }
                        expr.append(chars[i]); advance()
                        continue
                    }
                    if chars[i] == "{" { nesting += 1 }
                    if chars[i] == "}" { if nesting == 0 { break }; nesting -= 1 }
                    expr.append(chars[i]); advance()
                }
                advance()  // closing brace
                parts.append(.interpolation(expr, exprLoc))
            } else {
                text.append(c); advance()
            }
        }
        if !text.isEmpty || parts.isEmpty { parts.append(.text(text)) }
        return parts
    }

    private mutating func symbol(_ loc: SourceLocation) throws -> String {
        let two = i + 1 < chars.count ? String(chars[i]) + String(chars[i + 1]) : ""
        if ["==", "!=", "<=", ">=", "=>", "**"].contains(two) { advance(); advance(); return two }
        let c = String(chars[i])
        guard "+-*/%@=<>()[]{},.:|&~;".contains(chars[i]) else {
            throw SparcError(.syntax, "unexpected character \(c.debugDescription)", at: loc, in: source)
        }
        advance()
        if "([".contains(c) { depth += 1 }
        if ")]".contains(c) { depth = max(0, depth - 1) }
        return c
    }
}
