// swift-tools-version:6.0
// The Hummingbird comparison peer (loadtest/bench_rooms.sh builds it with --scratch-path .build-peer).
// Its folder is not called "hummingbird": SwiftPM names a root package after its folder, and one
// named like its dependency fails with a misleading "disabled default traits" error.
import PackageDescription
let package = Package(
    name: "HBRooms",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.0.0"),
    ],
    targets: [
        .executableTarget(name: "HBRooms", dependencies: [
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
        ]),
    ]
)
