import Foundation
import PackagePlugin

/// Compiles the pages into the Server module (`WebAssets`), from `Sources/Server/Web`, at every build
/// where one of them changed. The browser client is the npm package's own module,
/// `Sources/Clients/js/index.js` (one copy), embedded under the name `collabhub.js` (served at `/client.js`).
@main
struct EmbedWebPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let module = target as? SourceModuleTarget else { return [] }
        let web = module.directoryURL.appending(path: "Web")
        let files = try FileManager.default.contentsOfDirectory(at: web, includingPropertiesForKeys: nil)
            .filter { !$0.hasDirectoryPath && !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let client = context.package.directoryURL.appending(path: "Sources/Clients/js/index.js")
        let output = context.pluginWorkDirectoryURL.appending(path: "WebAssets.swift")
        // `NAME=PATH` embeds PATH under NAME; a plain path under its file name.
        let arguments = [output.path] + files.map(\.path) + ["collabhub.js=" + client.path]
        return [
            .buildCommand(
                displayName: "Embedding \(files.count + 1) web files",
                executable: try context.tool(named: "EmbedWeb").url,
                arguments: arguments, inputFiles: files + [client], outputFiles: [output])
        ]
    }
}
