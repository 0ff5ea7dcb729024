// swift-tools-version: 6.0
import PackageDescription

// The fuzzers of what portsyncd parses from outside: the configuration file, netlink datagrams (decoder and pipeline
// stages) and SONiC's database_config.json. Each target is a libFuzzer harness (`LLVMFuzzerTestOneInput`) with its
// own `main`, which hands it to libFuzzer (FuzzSupport). `scripts/fuzz.sh` builds them with `-sanitize=fuzzer,address`
// for the whole build, so that PortSyncCore is instrumented too, and runs them. A package of its own, like
// Benchmarks/, so that the daemon's build is not affected.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "PortsyncdFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(name: "portsyncd", path: "..")],
    targets: [
        // libFuzzer's LLVMFuzzerRunDriver, from the sanitizer's runtime (nothing to link).
        .systemLibrary(name: "CFuzzer", path: "CFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzer"], path: "FuzzSupport", swiftSettings: strict),
        .executableTarget(
            name: "FuzzConfig", dependencies: ["FuzzSupport", .product(name: "PortSyncCore", package: "portsyncd")],
            path: "FuzzConfig", swiftSettings: strict),
        .executableTarget(
            name: "FuzzNetlink", dependencies: ["FuzzSupport", .product(name: "PortSyncCore", package: "portsyncd")],
            path: "FuzzNetlink", swiftSettings: strict),
        .executableTarget(
            name: "FuzzDatabaseConfig",
            dependencies: ["FuzzSupport", .product(name: "PortSyncCore", package: "portsyncd")],
            path: "FuzzDatabaseConfig", swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
