// swift-tools-version: 6.1
import PackageDescription

// Layers, bottom to top: CBLAS (OpenBLAS), CKernels (element-wise C kernels) → SparcTensor (tensor core) →
// SparcFormats (GGUF / safetensors files) → SparcModel (tokenizer, Llama runtime) →
// SparcAttribution (AttnLRP and baselines) → SparcPruning (masks, pruning) →
// SparcWorkflows (tasks, circuits, behaviour metrics, charts) → SparcLang (the sparc
// language) → sparc (CLI and REPL). Beside them at the bottom, CMPI → SparcCluster: the
// processes of an `mpirun` job (MPI loaded at run time), which attribution, workflows and
// the language use to shard samples and split evaluations.
let package = Package(
    name: "sparc",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sparc", targets: ["sparc"]),
        .library(name: "SparcTensor", targets: ["SparcTensor"]),
        .library(name: "SparcCluster", targets: ["SparcCluster"]),
        .library(name: "SparcFormats", targets: ["SparcFormats"]),
        .library(name: "SparcModel", targets: ["SparcModel"]),
        .library(name: "SparcAttribution", targets: ["SparcAttribution"]),
        .library(name: "SparcPruning", targets: ["SparcPruning"]),
        .library(name: "SparcWorkflows", targets: ["SparcWorkflows"]),
        .library(name: "SparcLang", targets: ["SparcLang"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .target(name: "CEditLine", linkerSettings: [.linkedLibrary("edit")]),
        .target(name: "CAllocator"),
        .target(name: "CKernels"),
        .target(name: "CMPI", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "SparcCluster", dependencies: ["CMPI"]),
        .target(name: "SparcTensor", dependencies: ["CBLAS", "CAllocator", "CKernels"]),
        .target(name: "SparcFormats", dependencies: ["SparcTensor"]),
        .target(name: "SparcModel", dependencies: ["SparcTensor", "SparcFormats",
                                                   .product(name: "HeapModule", package: "swift-collections")]),
        .target(name: "SparcAttribution", dependencies: ["SparcModel", "SparcTensor", "SparcCluster"]),
        .target(name: "SparcPruning", dependencies: ["SparcAttribution", "SparcModel", "SparcTensor"]),
        .target(name: "SparcWorkflows", dependencies: ["SparcPruning", "SparcAttribution", "SparcModel", "SparcTensor", "SparcCluster"]),
        .target(name: "SparcLang", dependencies: ["SparcModel", "SparcAttribution", "SparcPruning", "SparcWorkflows", "SparcTensor", "SparcCluster"]),
        .executableTarget(
            name: "sparc",
            dependencies: [
                "SparcModel",
                "SparcAttribution",
                "SparcLang",
                "SparcCluster",
                "CEditLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "SparcTensorTests", dependencies: ["SparcTensor"]),
        .testTarget(name: "SparcClusterTests", dependencies: ["SparcCluster"]),
        .testTarget(name: "SparcAttributionTests", dependencies: ["SparcAttribution", "SparcModel", "SparcFormats", "SparcTensor", "SparcCluster"], exclude: ["Fixtures"]),
        .testTarget(name: "SparcPruningTests", dependencies: ["SparcPruning", "SparcAttribution", "SparcModel", "SparcTensor"]),
        .testTarget(name: "SparcWorkflowsTests", dependencies: ["SparcWorkflows", "SparcPruning", "SparcAttribution", "SparcModel", "SparcTensor"]),
        .testTarget(name: "SparcLangTests", dependencies: ["SparcLang", "SparcModel", "SparcFormats", "SparcTensor"], exclude: ["scripts"]),
        .testTarget(name: "SparcFormatsTests", dependencies: ["SparcFormats"], exclude: ["Fixtures"]),
        .testTarget(
            name: "SparcModelTests",
            dependencies: ["SparcModel", "SparcFormats"],
            exclude: ["Fixtures"]
        ),
    ]
)
