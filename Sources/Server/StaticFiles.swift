import Foundation
import WebSocket

/// The browser client and pages (`Sources/Server/Web`, shipped as package resources), read once at
/// start-up and served from memory.
struct StaticFiles {
    struct File { let body: [UInt8]; let contentType: String }
    private var files: [String: File] = [:]

    init() {
        let table: [(String, String, String)] = [
            ("/", "index.html", "text/html; charset=utf-8"),
            ("/dashboard", "dashboard.html", "text/html; charset=utf-8"),
            ("/replay", "replay.html", "text/html; charset=utf-8"),
            ("/admin", "admin.html", "text/html; charset=utf-8"),
            ("/admin.js", "admin.js", "text/javascript; charset=utf-8"),
            ("/client.js", "collabhub.js", "text/javascript; charset=utf-8"),
            ("/app.css", "app.css", "text/css; charset=utf-8"),
        ]
        for (path, name, type) in table {
            let parts = name.split(separator: ".")
            guard let url = Bundle.module.url(forResource: "Web/" + String(parts[0]), withExtension: String(parts[1])),
                let data = try? Data(contentsOf: url)
            else { continue }
            files[path] = File(body: Array(data), contentType: type)
        }
    }

    /// The file for a request path (`/replay/CODE` serves the replay page).
    func lookup(_ path: String) -> File? {
        if path.hasPrefix("/replay/") { return files["/replay"] }
        return files[path]
    }
}
