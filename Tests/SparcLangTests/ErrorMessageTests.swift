import Testing
@testable import SparcLang

/// Exact error text: `FILE:LINE:COL: error: MESSAGE`, the source line, a caret under the column.
@Suite struct ErrorMessageTests {
    static let cases: [(code: String, expected: String)] = [
        ("let x = 1\nprnt(x)",
         "test.sparc:2:1: error: unknown name prnt; did you mean print?\nprnt(x)\n^"),
        ("let xs = [1, 2]\nxs[7]",
         "test.sparc:2:3: error: index 7 out of range for a list of length 2\nxs[7]\n  ^"),
        ("let s = \"a\" * 3",
         "test.sparc:1:13: error: cannot apply * to a string and a number\nlet s = \"a\" * 3\n            ^"),
        ("fn f(a) => a\nf(1, 2)",
         "test.sparc:2:1: error: f(a) takes 1 argument, got 2\nf(1, 2)\n^"),
        ("range(\"x\")",
         "test.sparc:1:1: error: range: start must be a number, got string\nrange(\"x\")\n^"),
        ("zeros(2).foo",
         "test.sparc:1:10: error: tensor has no field or function foo\nzeros(2).foo\n         ^"),
        ("if x {\n}",
         "test.sparc:1:4: error: unknown name x\nif x {\n   ^"),
        ("let = 3",
         "test.sparc:1:5: error: expected a variable name, found '='\nlet = 3\n    ^"),
        ("for i in 3 { }",
         "test.sparc:1:10: error: cannot iterate over a number\nfor i in 3 { }\n         ^"),
        ("\tlet y = [1,\n\t  2] + 3",
         "test.sparc:2:7: error: cannot apply + to a list and a number\n   2] + 3\n      ^"),
        ("print(\"{1 +}\")",
         "test.sparc:1:12: error: unexpected end of input\nprint(\"{1 +}\")\n           ^"),
    ]

    @Test(arguments: cases)
    func exactText(code: String, expected: String) {
        #expect(Session().error(code) == expected)
    }
}
