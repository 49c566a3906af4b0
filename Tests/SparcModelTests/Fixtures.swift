import Foundation
import SparcFormats
@testable import SparcModel
import SparcTensor

/// Committed fixtures from scripts/make_references.py.
enum Fixtures {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static func path(_ name: String) -> String { dir + "/" + name }

    nonisolated(unsafe) static let references: [String: Any] = json("references.json")
    static let logits = try! SafetensorsFile(path: path("references.safetensors"))
    static let corpus: [String] = (try! JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("tokenizer-corpus.json"))))) as! [String]

    static func json(_ name: String) -> [String: Any] {
        (try! JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path(name))))) as! [String: Any]
    }

    static func model(_ file: String) -> [String: Any] {
        (references["models"] as! [String: Any])[file] as! [String: Any]
    }

    static func ints(_ any: Any?) -> [Int] { (any as! [NSNumber]).map(\.intValue) }
    static func intLists(_ any: Any?) -> [[Int]] { (any as! [[NSNumber]]).map { $0.map(\.intValue) } }
}

func maxAbsDiff(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.count == b.count)
    return zip(a.scalars, b.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// A scratch directory removed when the test ends.
final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "sparc-test-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}
