import Foundation
import Testing

/// The `sparc` binary's contract: REPL / FILE / -e forms, exit codes, error format, shebang.
@Suite struct CLITests {
    func tempFile(_ name: String, _ contents: Data) throws -> String {
        let dir = NSTemporaryDirectory() + "sparc-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/" + name
        try contents.write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func evaluatesCodeAndPrintsTheLastValue() throws {
        let r = try runBinary(["-e", "let x = 20\nx * 2 + 2"])
        #expect(r.status == 0)
        #expect(r.out == "42\n")
        let nothing = try runBinary(["-e", "print(\"hi\")"])
        #expect(nothing.out == "hi\n")
    }

    @Test func runsScriptsWithArguments() throws {
        let path = try tempFile("args.sparc", Data("print(len(args), args)\n".utf8))
        let r = try runBinary([path, "one", "--two", "3"])
        #expect(r.status == 0)
        #expect(r.out == "3 [\"one\", \"--two\", \"3\"]\n")
    }

    @Test func scriptErrorsExitNonZeroWithLocation() throws {
        let path = try tempFile("bad.sparc", Data("let a = 1\nlet b = a + nope\n".utf8))
        let r = try runBinary([path])
        #expect(r.status == 1)
        #expect(r.err == "\(path):2:13: error: unknown name nope; did you mean a?\nlet b = a + nope\n            ^\n" ||
                r.err == "\(path):2:13: error: unknown name nope\nlet b = a + nope\n            ^\n")
        let syntax = try runBinary(["-e", "let x = (1 + "])
        #expect(syntax.status == 1)
        #expect(syntax.err.hasPrefix("-e:1:14: error: unexpected end of input"))
    }

    @Test func shebangScriptsRun() throws {
        let path = try tempFile("hello", Data("#!/usr/bin/env sparc\nprint(\"from shebang\", 1 + 1)\n".utf8))
        chmod(path, 0o755)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = URL(fileURLWithPath: Paths.binary).deletingLastPathComponent().path + ":" + (env["PATH"] ?? "")
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "from shebang 2\n")
    }

    @Test func badFilesAreReportedNotCrashed() throws {
        let invalid = try tempFile("latin1.sparc", Data([0x70, 0x72, 0x69, 0x6E, 0x74, 0x28, 0x22, 0xE9, 0x22, 0x29]))
        let r = try runBinary([invalid])
        #expect(r.status == 1)
        #expect(r.err.contains("is not valid UTF-8"))
        let missing = try runBinary(["/no/such/file.sparc"])
        #expect(missing.status == 1)
        #expect(missing.err.contains("cannot read /no/such/file.sparc"))
    }

    @Test func runtimeSubcommandsAreNotScripts() throws {
        let info = try runBinary(["info", "--model", Paths.tinyModel])
        #expect(info.status == 0, "\(info.err)")
        #expect(info.out.contains("llama: 2 layers, hidden 64"))
        let tokens = try runBinary(["tokenize", "--model", Paths.tinyModel, "hello"])
        #expect(tokens.status == 0)
        #expect(tokens.out.hasPrefix("1 "))  // tiny-gqa's tokenizer adds <|im_start|>
        let gen = try runBinary(["generate", "--model", Paths.tinyModel, "hi", "--max-tokens", "2"])
        #expect(gen.status == 0, "\(gen.err)")
        let help = try runBinary(["bench", "--help"])
        #expect(help.out.contains("--attribution"))
    }

    @Test func helpVersionAndInstalledStdlib() throws {
        #expect(try runBinary(["--version"]).out == "0.1.0\n")
        let help = try runBinary(["--help"])
        #expect(help.out.contains("sparc FILE.sparc [ARGS...]"))
        #expect(help.out.contains("sparc -e CODE"))
        let r = try runBinary(["-e", "import \"lists\"\nmap([1, 2], fn(x) => x * 10)"])
        #expect(r.out == "[10, 20]\n", "\(r.err)")
    }
}

/// Garbage, mutations of real scripts and deep nesting must give errors, never a crash.
@Suite struct FuzzTests {
    @Test func randomInputNeverCrashes() throws {
        var rng = SplitMix(seed: 12345)
        let alphabet = Array("abcxyz019 _+-*/%@=<>!()[]{},.:|&~\"\\#\n\t;letvarfnifelsewhileforinreturn")
        let corpus = (try? FileManager.default.contentsOfDirectory(atPath: Paths.scripts.path))?
            .filter { $0.hasSuffix(".sparc") && $0 != "model.sparc" }
            .compactMap { try? String(contentsOf: Paths.scripts.appendingPathComponent($0), encoding: .utf8) } ?? []
        for round in 0..<600 {
            var code: String
            if round % 2 == 0 || corpus.isEmpty {
                code = String((0..<Int(rng.next() % 80)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
            } else {
                var chars = Array(corpus[round % corpus.count])
                for _ in 0..<3 where !chars.isEmpty {
                    let i = Int(rng.next() % UInt64(chars.count))
                    switch rng.next() % 3 {
                    case 0: chars.remove(at: i)
                    case 1: chars.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: i)
                    default: chars[i] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                    }
                }
                code = String(chars)
            }
            let s = Session()
            // A mutation can make an endless loop: interrupt anything that runs too long.
            let watchdog = Watchdog(seconds: 2)
            _ = s.error(code)
            watchdog.cancel()
        }
    }

    @Test func pathologicalInputs() {
        let s = Session()
        #expect(s.error(String(repeating: "[", count: 100_000)).contains("nesting too deep"))
        #expect(s.error(String(repeating: "{a:", count: 50_000)).contains("error"))
        #expect(s.error("\"" + String(repeating: "{", count: 10_000)).contains("error"))
        #expect(s.error("let x = " + String(repeating: "9", count: 5000)).contains("out of range"))
        #expect(s.error(String(repeating: "a.", count: 20_000) + "b").contains("error"))
        #expect(s.error("fn f(x) => f(x)\nf(1)").contains("recursion too deep"))
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
