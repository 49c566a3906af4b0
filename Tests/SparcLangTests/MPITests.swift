import Foundation
import SparcAttribution
import SparcFormats
import Testing

/// `mpirun -np N sparc script.sparc`: the same script gives the same results as one
/// process, rank 0 alone prints and writes, and an error on any rank ends the job with
/// that rank's message. Needs Open MPI's `mpirun` (scripts/setup.sh installs it; CI sets
/// SPARC_REQUIRE_MPI=1 so that a missing one fails instead of skipping).
@Suite(.enabled(if: MPI.available || MPI.required, "mpirun not installed (Debian: openmpi-bin)"), .serialized)
struct MPITests {
    static let script = """
        let m = load_model(args[0])
        let dir = args[1]
        let w = world()
        print("world", w.size, w.rank)
        let t = task(["When Mary and John went", "The cat sat on the", "One two three four", "Hello world and", "It is a"],
                     ["a", "b", "c", "d", "e"], ["x", "y", "z", "w", "v"])
        let r = attribute(m, t, level: "weight", batch: 2)
        save(r, dir + "/weights.safetensors")
        save(attribute(m, t, level: "head", batch: 2), dir + "/heads-" + str(w.rank) + ".safetensors")
        print(curve(m, t, attribute(m, t, level: "head", batch: 2), [0.25, 0.5, 0.75, 1.0], per: "global"))
        print(circuit(m, t, only(r, "mlp"), keep: 0.5, grid: [0.2, 0.4, 0.6, 0.8, 1.0], refine: 2).kept)
        print(sweep(m, {lrp: r, mag: attribute(m, t, method: "magnitude")}, [0.1, 0.3],
                    "The quick brown fox jumps over the lazy dog. A dog and a fox met at noon.", window: 16))
        print(harvest(m, ["Hello there", "One two", "The cat"], fn(c) => true, max_tokens: 4))
        """

    func runScript(ranks: Int?, _ code: String, _ dir: String) throws -> (status: Int32, out: String, err: String) {
        let file = dir + "/script.sparc"
        try code.write(toFile: file, atomically: true, encoding: .utf8)
        let sparc = [Paths.binary, file, Paths.tinyModel, dir]
        return try MPI.run(ranks.map { ["mpirun", "-np", String($0), "--oversubscribe"] + sparc } ?? sparc)
    }

    @Test("2 and 3 ranks: the single-process map (1e-6), the same printed results, files from rank 0 only")
    func sameResultsAsOneProcess() throws {
        let one = try temporaryDirectory(), two = try temporaryDirectory(), three = try temporaryDirectory()
        let a = try runScript(ranks: nil, Self.script, one)
        #expect(a.status == 0, "\(a.err)")
        for (ranks, dir) in [(2, two), (3, three)] {
            let b = try runScript(ranks: ranks, Self.script, dir)
            #expect(b.status == 0, "\(b.err)")
            // Rank 0 alone prints: one "world" line, saying the job's size.
            #expect(b.out.components(separatedBy: "\n").filter { $0.hasPrefix("world") } == ["world \(ranks) 0"])
            // Curve, circuit, sweep and harvest points are split over ranks and gathered: the
            // same text, numbers equal within float rounding (a rank multiplies whole products
            // where one process splits their rows over its threads, and OpenBLAS's AVX2 Haswell
            // kernels round a row differently by the split: 1.3e-6 relative measured; its
            // SkylakeX kernels give the same digits).
            let printed = (b.out.split(separator: "\n").dropFirst(), a.out.split(separator: "\n").dropFirst())
            #expect(printed.0.count == printed.1.count)
            for (x, y) in zip(printed.0, printed.1) {
                #expect(PrintedNumbers.agree(String(x), String(y), relative: 1e-5), "\(x)\nvs one process:\n\(y)")
            }
            // Rank 0 alone writes: heads-1 and heads-2 must not exist.
            let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
            #expect(files == ["heads-0.safetensors", "script.sparc", "weights.safetensors"])
            let single = try RelevanceMap.load(from: try SafetensorsFile(path: one + "/weights.safetensors"))!
            let sharded = try RelevanceMap.load(from: try SafetensorsFile(path: dir + "/weights.safetensors"))!
            #expect(sharded.names == single.names)
            var diff = 0.0, norm = 0.0
            for name in single.names {
                for (x, y) in zip(sharded[name]!.scalars, single[name]!.scalars) {
                    diff += Double(x - y) * Double(x - y)
                    norm += Double(y) * Double(y)
                }
            }
            #expect(diff.squareRoot() <= 1e-6 * norm.squareRoot(), "relative L2 \(diff.squareRoot() / norm.squareRoot()) on \(ranks) ranks")
        }
    }

    @Test("an error on rank 1 ends every rank, with rank 1's message")
    func errorOnOneRankStopsAll() throws {
        let dir = try temporaryDirectory()
        let code = """
            print("start")
            if world().rank == 1 { load_model("/nonexistent/model.gguf") }
            let r = attribute(load_model(args[0]), [[1, 2, 3]])
            print("not reached")
            """
        let r = try runScript(ranks: 2, code, dir)
        #expect(r.status != 0)
        #expect(r.status != 124, "the job hung")
        #expect(r.err.contains("[rank 1 of 2] \(dir)/script.sparc:2:24: error: load_model: no model at \"/nonexistent/model.gguf\""), "\(r.err)")
        #expect(!r.out.contains("not reached"))
    }

    @Test("world() and the REPL under mpirun")
    func worldAndREPL() throws {
        let w = try MPI.run(["mpirun", "-np", "2", "--oversubscribe", Paths.binary, "-e", "let w = world()\n[w.rank, w.size, w.library]"])
        #expect(w.status == 0, "\(w.err)")
        #expect(w.out.hasPrefix("[0, 2, \"Open MPI") || w.out.hasPrefix("[0, 2, \"MPICH"), "\(w.out)")
        let repl = try MPI.run(["mpirun", "-np", "2", "--oversubscribe", Paths.binary])
        #expect(repl.status != 0)
        #expect(repl.err.contains("the REPL runs in one process"))
        // Subcommands print once too: the other ranks' standard output is closed off.
        let tokens = try MPI.run(["mpirun", "-np", "2", "--oversubscribe", Paths.binary, "tokenize", "-m", Paths.tinyModel, "hello world"])
        #expect(tokens.status == 0, "\(tokens.err)")
        #expect(tokens.out.split(separator: "\n").count == 1, "\(tokens.out)")
        // Alone: rank 0 of 1, no MPI loaded.
        let alone = try runBinary(["-e", "world()"])
        #expect(alone.out == "{rank: 0, size: 1, library: \"single process\"}\n")
    }

    func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sparc-mpi-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}

@Suite struct PrintedNumbersTests {
    @Test func textMustMatchAndNumbersAgreeWithinTheTolerance() {
        #expect(PrintedNumbers.agree("{score: 0.5665844023227692, n: 2}", "{score: 0.5665851414203644, n: 2}", relative: 1e-5))
        #expect(!PrintedNumbers.agree("{score: 0.5665, n: 2}", "{score: 0.5675, n: 2}", relative: 1e-5))
        #expect(!PrintedNumbers.agree("{score: 0.5, n: 2}", "{score: 0.5, n: 3}", relative: 1e-5))
        #expect(!PrintedNumbers.agree("[\"ab\", 1e-3]", "[\"ac\", 1e-3]", relative: 1e-5))
        #expect(!PrintedNumbers.agree("[1, 2]", "[1, 2, 3]", relative: 1e-5))
        #expect(PrintedNumbers.agree("-1.5e-3 and 0", "-1.50000001e-3 and 0", relative: 1e-5))
    }
}

/// Printed results compared as text with their numbers read as numbers.
enum PrintedNumbers {
    static var number: Regex<(Substring, Substring?, Substring?)> { /-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?/ }

    /// Whether `a` and `b` are the same text around their numbers and each pair of numbers
    /// differs by at most `relative` of the larger (integers, then, exactly).
    static func agree(_ a: String, _ b: String, relative: Double) -> Bool {
        let (na, nb) = (a.matches(of: number), b.matches(of: number))
        guard na.count == nb.count, a.replacing(number, with: "#") == b.replacing(number, with: "#") else { return false }
        return zip(na, nb).allSatisfy { x, y in
            guard let u = Double(x.output.0), let v = Double(y.output.0) else { return false }
            return abs(u - v) <= relative * max(abs(u), abs(v))
        }
    }
}

enum MPI {
    static var available: Bool { which("mpirun") != nil }
    static var required: Bool { ProcessInfo.processInfo.environment["SPARC_REQUIRE_MPI"] == "1" }

    static func which(_ name: String) -> String? {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
            .map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs a command under `timeout` (a hung job fails with status 124, not a stuck CI).
    /// Open MPI refuses root unless told: CI machines run as root. Every process count uses
    /// one sgemm library (OpenBLAS): oneDNN serves processes with more than one thread only,
    /// and its products round differently from OpenBLAS's.
    static func run(_ command: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        p.arguments = ["120"] + command
        p.environment = ProcessInfo.processInfo.environment.merging(
            ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1",
             "SPARC_BLAS": "openblas"]) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
