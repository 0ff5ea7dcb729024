// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "portsyncd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "portsyncd", targets: ["portsyncd"]),
        .executable(name: "portsyncd-bench", targets: ["portsyncd-bench"]),
        // For the Benchmarks/ package.
        .library(name: "PortSyncCore", targets: ["PortSyncCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // System libraries: a module map and a shim header each, nothing else. hiredis is found without
        // pkg-config: its .pc adds -D_FILE_OFFSET_BITS=64, which SwiftPM warns about, and its headers are in the
        // default include path as <hiredis/…>.
        .systemLibrary(name: "CMnl", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),

        // Pure domain: no I/O, no C libraries.
        .target(name: "PortSyncCore", swiftSettings: strict),
        // Every C call, socket and Dispatch source.
        .target(
            name: "PortSyncRuntime",
            dependencies: [
                "PortSyncCore", "CMnl", "CHiredis", "CSystemd",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The HTTP API: SSE and WebSocket event streams, health, ports, stats, traces, metrics, the dashboard.
        .target(
            name: "PortSyncHTTP",
            dependencies: [
                "PortSyncCore", "PortSyncRuntime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Resources")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "portsyncd",
            dependencies: [
                "PortSyncCore", "PortSyncRuntime", "PortSyncHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // `make bench`: the decoder and filter over the captured kernel datagrams, and the Redis writer's throughput.
        .executableTarget(
            name: "portsyncd-bench", dependencies: ["PortSyncCore", "PortSyncRuntime"], swiftSettings: strict),
        // The TOML parser alone, as JSON (toml-test's tagged form), for the differential test against tomllib.
        .executableTarget(name: "portsyncd-toml", dependencies: ["PortSyncCore"], swiftSettings: strict),
        .testTarget(
            name: "PortSyncCoreTests", dependencies: ["PortSyncCore"], resources: [.copy("Fixtures")],
            swiftSettings: strict),
        .testTarget(
            name: "PortSyncRuntimeTests",
            dependencies: ["PortSyncCore", "PortSyncRuntime", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
