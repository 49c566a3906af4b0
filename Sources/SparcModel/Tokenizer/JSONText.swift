import Foundation

/// A JSON reader for tokenizer files that keeps every object member and every string as
/// written. Foundation's `JSONSerialization` cannot: its dictionaries compare keys by
/// canonical equivalence (the vocabulary entries "é" and "e\u{301}" become one) and, on
/// Linux, a string that is only U+FEFF reads as "" (Gemma 3's vocabulary has 434 such
/// pairs and 6 such tokens). Values convert to the Foundation types `JSONSerialization`
/// gives (NSNumber, NSNull, String, [Any], [String: Any]) where that loses nothing.
indirect enum JSONText {
    case null, bool(Bool), number(NSNumber), string(String), array([JSONText])
    /// Members in file order, repeated keys included.
    case object([(key: String, value: JSONText)])

    struct ParseError: Error { let offset: Int; let message: String }

    static func parse(_ data: Data) throws -> JSONText {
        var p = Parser(bytes: [UInt8](data))
        if p.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { p.i = 3 }  // a UTF-8 byte-order mark
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == p.bytes.count else { throw ParseError(offset: p.i, message: "text after the JSON value") }
        return v
    }

    /// The member `key` of an object (the last, if repeated).
    subscript(key: String) -> JSONText? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.key.utf8.elementsEqual(key.utf8) }?.value
    }

    /// The value as `JSONSerialization` would give it (objects: repeated keys keep the last).
    var foundation: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let b): return NSNumber(value: b)
        case .number(let n): return n
        case .string(let s): return s
        case .array(let a): return a.map(\.foundation)
        case .object(let members):
            var d: [String: Any] = [:]
            for (k, v) in members { d[k] = v.foundation }
            return d
        }
    }

    private struct Parser {
        var bytes: [UInt8]
        var i = 0
        static let maxDepth = 512

        func fail(_ m: String) -> ParseError { ParseError(offset: i, message: m) }

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        mutating func value(depth: Int) throws -> JSONText {
            guard depth < Self.maxDepth else { throw fail("nested too deeply") }
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var members: [(key: String, value: JSONText)] = []
                skipSpace()
                if i < bytes.count && bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
                    let key = try string()
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    i += 1
                    members.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    guard i < bytes.count else { throw fail("unterminated object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    guard bytes[i] == UInt8(ascii: "}") else { throw fail("expected ',' or '}'") }
                    i += 1
                    return .object(members)
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [JSONText] = []
                skipSpace()
                if i < bytes.count && bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < bytes.count else { throw fail("unterminated array") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    guard bytes[i] == UInt8(ascii: "]") else { throw fail("expected ',' or ']'") }
                    i += 1
                    return .array(items)
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default:
                return .number(try number())
            }
        }

        mutating func literal(_ word: String) throws {
            let w = Array(word.utf8)
            guard i + w.count <= bytes.count, bytes[i..<(i + w.count)].elementsEqual(w) else { throw fail("invalid literal") }
            i += w.count
        }

        mutating func number() throws -> NSNumber {
            let start = i
            if i < bytes.count && bytes[i] == UInt8(ascii: "-") { i += 1 }
            var integral = true
            while i < bytes.count {
                let c = bytes[i]
                if c >= 0x30 && c <= 0x39 { i += 1; continue }
                if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                    integral = false; i += 1; continue
                }
                break
            }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            if integral, let n = Int(text) { return NSNumber(value: n) }
            guard let d = Double(text), text.first != "+", text != "-" else { throw ParseError(offset: start, message: "invalid number") }
            return NSNumber(value: d)
        }

        /// A string literal, `i` at its opening quote.
        mutating func string() throws -> String {
            i += 1
            var out: [UInt8] = []
            while true {
                guard i < bytes.count else { throw fail("unterminated string") }
                let c = bytes[i]
                if c == UInt8(ascii: "\"") { i += 1; break }
                guard c >= 0x20 else { throw fail("control character in a string") }
                if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
                i += 1
                guard i < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var v = try hex4()
                    if (0xD800..<0xDC00).contains(v), i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                        let save = i
                        i += 2
                        let low = try hex4()
                        if (0xDC00..<0xE000).contains(low) { v = 0x10000 + (v - 0xD800) << 10 + (low - 0xDC00) } else { i = save }
                    }
                    // A lone surrogate is not a character: U+FFFD, as decoders do.
                    out += String(Unicode.Scalar(v) ?? "\u{FFFD}").utf8
                default: throw fail("invalid escape")
                }
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw fail("a string is not valid UTF-8") }
            return s
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= bytes.count, bytes[i..<(i + 4)].allSatisfy({ Character(Unicode.Scalar($0)).isHexDigit }),
                  let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else {
                throw fail("invalid \\u escape")
            }
            i += 4
            return v
        }
    }
}

extension JSONText {
    /// Object members written in the order given, so that keys a dictionary would merge
    /// (canonically equivalent tokens) all reach the file.
    struct Members {
        let members: [(String, Any)]
    }

    struct WriteError: Error, CustomStringConvertible {
        let description: String
    }

    /// JSON text of Foundation-style values ([String: Any] with sorted keys, [Any], String,
    /// Bool, Int, Double, Float, NSNumber, NSNull) and `Members`, strings written as they are.
    static func serialize(_ value: Any) throws -> Data {
        var out: [UInt8] = []
        try write(value, into: &out)
        return Data(out)
    }

    private static func write(_ v: Any, into out: inout [UInt8]) throws {
        switch v {
        case let s as String: writeString(s, into: &out)
        case is NSNull: out += Array("null".utf8)
        case let b as Bool where type(of: v) == Bool.self: out += Array((b ? "true" : "false").utf8)
        case let i as Int where type(of: v) == Int.self: out += Array(String(i).utf8)
        case let d as Double where type(of: v) == Double.self: try writeNumber(d, into: &out)
        case let f as Float where type(of: v) == Float.self: try writeNumber(Double(f), into: &out)
        case let n as NSNumber:
            if String(cString: n.objCType) == "c" { out += Array((n.boolValue ? "true" : "false").utf8) }
            else if let i = Int(exactly: n.doubleValue), n.doubleValue.rounded() == n.doubleValue, String(cString: n.objCType) != "d", String(cString: n.objCType) != "f" {
                out += Array(String(i).utf8)
            } else { try writeNumber(n.doubleValue, into: &out) }
        case let m as Members:
            try writeObject(m.members, into: &out)
        case let d as [String: Any]:
            try writeObject(d.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }, into: &out)
        case let a as [Any]:
            out.append(UInt8(ascii: "["))
            for (k, item) in a.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                try write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        default:
            throw WriteError(description: "cannot write a \(type(of: v)) as JSON")
        }
    }

    private static func writeObject(_ members: [(String, Any)], into out: inout [UInt8]) throws {
        out.append(UInt8(ascii: "{"))
        for (k, (key, value)) in members.enumerated() {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            writeString(key, into: &out)
            out.append(UInt8(ascii: ":"))
            try write(value, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    private static func writeNumber(_ d: Double, into out: inout [UInt8]) throws {
        guard d.isFinite else { throw WriteError(description: "JSON has no \(d)") }
        out += Array((d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : "\(d)").utf8)
    }

    private static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += Array("\\\"".utf8)
            case UInt8(ascii: "\\"): out += Array("\\\\".utf8)
            case 0x0A: out += Array("\\n".utf8)
            case 0x0D: out += Array("\\r".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0..<0x20:
                let hex = String(b, radix: 16)
                out += Array(("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).utf8)
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
