// swift-tools-version:6.1
import PackageDescription
import Foundation

/// CollabHub: a real-time WebSocket collaboration hub on libev.
///
/// Layers, bottom up (one module each):
///   C shims (CEV, COpenSSL, CSQLite, CZlib) -> Bytes (output chunks, crypto, base64)
///   -> WebSocket (sans-I/O codecs and the connection state machine) and EventLoop (libev, bytes only)
///   -> Hub (pure session and run logic, and the storage ports) -> Store (SQLite behind the ports)
///   -> Server (glue) -> executables. Cluster puts the log and the directory in Redis behind the same
///   ports, for `serve --redis`, speaking RESP itself on EventLoop's sockets (plain or TLS).

/// Release builds skip the run-time exclusivity checks: measured by instruction counts
/// (`loadtest/bench_callgrind.sh`, 2026-11-30), they cost 47% on fan-out (117M -> 172M instructions),
/// 15% on durable chat (530M -> 611M) and 20% on dashboards (1,097M -> 1,315M); measured again on
/// 2026-12-06 (a build with `COLLABHUB_EXCLUSIVITY_CHECKED=1` against main): 53% (121M -> 185M), 17%
/// (558M -> 651M) and 22% (1,183M -> 1,444M). Debug builds, which
/// every test runs against, keep the checks on, and the suite passes with them: the re-entrancy they
/// would catch (a connection's reader re-entered from its own callbacks) is designed out by
/// `ConnectionMachine`.
let optimize: [SwiftSetting] =
    ProcessInfo.processInfo.environment["COLLABHUB_EXCLUSIVITY_CHECKED"] != nil
    ? []  // for loadtest/bench_callgrind.sh's comparison only
    : [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

/// Every Lua script of the cluster, `Sources/Cluster/Lua/NAME.lua` (listed: SwiftPM reads the manifest again only
/// when it changes, so a directory listing would miss a new file).
let luaScripts = [
    "activity_add", "append", "batch", "join_failure", "key_charge", "key_create", "key_revoke", "log_prelude",
    "member_join", "member_leave", "member_node_lost", "member_prelude", "member_reassert", "run_append",
    "run_publisher", "save_row", "trim", "webhook_attempt", "webhook_delete", "webhook_record", "webhook_save",
    "webhook_swap", "webhook_trim",
]

let package = Package(
    name: "CollabHub",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "collabhub", targets: ["collabhub"]),
        .executable(name: "loadtest", targets: ["loadtest"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    ],
    targets: [
        .systemLibrary(name: "CEV", path: "Sources/CEV"),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL"),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),

        .target(name: "Bytes", dependencies: ["COpenSSL"], swiftSettings: optimize),
        .target(name: "WebSocket", dependencies: ["Bytes", "COpenSSL", "CZlib"], swiftSettings: optimize),
        .target(name: "EventLoop", dependencies: ["CEV", "COpenSSL", "Bytes"], swiftSettings: optimize),
        .target(name: "Hub", dependencies: ["Bytes", "WebSocket"], swiftSettings: optimize),
        .target(name: "Store", dependencies: ["CSQLite", "Hub", "WebSocket", .product(name: "Logging", package: "swift-log")],
                swiftSettings: optimize),
        // The pages are compiled in (EmbedWebPlugin): the binary runs copied alone, with no bundle beside it.
        .executableTarget(name: "EmbedWeb", path: "Sources/EmbedWeb"),
        .plugin(name: "EmbedWebPlugin", capability: .buildTool(), dependencies: ["EmbedWeb"],
                path: "Sources/EmbedWebPlugin"),
        .target(name: "Server", dependencies: ["WebSocket", "EventLoop", "Hub", "COpenSSL",
                                               .product(name: "Logging", package: "swift-log")],
                exclude: ["Web"], swiftSettings: optimize,
                // Fuzzing builds (below) use no Server, and the tool would link libFuzzer's main.
                plugins: ProcessInfo.processInfo.environment["COLLABHUB_FUZZ"] == nil ? ["EmbedWebPlugin"] : []),

        // The Lua scripts (`luaScripts`) are compiled in as bytes (`PackageResources`): no bundle beside the binary.
        .target(name: "Cluster", dependencies: ["COpenSSL", "EventLoop", "Hub", "Bytes",
                                                .product(name: "Logging", package: "swift-log")],
                resources: luaScripts.map { .embedInCode("Lua/\($0).lua") },
                swiftSettings: optimize),

        .executableTarget(name: "collabhub", dependencies: [
            "Server", "Hub", "Store", "WebSocket", "Cluster", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: optimize),
        .executableTarget(name: "loadtest", dependencies: [
            "WebSocket", "EventLoop", "COpenSSL",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ], swiftSettings: optimize),

        .testTarget(name: "WebSocketTests", dependencies: ["WebSocket"]),
        .target(name: "TestSupport", dependencies: ["Hub"], path: "Tests/Support"),
        .testTarget(name: "HubTests", dependencies: ["Hub", "TestSupport"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Hub", "TestSupport", "Cluster", "EventLoop"]),
        .testTarget(name: "EventLoopTests", dependencies: ["EventLoop", "Bytes"]),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster", "Hub", "EventLoop", "WebSocket", "TestSupport"]),
        .testTarget(name: "ServerTests", dependencies: ["Server", "Store", "Hub", "WebSocket", "EventLoop",
                                                 .product(name: "Logging", package: "swift-log")]),
    ],
    swiftLanguageModes: [.v5]
)

// libFuzzer targets have no `main` of their own (libFuzzer supplies it), so they exist only in fuzzing
// builds: `COLLABHUB_FUZZ=1 swift build -sanitize=fuzzer --scratch-path .build-fuzz --product FuzzFrames`
// (scripts/fuzz.sh does this).
if ProcessInfo.processInfo.environment["COLLABHUB_FUZZ"] != nil {
    for name in ["FuzzFrames", "FuzzHTTP", "FuzzMessages", "FuzzToken", "FuzzDeflate", "FuzzWatch", "FuzzConnection",
                 "FuzzWebhook", "FuzzCluster", "FuzzLogOrder", "FuzzRESP", "FuzzRedisRecords", "FuzzCompactIds"] {
        let deps: [Target.Dependency] =
            name == "FuzzCluster" ? ["Cluster", "Hub", "WebSocket"]
            : name == "FuzzRedisRecords" ? ["Cluster", "Hub"]
            : name == "FuzzLogOrder" ? ["Hub", "TestSupport"]
            : name == "FuzzCompactIds" ? ["Hub", "Bytes"]
            : name == "FuzzRESP" ? ["Cluster"] : ["WebSocket", "Hub"]
        package.targets.append(.executableTarget(name: name, dependencies: deps,
                                                 swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
        package.products.append(.executable(name: name, targets: [name]))
    }
}
