import Foundation
import Testing
@testable import SparcLang
import SparcModel

/// Every script in examples/ runs on the default model without error. They run when the
/// model is installed and must run when SPARC_REQUIRE_MODEL=1 (scripts/test.sh, CI).
@Suite struct ExampleTests {
    static let modelAvailable: Bool = {
        FileManager.default.fileExists(atPath: ModelRegistry.path(of: ModelRegistry.entry(named: "smollm2")!))
            || ProcessInfo.processInfo.environment["SPARC_REQUIRE_MODEL"] == "1"
    }()

    static var examples: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: Paths.examples.path)) ?? []).filter { $0.hasSuffix(".sparc") }.sorted()
    }

    @Test(.enabled(if: modelAvailable), arguments: examples)
    func exampleRuns(file: String) throws {
        let path = Paths.examples.appendingPathComponent(file).path
        let code = try String(contentsOfFile: path, encoding: .utf8)
        // Examples that write charts or masks take an output folder as their first argument.
        let out = NSTemporaryDirectory() + "sparc-example-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: out) }
        let s = Session(arguments: code.contains("[OUT_DIR]") ? [out] : [])
        s.interpreter.modulePath = [Paths.repo.appendingPathComponent("stdlib").path]
        do { try s.run(code, name: path) } catch { Issue.record("\(error)") }
        #expect(!s.output.isEmpty)
        // Every result table the example prints is complete (no empty cells).
        #expect(!s.output.contains("|  |"), "\(s.output)")
    }

    static var paperExamples: [String] {
        let dir = Paths.examples.appendingPathComponent("paper").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".sparc") }.sorted()
    }

    /// The paper's experiments (examples/paper) run in their reduced setting (`quick`): on
    /// the repository's own texts, no installed dataset needed. Full runs are by hand.
    @Test(.enabled(if: modelAvailable), arguments: paperExamples)
    func paperExampleRunsQuick(file: String) throws {
        let path = Paths.examples.appendingPathComponent("paper").appendingPathComponent(file).path
        let out = NSTemporaryDirectory() + "sparc-paper-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: out) }
        let s = Session(arguments: [out, "quick"])
        s.interpreter.modulePath = [Paths.repo.appendingPathComponent("stdlib").path]
        do { try s.run(try String(contentsOfFile: path, encoding: .utf8), name: path) } catch { Issue.record("\(error)") }
        #expect(s.output.contains("|---|"), "\(s.output)")
        #expect(!s.output.contains("|  |"), "\(s.output)")
    }

    @Test func quickstartPredictsParis() throws {
        try #require(ExampleTests.modelAvailable)
        let s = Session()
        try s.run(try String(contentsOfFile: Paths.examples.appendingPathComponent("quickstart.sparc").path, encoding: .utf8))
        #expect(s.output.contains("   Paris  logit 17.371"), "\(s.output)")
        #expect(s.output.contains("chat: The capital of France is Paris."))
    }
}
