import CEditLine
import Foundation
import SparcLang
import SparcTensor

/// The interactive prompt: libedit line editing, a persistent history file, tab
/// completion, multi-line entry while brackets or blocks are open, `:commands`, and
/// Ctrl-C that stops a computation without losing the session.
final class REPL {
    let interpreter = Interpreter()
    let historyPath: String
    private var entryNumber = 0

    static let commands: [(name: String, summary: String)] = [
        (":help", "list builtins and commands; :help NAME describes one"),
        (":vars", "the session's variables"),
        (":load", ":load FILE runs a script in this session"),
        (":time", ":time EXPR evaluates EXPR and prints how long it took"),
        (":quit", "leave (Ctrl-D too)"),
    ]

    init() {
        historyPath = REPL.historyPath(environment: ProcessInfo.processInfo.environment)
    }

    /// `SPARC_HISTORY`, else `$HOME/.sparc_history`, else the account's home directory
    /// (Foundation's home directory comes from the password database and ignores $HOME).
    static func historyPath(environment env: [String: String]) -> String {
        if let path = env["SPARC_HISTORY"], !path.isEmpty { return path }
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? FileManager.default.homeDirectoryForCurrentUser.path
        return URL(fileURLWithPath: home).appendingPathComponent(".sparc_history").path
    }

    /// Writes the history to a temporary file beside it and renames that over it, so a
    /// crash or a second sparc writing at the same time never leaves a truncated file.
    /// A history path that is a device or pipe (`SPARC_HISTORY=/dev/null`) means no
    /// history: renaming over it would replace the device with a regular file, and
    /// libedit's writer would chmod it to 0600.
    private func saveHistory() {
        var st = stat()
        if stat(historyPath, &st) == 0 && (st.st_mode & S_IFMT) != S_IFREG { return }
        let temp = historyPath + ".tmp-\(getpid())"
        if sparc_editline_write_history(temp) == 0 {
            if rename(temp, historyPath) != 0 { unlink(temp) }
        } else {
            unlink(temp)
        }
    }

    func run() -> Int32 {
        Completion.shared.interpreter = interpreter
        sparc_editline_init("sparc", completionCandidates)
        var st = stat()
        if stat(historyPath, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { _ = sparc_editline_read_history(historyPath) }
        installInterruptHandler()
        print("sparc \(Sparc.version) — :help for help, :quit or Ctrl-D to leave")

        var pending = ""
        while true {
            let prompt = pending.isEmpty ? "sparc> " : "  ...> "
            guard let raw = sparc_editline_read(prompt) else {
                if Interrupt.isRequested {  // Ctrl-C at the prompt: drop the current entry
                    Interrupt.clear()
                    pending = ""
                    print("")
                    continue
                }
                print("")
                return 0
            }
            let line = String(cString: raw)
            free(raw)
            if !line.trimmingCharacters(in: .whitespaces).isEmpty {
                sparc_editline_add_history(line)
                saveHistory()
            }
            if pending.isEmpty && line.trimmingCharacters(in: .whitespaces).hasPrefix(":") {
                if !command(line.trimmingCharacters(in: .whitespaces)) { return 0 }
                continue
            }
            pending += pending.isEmpty ? line : "\n" + line
            if pending.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { pending = ""; continue }
            if needsMoreInput(pending) { continue }
            evaluate(pending)
            pending = ""
        }
    }

    private func needsMoreInput(_ text: String) -> Bool {
        do { try interpreter.checkSyntax(Source(name: "<stdin>", text: text)); return false }
        catch let e as SparcError { return e.needsMoreInput && !text.hasSuffix("\n\n") }
        catch { return false }
    }

    private func evaluate(_ text: String) {
        entryNumber += 1
        Interrupt.clear()
        do {
            var value = try interpreter.run(Source(name: "<stdin>", text: text))
            // Rendered and freed on the interpreter's stack: the value may be deeply nested.
            if let shown = interpreter.display(&value) { print(shown) }
        } catch {
            FileHandle.standardError.write("\(error)\n".data(using: .utf8)!)
        }
    }

    /// Runs a `:command`; returns false to leave.
    private func command(_ line: String) -> Bool {
        let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
        let name = parts[0], rest = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
        switch name {
        case ":quit", ":q", ":exit":
            return false
        case ":help", ":h":
            print(rest.isEmpty ? helpOverview() : help(for: rest))
        case ":vars":
            let vars = interpreter.sessionVariables
            if vars.isEmpty { print("(no variables yet)") }
            for (n, v) in vars {
                var shown = v.repr.replacingOccurrences(of: "\n", with: " ")
                if shown.count > 70 { shown = String(shown.prefix(67)) + "..." }
                print("\(n): \(v.typeName) = \(shown)")
            }
        case ":load":
            guard !rest.isEmpty else { print("usage: :load FILE"); break }
            switch readSourceFile(rest) {
            case .success(let text):
                do { _ = try interpreter.run(Source(name: rest, text: text)) }
                catch { FileHandle.standardError.write("\(error)\n".data(using: .utf8)!) }
            case .failure(let e):
                FileHandle.standardError.write("error: \(e.message)\n".data(using: .utf8)!)
            }
        case ":time":
            guard !rest.isEmpty else { print("usage: :time EXPR"); break }
            let t0 = DispatchTime.now().uptimeNanoseconds
            evaluate(rest)
            print(String(format: "time: %.3f s", Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9))
        default:
            let hint = suggestion(for: name, among: REPL.commands.map(\.name)).map { " (did you mean \($0)?)" } ?? ""
            print("unknown command \(name)\(hint); :help lists them")
        }
        return true
    }

    private func helpOverview() -> String {
        var out = "Builtins:\n"
        for b in interpreter.builtins.values.sorted(by: { $0.name < $1.name }) {
            out += "  " + b.name.padding(toLength: 14, withPad: " ", startingAt: 0) + b.summary + "\n"
        }
        out += "\nCommands:\n"
        for c in REPL.commands { out += "  " + c.name.padding(toLength: 14, withPad: " ", startingAt: 0) + c.summary + "\n" }
        out += "\nSyntax: let x = 1; var y = 2; fn f(a, b: 2) { a + b }; if c { } else { }; for x in xs { }; while c { }\n"
        out += "x.f(a) means f(x, a). Strings interpolate: \"x = {x}\". Comments start with #."
        return out
    }

    private func help(for name: String) -> String {
        if let b = interpreter.builtins[name] {
            let help = b.help.isEmpty ? "" : b.help.split(separator: "\n", omittingEmptySubsequences: false).map { "\n  " + $0 }.joined()
            return b.signature + "\n  " + b.summary + help
        }
        if let c = REPL.commands.first(where: { $0.name == name || $0.name == ":" + name }) { return "\(c.name): \(c.summary)" }
        if let v = interpreter.sessionVariables.first(where: { $0.0 == name })?.1 {
            return "\(name): \(v.typeName)" + (v.typeName == "function" ? " " + v.repr : "")
        }
        return "no builtin, command or variable named \(name)"
    }

    private func installInterruptHandler() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in Interrupt.request() }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: a read at the prompt returns, dropping the line
        sigaction(SIGINT, &action, nil)
        // A blocked SIGINT is inherited across exec (some launchers block it): unblock it,
        // before the interpreter's threads are created, so Ctrl-C always arrives.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}

/// What tab completion can see: the interpreter of the running REPL.
final class Completion: @unchecked Sendable {
    static let shared = Completion()
    var interpreter: Interpreter?

    func candidates(line: String, start: Int, end: Int) -> [String] {
        let chars = Array(line)
        // Offsets come from libedit in bytes; clamp them so no range can be inverted.
        let lo = max(0, min(start, chars.count)), hi = max(lo, min(end, chars.count))
        let word = String(chars[lo..<hi])
        let before = String(chars[..<lo])
        guard let interpreter else { return [] }
        if before.trimmingCharacters(in: .whitespaces).isEmpty && word.hasPrefix(":") {
            return REPL.commands.map(\.name).filter { $0.hasPrefix(word) }
        }
        var names: [String]
        if before.hasSuffix("."), let object = before.dropLast().split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }).last,
           case .record(let r)? = interpreter.sessionVariables.first(where: { $0.0 == String(object) })?.1 {
            names = r.keys  // record fields
        } else {
            names = interpreter.sessionVariables.map(\.0) + interpreter.builtins.keys.sorted()
                + ["let", "var", "fn", "if", "else", "for", "in", "while", "return", "break", "continue", "import", "true", "false", "nil", "and", "or", "not"]
        }
        return Array(Set(names.filter { $0.hasPrefix(word) })).sorted()
    }
}

private let completionCandidates: sparc_candidates_fn = { line, start, end in
    guard let line else { return nil }
    let list = Completion.shared.candidates(line: String(cString: line), start: Int(start), end: Int(end))
    guard !list.isEmpty else { return nil }
    var bytes: [UInt8] = []
    for c in list { bytes += Array(c.utf8) + [0] }
    bytes.append(0)
    let buffer = malloc(bytes.count)!.assumingMemoryBound(to: CChar.self)
    bytes.withUnsafeBufferPointer { b in for (i, x) in b.enumerated() { buffer[i] = CChar(bitPattern: x) } }
    return buffer
}
