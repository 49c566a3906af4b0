import Testing
@testable import SparcLang

@Suite struct LexerTests {
    func kinds(_ s: String) throws -> [TokenKind] {
        var l = Lexer(Source(name: "t", text: s))
        return try l.tokens().map(\.kind)
    }

    @Test func tokensCarryPositions() throws {
        var l = Lexer(Source(name: "t", text: "let x = 1\n  y"))
        let t = try l.tokens()
        #expect(t.map(\.location) == [.init(line: 1, column: 1), .init(line: 1, column: 5), .init(line: 1, column: 7),
                                       .init(line: 1, column: 9), .init(line: 1, column: 10), .init(line: 2, column: 3),
                                       .init(line: 2, column: 4)])
    }

    @Test func numbersStringsAndSymbols() throws {
        #expect(try kinds("1_000 2.5e-3 x.y") == [.number(1000), .number(0.0025), .identifier("x"), .symbol("."), .identifier("y"), .end])
        #expect(try kinds(#""a\n{x}\{b\}""#) == [.string([.text("a\n"), .interpolation("x", .init(line: 1, column: 6)), .text("{b}")]), .end])
        #expect(try kinds("a ** b != c @ d") == [.identifier("a"), .symbol("**"), .identifier("b"), .symbol("!="), .identifier("c"), .symbol("@"), .identifier("d"), .end])
    }

    @Test func newlinesEndStatementsExceptAfterOperatorsAndInsideBrackets() throws {
        #expect(try kinds("a +\nb") == [.identifier("a"), .symbol("+"), .identifier("b"), .end])
        #expect(try kinds("f(1,\n2)") == [.identifier("f"), .symbol("("), .number(1), .symbol(","), .number(2), .symbol(")"), .end])
        #expect(try kinds("a\nb") == [.identifier("a"), .newline, .identifier("b"), .end])
        #expect(try kinds("#!/usr/bin/env sparc\nx # note") == [.identifier("x"), .end])
    }

    @Test func lexicalErrorsAreLocated() {
        #expect(Session().error("let s = \"abc") == "test.sparc:1:9: error: unterminated string\nlet s = \"abc\n        ^")
        #expect(Session().error("x = 1 $ 2") == "test.sparc:1:7: error: unexpected character \"$\"\nx = 1 $ 2\n      ^")
        #expect(Session().error("1e999") == "test.sparc:1:1: error: number literal 1e999 is out of range\n1e999\n^")
    }
}

@Suite struct ParserTests {
    @Test func precedenceAndAssociativity() throws {
        let s = Session()
        #expect(try s.eval("1 + 2 * 3") == "7")
        #expect(try s.eval("(1 + 2) * 3") == "9")
        #expect(try s.eval("2 ** 3 ** 2") == "512")
        #expect(try s.eval("-2 ** 2") == "-4")
        #expect(try s.eval("10 - 4 - 3") == "3")
        #expect(try s.eval("1 < 2 and 2 < 3 or false") == "true")
        #expect(try s.eval("not 1 == 2") == "true")
        #expect(try s.eval("7 % 3 + 8 / 4") == "3")
    }

    @Test func incompleteInputAsksForMore() {
        for code in ["fn f(x) {", "let xs = [1, 2,", "if x {\n  1\n", "f(1,", "{a: 1,"] {
            do { _ = try Parser.parse(Source(name: "t", text: code)); Issue.record("parsed \(code)") }
            catch let e as SparcError { #expect(e.needsMoreInput, "\(code): \(e)") }
            catch { Issue.record("\(error)") }
        }
        do { _ = try Parser.parse(Source(name: "t", text: "let = 3")) }
        catch let e as SparcError { #expect(!e.needsMoreInput) }
        catch { Issue.record("\(error)") }
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let deep = String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000)
        #expect(Session().error(deep).contains("nesting too deep"))
        let blocks = String(repeating: "if true {", count: 3000) + String(repeating: "}", count: 3000)
        #expect(Session().error(blocks).contains("nesting too deep"))
        let unary = String(repeating: "-", count: 10000) + "1"
        #expect(Session().error(unary).contains("nesting too deep"))
    }
}
