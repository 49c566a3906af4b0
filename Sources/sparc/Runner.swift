import Foundation
import SparcCluster
import SparcLang

/// Runs scripts and `-e` code: errors go to stderr as `FILE:LINE:COL: error: …` with
/// the source line and a caret; the exit status is 0 on success, 1 on error.
enum Runner {
    static func runFile(_ path: String, arguments: [String]) -> Int32 {
        let text: String
        switch readSourceFile(path) {
        case .success(let t): text = t
        case .failure(let e): return report("sparc: \(e.message)")
        }
        let interpreter = Interpreter(arguments: arguments)
        do {
            var value = try interpreter.run(Source(name: path, text: text))
            Teardown.release(&value)  // iteratively: it may be nested deeper than this stack
            return 0
        } catch {
            return report("\(error)")
        }
    }

    static func evaluate(code: String, arguments: [String]) -> Int32 {
        let interpreter = Interpreter(arguments: arguments)
        do {
            var value = try interpreter.run(Source(name: "-e", text: code))
            // Rendered and freed on the interpreter's stack: the value may be deeply nested.
            if let text = interpreter.display(&value), interpreter.speaks { print(text) }
            return 0
        } catch {
            return report("\(error)")
        }
    }

    /// Under `mpirun`, an error on any rank ends every rank (they would wait forever at
    /// the next collective step): the message names its rank and MPI_Abort stops the job.
    static func report(_ message: String) -> Int32 {
        let world = World.current
        let text = world.size > 1 ? "[rank \(world.rank) of \(world.size)] \(message)\n" : message + "\n"
        FileHandle.standardError.write(text.data(using: .utf8)!)
        if world.size > 1 { world.communicator.abort(code: 1) }
        return 1
    }
}
