import Foundation
import SparcTensor
@testable import SparcLang

/// Runs code in a fresh interpreter; returns the last value and what `print` wrote.
final class Session {
    let interpreter: Interpreter
    private final class Lines: @unchecked Sendable { var text: [String] = [] }
    private let lines = Lines()

    init(arguments: [String] = []) {
        interpreter = Interpreter(arguments: arguments)
        let box = lines
        interpreter.output = { box.text.append($0) }
    }

    var output: String { lines.text.joined(separator: "\n") }

    @discardableResult
    func run(_ code: String, name: String = "test.sparc") throws -> Value {
        try interpreter.run(Source(name: name, text: code))
    }

    /// The REPL rendering of the value of `code`.
    func eval(_ code: String) throws -> String { try run(code).repr }

    /// The full error text (`FILE:LINE:COL: error: …`, line, caret) of running `code`.
    func error(_ code: String, name: String = "test.sparc") -> String {
        do { try run(code, name: name); return "no error" } catch { return "\(error)" }
    }
}

enum Paths {
    static let testsDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let repo = testsDir.deletingLastPathComponent().deletingLastPathComponent()
    static let tinyModel = repo.appendingPathComponent("Tests/SparcModelTests/Fixtures/tiny-gqa").path
    static let scripts = testsDir.appendingPathComponent("scripts")
    static let examples = repo.appendingPathComponent("examples")

    /// The `sparc` binary built beside the test bundle.
    static var binary: String {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        if dir.lastPathComponent.hasSuffix(".xctest") { dir = dir.deletingLastPathComponent() }
        return dir.appendingPathComponent("sparc").path
    }
}

/// Runs the sparc binary; returns exit status, stdout and stderr.
func runBinary(_ args: [String], environment: [String: String] = [:], stdin: String? = nil) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Paths.binary)
    p.arguments = args
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe(), err = Pipe(), input = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(stdin.data(using: .utf8)!) }
    try? input.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Requests an interrupt if not cancelled within `seconds` (stops runaway fuzz programs).
final class Watchdog: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false

    init(seconds: Double) {
        Thread.detachNewThread { [self] in
            Thread.sleep(forTimeInterval: seconds)
            lock.lock(); defer { lock.unlock() }
            if !cancelled { Interrupt.request() }
        }
    }

    func cancel() {
        lock.lock(); defer { lock.unlock() }
        cancelled = true
        Interrupt.clear()
    }
}
