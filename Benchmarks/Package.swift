// swift-tools-version: 6.1
import PackageDescription

// The benchmarks of portsyncd's pipeline stages (ordo-one/benchmark), a package of its own so that the daemon does
// not depend on the benchmark harness. `swift package benchmark` runs them in release mode; the committed
// thresholds on allocation counts are in Thresholds/.
let package = Package(
    name: "PortsyncdBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "portsyncd", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "PipelineBenchmarks",
            dependencies: [
                .product(name: "PortSyncCore", package: "portsyncd"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "PipelineBenchmarks",
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("InternalImportsByDefault"),
            ],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ],
    swiftLanguageModes: [.v6]
)
