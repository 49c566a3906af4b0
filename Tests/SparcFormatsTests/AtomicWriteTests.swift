import Foundation
import Testing
@testable import SparcFormats
@testable import SparcTensor

struct Planned: Error {}

/// A save killed mid-write: exit tests run `body` in a fresh process of the test binary
/// (spawned, not forked from this multi-threaded one), where `killSelf()` at the chosen
/// moment ends it as `kill -9` would.
func killSelf() -> Never {
    kill(getpid(), SIGKILL)
    while true { pause() }
}

/// The PID in the one temporary of `name` left in `dir`, and whether that process is gone.
func deadWriter(of name: String, in dir: String) throws -> pid_t? {
    let temporaries = try FileManager.default.contentsOfDirectory(atPath: dir)
        .compactMap(AtomicWrite.parseTemporaryName).filter { $0.name == name }
    guard temporaries.count == 1, let pid = temporaries.first.map({ pid_t($0.pid) }) else { return nil }
    return kill(pid, 0) == 0 ? nil : pid
}

@Suite(.serialized) struct AtomicWriteTests {
    func entries(_ dir: TempDir) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() }

    @Test func throwingFillKeepsOldFileAndLeavesNoTemporary() throws {
        let dir = TempDir()
        let path = dir.file("keep.bin")
        try AtomicWrite.write(Data([1, 2, 3]), to: path)
        #expect(throws: Planned.self) {
            try AtomicWrite.write(to: path) { sink in
                try sink.write([UInt8](repeating: 9, count: 3 << 20))  // past the buffer: really on disk
                throw Planned()
            }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data([1, 2, 3]))
        #expect(try entries(dir) == ["keep.bin"])
    }

    @Test func killedWriteLeavesOldFileAndItsTemporaryIsCleanedLater() async throws {
        let dir = TempDir()
        let path = dir.file("w.safetensors")
        try SafetensorsWriter.write([("a", sampleTensor([4]))], to: path)
        await #expect(processExitsWith: .signal(SIGKILL)) { [path = path as String] in
            try AtomicWrite.write(to: path) { sink in
                try sink.write([UInt8](repeating: 7, count: 2 << 20))
                killSelf()
            }
        }
        #expect(try SafetensorsFile(path: path).tensor("a").scalars == sampleTensor([4]).scalars)
        #expect(try deadWriter(of: "w.safetensors", in: dir.path) != nil, "the killed write's temporary is left, named by its PID")
        // The next save of the same name removes the dead process's temporary.
        try SafetensorsWriter.write([("a", sampleTensor([5]))], to: path)
        #expect(try entries(dir) == ["w.safetensors"])
    }

    @Test func temporaryNamesAreParsedStrictly() {
        let parsed = AtomicWrite.parseTemporaryName(".model.gguf.tmp-123-ab12")
        #expect(parsed?.name == "model.gguf")
        #expect(parsed?.pid == 123)
        #expect(AtomicWrite.parseTemporaryName(".a.tmp-b.tmp-9-f")?.name == "a.tmp-b")
        for bad in ["model.gguf", ".model.tmp-x-1", ".model.tmp-12-", ".model.tmp-12-zz", "..tmp-1-a", ".m.tmp-0-a", ".m.tmp-1-2-3"] {
            #expect(AtomicWrite.parseTemporaryName(bad) == nil, "\(bad)")
        }
    }

    @Test func staleCleanupSparesLiveProcessesAndOtherFiles() throws {
        let dir = TempDir()
        let fm = FileManager.default
        // PID 1 and our own PID are alive; a PID above the kernel's maximum is not.
        for name in [".x.tmp-1-a", ".x.tmp-\(getpid())-b", ".x.tmp-99999999-c", ".y.tmp-99999999-d", "x"] {
            fm.createFile(atPath: dir.file(name), contents: Data([1]))
        }
        try fm.createDirectory(atPath: dir.file(".m.tmp-99999999-e"), withIntermediateDirectories: false)
        fm.createFile(atPath: dir.file(".m.tmp-99999999-e/inner"), contents: Data([1]))
        #expect(AtomicWrite.removeStaleTemporaries(in: dir.path, named: "x") == [".x.tmp-99999999-c"])
        #expect(Set(AtomicWrite.removeStaleTemporaries(in: dir.path)) == [".y.tmp-99999999-d", ".m.tmp-99999999-e"])
        #expect(try entries(dir) == [".x.tmp-1-a", ".x.tmp-\(getpid())-b", "x"].sorted())
    }
}

@Suite(.serialized) struct AtomicDirectoryTests {
    func entries(_ path: String) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: path).sorted() }

    /// A model-like folder: weights plus a small JSON file.
    func fillModel(_ dir: String, seed: Int) throws {
        try SafetensorsWriter.write([("w", sampleTensor([8, 8], seed: seed))], to: dir + "/model.safetensors")
        try AtomicWrite.write(Data("{\"seed\": \(seed)}".utf8), to: dir + "/config.json")
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: false)
        try AtomicWrite.write(Data([UInt8(seed)]), to: dir + "/sub/extra.bin")
    }

    func expectModel(_ dir: String, seed: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try SafetensorsFile(path: dir + "/model.safetensors").tensor("w").scalars == sampleTensor([8, 8], seed: seed).scalars,
                sourceLocation: sourceLocation)
        #expect(try String(contentsOfFile: dir + "/config.json", encoding: .utf8) == "{\"seed\": \(seed)}", sourceLocation: sourceLocation)
        #expect(try entries(dir) == ["config.json", "model.safetensors", "sub"], sourceLocation: sourceLocation)
    }

    @Test func createsThenReplacesAFolder() throws {
        let root = TempDir()
        let model = root.file("model")
        try AtomicDirectory.write(to: model) { try fillModel($0, seed: 1) }
        try expectModel(model, seed: 1)
        try AtomicDirectory.write(to: model) { try fillModel($0, seed: 2) }
        try expectModel(model, seed: 2)
        #expect(try entries(root.path) == ["model"])
    }

    @Test func throwingFillLeavesOldFolderAndNoTemporary() throws {
        let root = TempDir()
        let model = root.file("model")
        try AtomicDirectory.write(to: model) { try fillModel($0, seed: 1) }
        #expect(throws: Planned.self) {
            try AtomicDirectory.write(to: model) { tmp in
                try fillModel(tmp, seed: 2)
                throw Planned()
            }
        }
        try expectModel(model, seed: 1)
        #expect(try entries(root.path) == ["model"])
        // Also when the folder did not exist before.
        #expect(throws: Planned.self) { try AtomicDirectory.write(to: root.file("new")) { _ in throw Planned() } }
        #expect(try entries(root.path) == ["model"])
    }

    @Test func refusesToReplaceAFile() throws {
        let root = TempDir()
        try AtomicWrite.write(Data([1]), to: root.file("f"))
        #expect(throws: FormatError.self) { try AtomicDirectory.write(to: root.file("f")) { _ in } }
        #expect(try entries(root.path) == ["f"])
    }

    @Test func killedSaveLeavesOldFolderLoadable() async throws {
        let root = TempDir()
        let model = root.file("model")
        try AtomicDirectory.write(to: model) { try fillModel($0, seed: 1) }
        await #expect(processExitsWith: .signal(SIGKILL)) { [model = model as String] in
            try AtomicDirectory.write(to: model) { tmp in
                try AtomicDirectoryTests().fillModel(tmp, seed: 2)
                killSelf()
            }
        }
        try expectModel(model, seed: 1)
        #expect(try deadWriter(of: "model", in: root.path) != nil, "the killed save's folder is left, named by its PID")
        // The next save removes the killed one's folder and succeeds.
        try AtomicDirectory.write(to: model) { try fillModel($0, seed: 3) }
        try expectModel(model, seed: 3)
        #expect(try entries(root.path) == ["model"])
    }
}

@Suite struct ExchangeTests {
    @Test func exchangeSwapsTwoFoldersWhereSupported() throws {
        let root = TempDir()
        let fm = FileManager.default
        for (d, byte) in [("a", UInt8(1)), ("b", UInt8(2))] {
            try fm.createDirectory(atPath: root.file(d), withIntermediateDirectories: false)
            fm.createFile(atPath: root.file(d + "/f"), contents: Data([byte]))
        }
        // False only where the file system has no atomic exchange (then write() falls back).
        guard try AtomicDirectory.exchange(root.file("a"), root.file("b")) else { return }
        #expect(fm.contents(atPath: root.file("a/f")) == Data([2]))
        #expect(fm.contents(atPath: root.file("b/f")) == Data([1]))
    }
}
