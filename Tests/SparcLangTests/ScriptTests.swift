import Foundation
import Testing
@testable import SparcLang

/// Golden tests: every `scripts/NAME.sparc` must print exactly `scripts/NAME.out`
/// (a script that fails prints ERROR and its error text after its output).
@Suite struct ScriptTests {
    static var scripts: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: Paths.scripts.path)) ?? [])
            .filter { $0.hasSuffix(".sparc") }.sorted()
    }

    static func transcript(of file: String) -> String {
        let s = Session(arguments: [Paths.tinyModel])
        s.interpreter.modulePath = [Paths.repo.appendingPathComponent("stdlib").path]
        let code = (try? String(contentsOf: Paths.scripts.appendingPathComponent(file), encoding: .utf8)) ?? ""
        do {
            try s.run(code, name: file)
            return s.output
        } catch {
            return s.output + (s.output.isEmpty ? "" : "\n") + "ERROR\n\(error)"
        }
    }

    @Test(arguments: scripts)
    func scriptPrintsItsExpectedOutput(file: String) throws {
        let expectedPath = Paths.scripts.appendingPathComponent(file.replacingOccurrences(of: ".sparc", with: ".out"))
        let expected = try String(contentsOf: expectedPath, encoding: .utf8)
        let actual = ScriptTests.transcript(of: file)
        #expect(actual == expected.trimmingCharacters(in: .newlines), "\(file):\n\(actual)")
    }

    @Test func corpusIsNotEmpty() { #expect(ScriptTests.scripts.count >= 5) }
}
