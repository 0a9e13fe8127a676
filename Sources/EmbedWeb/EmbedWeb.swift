import Foundation

/// Build-time tool of the EmbedWebPlugin: writes a Swift file holding the pages, scripts and styles of
/// `Sources/Server/Web` as base64 strings, so the `collabhub` binary carries them and runs copied alone
/// (no resource bundle to lose). Usage: EmbedWeb OUTPUT.swift FILE... where a FILE given as `NAME=PATH` is
/// embedded under NAME (the browser client, `Sources/Clients/js/index.js`, as `collabhub.js`).
@main
enum EmbedWeb {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let output = args.first else { fail("usage: EmbedWeb OUTPUT.swift FILE...", 2) }
        var out = "// Generated at build time by EmbedWeb from Sources/Server/Web and Sources/Clients/js: "
        out += "not edited, not committed.\n"
        out += "enum WebAssets {\n    /// File name -> contents, base64.\n    static let files: [String: String] = [\n"
        let entries = args.dropFirst().map { arg -> (name: String, path: String) in
            if let eq = arg.firstIndex(of: "="), !arg[..<eq].contains("/") {
                return (String(arg[..<eq]), String(arg[arg.index(after: eq)...]))
            }
            return (URL(fileURLWithPath: arg).lastPathComponent, arg)
        }
        for (name, path) in entries.sorted(by: { $0.name < $1.name }) {
            guard let data = FileManager.default.contents(atPath: path) else { fail("EmbedWeb: cannot read \(path)") }
            out += "        \"\(name)\": \"\(data.base64EncodedString())\",\n"
        }
        out += "    ]\n}\n"
        do { try out.write(toFile: output, atomically: true, encoding: .utf8) } catch {
            fail("EmbedWeb: cannot write \(output): \(error)")
        }
    }

    static func fail(_ message: String, _ code: Int32 = 1) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        exit(code)
    }
}
