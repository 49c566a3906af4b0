import Foundation

/// Metrics of undesired behaviours in generated text, for targeted correction
/// (Hatefi et al. 2025): how repetitive a continuation is, and how toxic.
public enum Repetition {
    /// Words of a text for n-gram counting: lower-cased runs of letters, digits and
    /// apostrophes (punctuation and spacing do not make an n-gram new).
    public static func words(_ text: String) -> [Substring] {
        text.lowercased().split { !($0.isLetter || $0.isNumber || $0 == "'") }
    }

    /// The rate of repeated word n-grams: 1 − distinct n-grams / n-grams. 0 for a text
    /// that never repeats itself, near 1 for a loop; 0 when there are fewer than n words.
    public static func rate(_ text: String, n: Int = 3) -> Double {
        let w = words(text)
        guard n >= 1, w.count >= n else { return 0 }
        let total = w.count - n + 1
        var seen = Set<ArraySlice<Substring>>()
        for i in 0..<total { seen.insert(w[i..<(i + n)]) }
        return 1 - Double(seen.count) / Double(total)
    }

    /// The Response Uniqueness Ratio (Hatefi et al. 2025, Eq. 11): |unique tokens| / |tokens|,
    /// near 1 for varied text and small for a loop; 0 for an empty response.
    public static func uniquenessRatio<T: Hashable>(_ tokens: [T]) -> Double {
        tokens.isEmpty ? 0 : Double(Set(tokens).count) / Double(tokens.count)
    }
}

/// A toxicity scorer: a text's score is in [0, 1].
public protocol TextScorer {
    func scores(_ texts: [String]) throws -> [Double]
}

/// Flags a text (score 1) when it contains a word or phrase of a list, e.g. the list
/// shipped in the PyPI package better-profanity (`sparc install profanity`) or any file
/// with one entry per line (`#` starts a comment).
public struct WordListScorer: TextScorer, Sendable {
    public let path: String
    /// Single words, and phrases as word sequences.
    let single: Set<String>
    let phrases: [[String]]

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WorkflowError.invalid("cannot read the word list \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw WorkflowError.invalid("the word list \(path) is not UTF-8 text") }
        var single = Set<String>(), phrases: [[String]] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let entry = line.trimmingCharacters(in: .whitespaces)
            guard !entry.isEmpty, !entry.hasPrefix("#") else { continue }
            let w = Repetition.words(entry).map(String.init)
            if w.count == 1 { single.insert(w[0]) } else if w.count > 1 { phrases.append(w) }
        }
        guard !single.isEmpty || !phrases.isEmpty else { throw WorkflowError.invalid("the word list \(path) has no entries") }
        self.path = path
        self.single = single
        self.phrases = phrases
    }

    /// The listed words and phrases found in the text, in order.
    public func hits(_ text: String) -> [String] {
        let w = Repetition.words(text).map(String.init)
        var out: [String] = []
        for (i, word) in w.enumerated() {
            if single.contains(word) { out.append(word) }
            for p in phrases where p[0] == word && i + p.count <= w.count && Array(w[i..<(i + p.count)]) == p {
                out.append(p.joined(separator: " "))
            }
        }
        return out
    }

    public func scores(_ texts: [String]) throws -> [Double] { texts.map { hits($0).isEmpty ? 0 : 1 } }
}

/// Scores texts with an external program (a classifier in Python, say): it is run once
/// through `/bin/sh -c`, reads one JSON object `{"text": …}` per line on stdin and writes
/// one line per text on stdout, a number or an object with a numeric "score".
public struct CommandScorer: TextScorer, Sendable {
    public let command: String
    /// Seconds the scorer may run before it is stopped and an error reported.
    public let timeout: Double

    public init(command: String, timeout: Double = 600) {
        self.command = command
        self.timeout = timeout
    }

    /// Most of stderr kept for the error message (its end, where the reason usually is).
    static let stderrKept = 64 << 10

    /// The processes whose parent is `pid` (from /proc; none where there is no /proc).
    static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name -> Int32? in
            guard let child = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // "pid (command) state ppid …": the command may hold spaces and parentheses.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid ? child : nil
        }
    }

    public func scores(_ texts: [String]) throws -> [Double] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = errors
        do { try p.run() } catch { throw WorkflowError.invalid("cannot run the scorer `\(command)`: \(error)") }
        // Write on another thread: a scorer that answers line by line would otherwise
        // fill its output pipe while we are still writing.
        let lines = try texts.map { t -> Data in
            var d = try JSONSerialization.data(withJSONObject: ["text": t], options: [.withoutEscapingSlashes])
            d.append(0x0A)
            return d
        }
        let writer = Thread {
            // A scorer that stops reading early must not kill sparc: SIGPIPE blocked in
            // this thread turns into an EPIPE error from write, which ends the loop.
            var pipeSignal = sigset_t()
            sigemptyset(&pipeSignal)
            sigaddset(&pipeSignal, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
            for l in lines { do { try input.fileHandleForWriting.write(contentsOf: l) } catch { break } }
            try? input.fileHandleForWriting.close()
        }
        writer.start()
        // stdout and stderr are drained at the same time: a scorer that fills the stderr
        // pipe (64 KB) while we wait for stdout's end would otherwise block forever.
        let outLimit = max(64 << 20, texts.count * 1024)
        let out = PipeReader(output.fileHandleForReading, keep: .head(outLimit))
        let err = PipeReader(errors.fileHandleForReading, keep: .tail(CommandScorer.stderrKept))
        let finished = out.wait(until: Date() + timeout) && err.wait(until: Date() + 1)
        if !finished || out.overflowed {
            // SIGKILL: a scorer stuck this long may well ignore SIGTERM (or have it blocked).
            // The shell's children go too: they hold the pipes open.
            let pid = p.processIdentifier
            for child in CommandScorer.children(of: pid) { kill(child, SIGKILL) }
            kill(pid, SIGKILL)
            try? output.fileHandleForReading.close()
            try? errors.fileHandleForReading.close()
            throw WorkflowError.invalid(out.overflowed
                ? "the scorer `\(command)` wrote more than \(outLimit >> 20) MiB for \(texts.count) texts; stopped it"
                : "the scorer `\(command)` did not finish within \(String(format: "%g", timeout)) s; stopped it")
        }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let message = String(decoding: err.data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw WorkflowError.invalid("the scorer `\(command)` failed with status \(p.terminationStatus)\(message.isEmpty ? "" : ": " + message)")
        }
        let answers = String(decoding: out.data, as: UTF8.self).split(whereSeparator: \.isNewline).filter { !$0.allSatisfy(\.isWhitespace) }
        guard answers.count == texts.count else {
            throw WorkflowError.invalid("the scorer `\(command)` answered \(answers.count) lines for \(texts.count) texts")
        }
        struct Answer: Decodable { let score: Double }
        return try answers.enumerated().map { i, line in
            let text = line.trimmingCharacters(in: .whitespaces)
            if let n = Double(text), n.isFinite { return n }
            if let a = try? JSONDecoder().decode(Answer.self, from: Data(text.utf8)), a.score.isFinite { return a.score }
            throw WorkflowError.invalid("the scorer `\(command)` answered line \(i + 1) with \(line.prefix(80)); expected a number or {\"score\": number}")
        }
    }
}

/// Reads a pipe to its end on a thread of its own, keeping its first or last bytes.
final class PipeReader: @unchecked Sendable {
    enum Keep { case head(Int), tail(Int) }

    private let lock = NSLock()
    private var buffer = Data()
    private var exceeded = false
    private let done = DispatchSemaphore(value: 0)
    private var finished = false

    init(_ handle: FileHandle, keep: Keep) {
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData  // empty at end of file (or once closed)
                if chunk.isEmpty { break }
                lock.lock()
                buffer.append(chunk)
                switch keep {
                case .head(let n):
                    if buffer.count > n { exceeded = true; buffer = buffer.prefix(n) }
                case .tail(let n):
                    if buffer.count > n { buffer = buffer.suffix(n) }
                }
                let stop = exceeded
                lock.unlock()
                if stop { break }
            }
            done.signal()
        }
    }

    /// Whether the pipe reached its end (or the head limit) by `deadline`.
    func wait(until deadline: Date) -> Bool {
        lock.lock()
        if finished { lock.unlock(); return true }
        lock.unlock()
        let ok = done.wait(timeout: .now() + max(0, deadline.timeIntervalSinceNow)) == .success
        if ok { lock.lock(); finished = true; lock.unlock() }
        return ok
    }

    var data: Data { lock.lock(); defer { lock.unlock() }; return buffer }
    var overflowed: Bool { lock.lock(); defer { lock.unlock() }; return exceeded }
}
