import Foundation
import Testing
@testable import SparcLang

/// zero_shot() on the made-up fixture items (Tests/SparcModelTests/Fixtures/zero-shot),
/// whose expected answers come from scripts/make_zero_shot_reference.py; installed().
@Suite struct EvaluationBuiltinTests {
    static let items = Paths.repo.appendingPathComponent("Tests/SparcModelTests/Fixtures/zero-shot/items.jsonl").path
    static let reference = Paths.repo.appendingPathComponent("Tests/SparcModelTests/Fixtures/zero-shot/reference.json").path

    /// Accuracy and normalised accuracy of the reference's answers on one task.
    func expected(_ task: String) throws -> (n: Int, acc: Double, accNorm: Double) {
        let golds = try String(contentsOfFile: Self.items, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        let ref = (try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.reference))) as! [String: Any])["items"] as! [[String: Any]]
        var n = 0, right = 0, rightNorm = 0
        for (item, r) in zip(golds, ref) where item["task"] as! String == task {
            n += 1
            if r["prediction"] as! Int == item["gold"] as! Int { right += 1 }
            if r["prediction_norm"] as! Int == item["gold"] as! Int { rightNorm += 1 }
        }
        return (n, Double(right) / Double(n), Double(rightNorm) / Double(n))
    }

    @Test func oneTaskAndTheMeanOverTasks() throws {
        let s = Session()
        try s.run("let m = load_model(\"\(Paths.tinyModel)\")\nlet items = \"\(Self.items)\"")
        let e = try expected("complete")
        #expect(try s.eval("let r = zero_shot(m, items, task: \"complete\")\n[r.task, r.n, r.acc, r.acc_norm]")
                == "[\"complete\", \(e.n), \(formatNumber(e.acc)), \(formatNumber(e.accNorm))]")
        let all = try ["yesno", "complete", "question"].map(expected)
        let mean = all.map(\.acc).reduce(0, +) / 3, meanNorm = all.map(\.accNorm).reduce(0, +) / 3
        try s.run("let all = zero_shot(m, items)")
        #expect(try s.eval("[all.task, all.n, keys(all.tasks)]") == "[\"mean\", 7, [\"yesno\", \"complete\", \"question\"]]")
        func number(_ code: String) throws -> Double {
            guard case .number(let x) = try s.run(code) else { return .nan }
            return x
        }
        let acc = try number("all.acc"), accNorm = try number("all.acc_norm")
        #expect(abs(acc - mean) < 1e-12 && abs(accNorm - meanNorm) < 1e-12)
        #expect(try s.eval("all.tasks.question.n") == "2")
        #expect(try s.eval("zero_shot(m, items, limit: 1).n") == "3")
        // Records work as well as a file, and give the same answers.
        #expect(try s.eval("""
            import "lists"
            let recs = filter(jsonl(items), fn(r) => r.task == "complete")
            zero_shot(m, recs).acc == zero_shot(m, items, task: "complete").acc
            """) == "true")
    }

    @Test func badInputIsAnErrorThatSaysWhat() throws {
        let s = Session()
        try s.run("let m = load_model(\"\(Paths.tinyModel)\")")
        #expect(s.error("zero_shot(m, [{context: \"c\", choices: [], gold: 0}])").contains("zero_shot: items[0]: zero-shot item of task: no choices"))
        #expect(s.error("zero_shot(m, [{choices: [\"a\"], gold: 0}])").contains("zero_shot: items[0]: missing field context"))
        #expect(s.error("zero_shot(m, [{context: \"c\", choices: [\"a\"], gold: 1}])").contains("gold 1 is not an index of its 1 choices"))
        #expect(s.error("zero_shot(m, [{context: \"c\", choices: [\"a\"], gold: 0.5}])").contains("items[0].gold"))
        #expect(s.error("zero_shot(m, [])").contains("zero_shot: items is an empty list"))
        #expect(s.error("zero_shot(m, 3)").contains("zero_shot: items must be a path to JSON lines or a list of records"))
        #expect(s.error("zero_shot(m, \"\(Self.items)\", task: \"nope\")").contains("no items of task \"nope\"; the items have yesno, complete, question"))
        #expect(s.error("zero_shot(m, \"\(Self.items)\", limit: 0)").contains("limit"))
        #expect(s.error("zero_shot(m, \"/nonexistent.jsonl\")").contains("zero_shot: zero-shot: cannot read /nonexistent.jsonl"))
        #expect(s.error("installed(\"wikitext\")").contains("installed: no entry named \"wikitext\""))
    }

    @Test func installedFollowsTheDataFolder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sparc-installed-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let before = try runBinary(["-e", "installed(\"zero-shot\")"], environment: ["SPARC_DATA": dir])
        #expect(before.status == 0 && before.out.trimmingCharacters(in: .whitespacesAndNewlines) == "false", "\(before)")
        try FileManager.default.copyItem(atPath: Self.items, toPath: dir + "/zero-shot.jsonl")
        let after = try runBinary(["-e", "installed(\"zero-shot\")"], environment: ["SPARC_DATA": dir])
        #expect(after.status == 0 && after.out.trimmingCharacters(in: .whitespacesAndNewlines) == "true", "\(after)")
    }
}
