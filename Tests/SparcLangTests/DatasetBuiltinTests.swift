import Foundation
import Testing
@testable import SparcLang

/// `dataset(name)`: run in the sparc binary with a temporary `SPARC_DATA` (or `HOME`), so
/// the environment of the test process — shared by every suite — is left alone. No network.
@Suite struct DatasetBuiltinTests {
    final class Folder {
        let path: String
        init() {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("sparc-dataset-\(UUID().uuidString)").path
            try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    func sparc(_ code: String, _ env: [String: String]) throws -> (status: Int32, out: String, err: String) {
        try runBinary(["-e", code], environment: env)
    }

    @Test func notInstalledNamesTheInstallCommand() throws {
        let dir = Folder()
        let r = try sparc("dataset(\"rtp-toxic\")", ["SPARC_DATA": dir.path])
        #expect(r.status == 1)
        #expect(r.err.contains("dataset: rtp-toxic is not installed: run `sparc install rtp-toxic`"), "\(r.err)")
    }

    @Test func installedFileGivesItsPath() throws {
        let dir = Folder()
        let ptb = dir.path + "/ptb.test.txt"
        try Data(" no it was n't black monday \n but while \n".utf8).write(to: URL(fileURLWithPath: ptb))
        let r = try sparc("len(lines(dataset(\"ptb\"))) + 0 * len(dataset(\"ptb\"))", ["SPARC_DATA": dir.path])
        #expect(r.status == 0 && r.out.trimmingCharacters(in: .whitespacesAndNewlines) == "2", "\(r)")
        let p = try sparc("dataset(\"ptb\")", ["SPARC_DATA": dir.path])
        #expect(p.out.contains(ptb), "\(p)")
    }

    @Test func withoutSparcDataTheHomeCacheIsUsed() throws {
        // $HOME decides (Foundation's home folder on Linux would ignore it).
        let home = Folder()
        let data = home.path + "/.cache/sparc/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try Data("x\n".utf8).write(to: URL(fileURLWithPath: data + "/profanity_wordlist.txt"))
        let r = try sparc("dataset(\"profanity\")", ["HOME": home.path, "SPARC_DATA": "", "SPARC_MODELS": "", "XDG_CACHE_HOME": ""])
        #expect(r.status == 0 && r.out.contains(data + "/profanity_wordlist.txt"), "\(r)")
    }

    @Test func scorerEntryGivesACommandThatToxicityRuns() throws {
        // A stand-in venv whose "python" is a shell script answering 0.25 per line: the
        // command dataset() returns must run as toxicity(command:) runs it.
        let dir = Folder()
        let venv = dir.path + "/venvs/profanity-check"
        try FileManager.default.createDirectory(atPath: venv + "/bin", withIntermediateDirectories: true)
        let fake = "#!/bin/sh\n# $1 is the scorer script\nwhile read -r line; do echo 0.25; done\n"
        _ = FileManager.default.createFile(atPath: venv + "/bin/python", contents: Data(fake.utf8), attributes: [.posixPermissions: 0o755])
        _ = FileManager.default.createFile(atPath: venv + "/sparc-score.py", contents: Data())
        let r = try sparc("toxicity([\"a\", \"b\", \"c\"], command: dataset(\"profanity-check\"))", ["SPARC_DATA": dir.path])
        #expect(r.status == 0 && r.out.trimmingCharacters(in: .whitespacesAndNewlines) == "0.25", "\(r)")
    }

    @Test func badNamesAreErrorsNotCrashes() throws {
        let dir = Folder()
        for (code, message) in [("dataset(\"nope\")", "no data entry named \"nope\""),
                                ("dataset(\"smollm2\")", "smollm2 is a model"),
                                ("dataset(3)", "dataset"),
                                ("dataset()", "dataset")] {
            let r = try sparc(code, ["SPARC_DATA": dir.path])
            #expect(r.status == 1 && r.err.contains(message), "\(code): \(r)")
        }
    }

    @Test func helpAndTableKnowIt() throws {
        let s = Session()
        #expect(try s.eval("help(dataset)").contains("sparc install NAME"))
        #expect(try s.eval("type(dataset)") == "\"function\"")
        #expect(s.interpreter.builtins.keys.contains("dataset"), "tab completion lists the builtin table")
    }
}

/// `sparc install` without the network: the listing and bad names.
@Suite struct InstallCommandTests {
    @Test func listShowsEveryEntryAndWhatIsInstalled() throws {
        let dir = DatasetBuiltinTests.Folder()
        try Data(" a \n".utf8).write(to: URL(fileURLWithPath: dir.path + "/ptb.test.txt"))
        let r = try runBinary(["install", "--list"], environment: ["SPARC_DATA": dir.path, "SPARC_MODELS": dir.path + "/models"])
        #expect(r.status == 0, "\(r)")
        for name in ["smollm2", "gemma3-270m", "profanity", "ptb", "rtp-toxic", "profanity-check", "zero-shot"] {
            #expect(r.out.contains("\n" + name + " "), "\(name) listed")
        }
        #expect(r.out.contains("Gemma Terms of Use") && r.out.contains("installed: \(dir.path)/ptb.test.txt"))
        #expect(r.out.components(separatedBy: "not installed").count - 1 == 6)
    }

    @Test func unknownNameIsAUsageError() throws {
        let r = try runBinary(["install", "wikitext"], environment: ["SPARC_DATA": "/nonexistent", "SPARC_MODELS": "/nonexistent"])
        #expect(r.status == 64 && r.err.contains("unknown name wikitext") && r.err.contains("sparc install --list"), "\(r)")
    }

    @Test func unwritableCacheIsAClearError() throws {
        // Installed nothing, downloaded nothing: the folder check comes first.
        let r = try runBinary(["install", "ptb"], environment: ["SPARC_DATA": "/proc/sparc-no-such-dir"])
        #expect(r.status == 1 && r.err.contains("error: sparc install ptb: cannot create the folder /proc/sparc-no-such-dir"), "\(r)")
    }
}
