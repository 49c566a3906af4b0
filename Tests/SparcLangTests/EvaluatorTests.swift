import Foundation
import Testing
import SparcTensor
@testable import SparcLang

@Suite struct EvaluatorTests {
    @Test func bindingsAndScopes() throws {
        let s = Session()
        try s.run("let a = 1\nvar b = 2\nb = b + a")
        #expect(try s.eval("b") == "3")
        #expect(try s.eval("if true { let a = 10\n a } else { 0 }\na") == "1")
        #expect(s.error("a = 5").contains("cannot assign to a: a was declared with let"))
        #expect(s.error("zz = 1").contains("unknown name zz (declare it first with let or var)"))
        #expect(s.error("let print = 1").contains("print is a builtin function"))
    }

    @Test func closuresCaptureTheirScope() throws {
        let s = Session()
        try s.run("""
            fn counter() {
              var n = 0
              fn next() { n = n + 1
                n }
              next
            }
            let c = counter()
            c(); c()
            """)
        #expect(try s.eval("c()") == "3")
        #expect(try s.eval("let add = fn(a, b = 10) => a + b\nadd(1) + add(1, b: 2)") == "14")
    }

    @Test func recursionAndControlFlow() throws {
        let s = Session()
        try s.run("fn fib(n) { if n < 2 { return n }\n fib(n - 1) + fib(n - 2) }")
        #expect(try s.eval("fib(20)") == "6765")
        try s.run("""
            var total = 0
            for i in range(10) {
              if i == 2 { continue }
              if i == 6 { break }
              total = total + i
            }
            var k = 0
            while k < 5 { k = k + 1 }
            """)
        #expect(try s.eval("[total, k]") == "[13, 5]")
        #expect(s.error("fn f(n) => f(n + 1)\nf(0)").contains("recursion too deep"))
        #expect(s.error("break").contains("break or continue outside a loop"))
    }

    @Test func namedArgumentsDefaultsAndMethodSugar() throws {
        let s = Session()
        try s.run("fn area(width, height = 2) => width * height")
        #expect(try s.eval("area(3)") == "6")
        #expect(try s.eval("area(height: 5, width: 2)") == "10")
        #expect(try s.eval("3.area(4)") == "12")
        #expect(try s.eval("[3, 1, 2].len()") == "3")
        #expect(try s.eval("[1, 2].append(3).len") == "3")
        #expect(s.error("area(1, heigth: 2)").contains("has no parameter heigth; did you mean height?"))
        #expect(s.error("area(1, 2, 3)").contains("takes 2 arguments, got 3"))
        #expect(s.error("area()").contains("missing argument width"))
    }

    @Test func valueSemanticsForListsAndRecords() throws {
        let s = Session()
        try s.run("var a = [1, 2, 3]\nvar b = a\nb[0] = 9\nvar r = {x: {y: 1}}\nr.x.y = 5\nr[\"z\"] = 2")
        #expect(try s.eval("a") == "[1, 2, 3]")
        #expect(try s.eval("b") == "[9, 2, 3]")
        #expect(try s.eval("r") == "{x: {y: 5}, z: 2}")
        #expect(try s.eval("a[-1] + a[1:][0]") == "5")
        #expect(try s.eval("\"hello\"[1:3]") == "\"el\"")
    }

    @Test func numbersFromStrings() throws {
        let s = Session(arguments: ["128", "0.5"])
        #expect(try s.eval("number(args[0]) * 2 + number(args[1])") == "256.5")
        #expect(try s.eval("number(\" -1e-3 \")") == "-0.001")
        #expect(try s.eval("number(7)") == "7")
        #expect(s.error("number(\"12 apples\")").contains("number: \"12 apples\" is not a number"))
        #expect(s.error("number(\"\")").contains("is not a number"))
        #expect(s.error("number([1])").contains("number"))
    }

    @Test func stringInterpolation() throws {
        let s = Session()
        try s.run("let n = 3\nlet name = \"sparc\"")
        #expect(try s.eval(#""{name} has {n * 2} items, \{literal\}""#) == #""sparc has 6 items, \{literal\}""#)
        #expect(try s.run(#""{[1, "a"]}""#).displayString == #"[1, "a"]"#)
        #expect(try s.run(#"let r = {k: 5}; "k is {r["k"]}, {"}"}""#).displayString == "k is 5, }")
    }

    @Test func equalityAndTruthiness() throws {
        let s = Session()
        #expect(try s.eval("[1, {a: 2}] == [1, {a: 2}]") == "true")
        #expect(try s.eval("nil == false") == "false")
        #expect(try s.eval("0 or \"default\"") == "\"default\"")
        #expect(try s.eval("1 / 0") == "inf")
        #expect(try s.eval("-7 % 3") == "2")
    }

    @Test func importsFromTheScriptFolderAndSparcPath() throws {
        let dir = NSTemporaryDirectory() + "sparc-import-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/lib", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "fn double(x) => 2 * x\nlet answer = 21".write(toFile: dir + "/helpers.sparc", atomically: true, encoding: .utf8)
        try "fn triple(x) => 3 * x".write(toFile: dir + "/lib/extra.sparc", atomically: true, encoding: .utf8)
        let s = Session()
        s.interpreter.modulePath = [dir + "/lib"]
        #expect(try s.run("import \"helpers\"\nimport \"extra\"\ndouble(answer) + triple(1)", name: dir + "/main.sparc").repr == "45")
        #expect(s.error("import \"nope\"", name: dir + "/main.sparc").contains("no module nope"))
    }

    @Test func interruptStopsALoopAndKeepsTheSession() throws {
        let s = Session()
        try s.run("var i = 0")
        let t = Thread { Thread.sleep(forTimeInterval: 0.3); Interrupt.request() }
        t.start()
        let e = s.error("while true { i = i + 1 }")
        #expect(e.contains("interrupted"))
        #expect(try s.eval("i > 0") == "true")
    }
}
