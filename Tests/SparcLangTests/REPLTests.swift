import Foundation
import Testing
import SparcTensor

/// Drives the real `sparc` REPL through a pseudo-terminal, as a person would type.
/// util-linux's `script` allocates the terminal (Swift's Glibc module has no
/// posix_openpt); keys typed here pass through its line discipline, so Ctrl-C arrives
/// as SIGINT exactly as at a real prompt.
final class PTYSession {
    let process = Process()
    private let input = Pipe(), output = Pipe()
    private(set) var transcript = ""

    init(environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        // `exec`: whatever shell `script` starts must not stay in the terminal's process
        // group, or Ctrl-C kills it (dash dies of SIGINT) and `script` reports 130.
        process.arguments = ["-q", "-f", "-e", "-c", "exec '\(Paths.binary)'", "/dev/null"]
        let fixed = ["TERM": "xterm", "SHELL": "/bin/sh"].merging(environment) { $1 }
        process.environment = ProcessInfo.processInfo.environment.merging(fixed) { $1 }
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let fd = output.fileHandleForReading.fileDescriptor
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    func send(_ s: String) {
        input.fileHandleForWriting.write(s.data(using: .utf8)!)
        usleep(50_000)  // let the line editor take one line at a time
    }

    /// Reads until `text` has appeared `count` times in the whole transcript (or times out).
    @discardableResult
    func expect(_ text: String, count: Int = 1, timeout: Double = 20) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        let fd = output.fileHandleForReading.fileDescriptor
        while Date() < deadline {
            if transcript.components(separatedBy: text).count - 1 >= count { return true }
            let n = read(fd, &buffer, buffer.count)
            if n > 0 { transcript += String(decoding: buffer[0..<n], as: UTF8.self) } else { usleep(20_000) }
        }
        return transcript.components(separatedBy: text).count - 1 >= count
    }

    func waitForExit(timeout: Double = 10) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { _ = expect("\u{0}", timeout: 0.05) }
        return process.isRunning ? nil : process.terminationStatus
    }
}

@Suite(.serialized) struct REPLTests {
    func session(_ history: String) throws -> PTYSession {
        let s = try PTYSession(environment: ["SPARC_HISTORY": history])
        #expect(s.expect("sparc> "), "\(s.transcript)")
        return s
    }

    func historyFile() -> String { NSTemporaryDirectory() + "sparc-history-\(UUID().uuidString)" }

    @Test func evaluatesAndRemembersHistory() throws {
        let history = historyFile()
        defer { try? FileManager.default.removeItem(atPath: history) }
        let s = try session(history)
        s.send("40 + 2\r")
        #expect(s.expect("42"), "\(s.transcript)")
        s.send("\u{1B}[A\r")  // up arrow recalls the line, Enter runs it again
        #expect(s.expect("42", count: 2), "\(s.transcript)")
        s.send(":quit\r")
        #expect(s.waitForExit() == 0)
        // libedit's history format escapes spaces as \040.
        let saved = try String(contentsOfFile: history, encoding: .utf8).replacingOccurrences(of: "\\040", with: " ")
        #expect(saved.contains("40 + 2"))
        // A new session starts with the saved history.
        let again = try session(history)
        again.send("\u{1B}[A\u{1B}[A\r")
        #expect(again.expect("42"), "\(again.transcript)")
        again.send("\u{04}")  // Ctrl-D leaves
        #expect(again.waitForExit() == 0)
    }

    @Test func tabCompletesNamesFieldsAndCommands() throws {
        let history = historyFile()
        defer { try? FileManager.default.removeItem(atPath: history) }
        let s = try session(history)
        s.send("let record_value = {alpha_field: 7}\r")
        s.send("record_va\t.alpha_f\t + 1\r")
        #expect(s.expect("8"), "\(s.transcript)")
        s.send("pri\t(\"done\")\r")
        #expect(s.expect("done\r\n"), "\(s.transcript)")
        s.send(":he\t generate\r")
        #expect(s.expect("generate(m, prompt"), "\(s.transcript)")
        #expect(!s.transcript.contains("unknown name"))
        s.send(":quit\r")
        #expect(s.waitForExit() == 0)
    }

    @Test func multiLineEntryHelpVarsAndErrorsKeepTheSession() throws {
        let history = historyFile()
        defer { try? FileManager.default.removeItem(atPath: history) }
        let s = try session(history)
        s.send("fn twice(x) {\r")
        #expect(s.expect("...> "))
        s.send("  x * 2\r")
        s.send("}\r")
        s.send("let answer = twice(21)\r")
        s.send("answer\r")
        #expect(s.expect("42"), "\(s.transcript)")
        s.send("answer + nope\r")
        #expect(s.expect("<stdin>:1:10: error: unknown name nope"), "\(s.transcript)")
        s.send(":vars\r")
        #expect(s.expect("answer: number = 42"), "\(s.transcript)")
        s.send(":help\r")
        #expect(s.expect("load_model"), "\(s.transcript)")
        s.send(":time twice(4)\r")
        #expect(s.expect("time: "), "\(s.transcript)")
        s.send("answer\r")
        #expect(s.expect("42", count: 3), "\(s.transcript)")
        s.send(":quit\r")
        #expect(s.waitForExit() == 0)
    }

    @Test func ctrlCInterruptsAComputationAndKeepsVariables() throws {
        let history = historyFile()
        defer { try? FileManager.default.removeItem(atPath: history) }
        let s = try session(history)
        s.send("var i = 0\r")
        s.send("while true { i = i + 1 }\r")
        usleep(500_000)
        s.send("\u{03}")  // Ctrl-C
        #expect(s.expect("interrupted"), "\(s.transcript)")
        s.send("i > 0\r")
        #expect(s.expect("true"), "\(s.transcript)")
        s.send(":quit\r")
        #expect(s.waitForExit() == 0)
    }

    @Test func historyGoesToHomeWhenSPARCHistoryIsUnset() throws {
        let home = NSTemporaryDirectory() + "sparc-home-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: home) }
        let s = try PTYSession(environment: ["HOME": home, "SPARC_HISTORY": ""])
        #expect(s.expect("sparc> "), "\(s.transcript)")
        s.send("6 * 7\r")
        #expect(s.expect("42"), "\(s.transcript)")
        s.send(":quit\r")
        #expect(s.waitForExit() == 0)
        let saved = try String(contentsOfFile: home + "/.sparc_history", encoding: .utf8).replacingOccurrences(of: "\\040", with: " ")
        #expect(saved.contains("6 * 7"))
        // Written through a temporary file that is renamed over it: none is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: home) == [".sparc_history"])
    }

    /// `SPARC_HISTORY` naming a device or pipe (the fuzz harness uses /dev/null) means no
    /// history: the old atomic save renamed a regular file over /dev/null. Checked on a
    /// FIFO, which a regression cannot damage.
    @Test func historyOnADeviceOrPipeLeavesItAlone() throws {
        let dir = NSTemporaryDirectory() + "sparc-fifo-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fifo = dir + "/history"
        #expect(mkfifo(fifo, 0o600) == 0)
        let s = try PTYSession(environment: ["SPARC_HISTORY": fifo])
        #expect(s.expect("sparc> "), "\(s.transcript)")
        s.send("6 * 7\r")
        #expect(s.expect("42"), "\(s.transcript)")
        s.send(":quit\r")
        #expect(s.waitForExit() == 0)
        var info = stat()
        #expect(stat(fifo, &info) == 0 && info.st_mode & S_IFMT == S_IFIFO)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["history"])
    }

    @Test func deepValuesAndHugeInputsAtThePrompt() throws {
        let history = historyFile()
        defer { try? FileManager.default.removeItem(atPath: history) }
        let s = try session(history)
        s.send("var x = []; for i in range(100000) { x = [x] }; x\r")
        #expect(s.expect("[…]]"), "\(s.transcript.suffix(300))")
        s.send("\"" + String(repeating: "{\"", count: 600) + "\r")
        #expect(s.expect("error"), "\(s.transcript.suffix(300))")
        s.send("zeros(1e9, 0)\r")
        #expect(s.expect("shape: [1000000000, 0]"), "\(s.transcript.suffix(300))")
        s.send(":quit\r")
        #expect(s.waitForExit() == 0)
    }
}
