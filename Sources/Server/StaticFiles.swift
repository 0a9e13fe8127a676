import Bytes
import Foundation
import WebSocket

/// The browser client and pages (`Sources/Server/Web`, compiled into the binary by EmbedWebPlugin),
/// decoded once at start-up and served from memory.
struct StaticFiles {
    struct File {
        let body: [UInt8]
        let contentType: String
        /// Security headers (N14); a page's CSP names the hashes of its own inline scripts.
        var headers: [(String, String)] = []
    }
    private var files: [String: File] = [:]

    init() {
        let table: [(String, String, String)] = [
            ("/", "index.html", "text/html; charset=utf-8"),
            ("/dashboard", "dashboard.html", "text/html; charset=utf-8"),
            ("/replay", "replay.html", "text/html; charset=utf-8"),
            ("/admin", "admin.html", "text/html; charset=utf-8"),
            ("/admin.js", "admin.js", "text/javascript; charset=utf-8"),
            ("/client.js", "collabhub.js", "text/javascript; charset=utf-8"),
            ("/pages.js", "pages.js", "text/javascript; charset=utf-8"),
            ("/app.css", "app.css", "text/css; charset=utf-8"),
            // One icon for every page; `/favicon.ico` is where browsers look when a page names none.
            ("/favicon.svg", "favicon.svg", "image/svg+xml"),
            ("/favicon.ico", "favicon.svg", "image/svg+xml"),
        ]
        for (path, name, type) in table {
            // Compiled in (EmbedWebPlugin); a file missing there is a build defect the tests catch.
            guard let encoded = WebAssets.files[name], let body = Base64.decode(encoded) else { continue }
            let isPage = type.hasPrefix("text/html")
            var headers = [("Cache-Control", "no-cache")] + Self.securityHeaders(page: isPage ? body : nil)
            // An SVG opened on its own is a document: it runs nothing and loads nothing.
            if type.hasPrefix("image/svg") {
                headers.append(("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"))
            }
            files[path] = File(body: body, contentType: type, headers: headers)
        }
    }

    /// No framing (clickjacking of the console's End, Revoke and Create), no MIME sniffing, no referrer
    /// (a page's URL may carry a share token); on pages, a CSP that runs only the hub's own scripts:
    /// files from the hub and the page's inline module, by its SHA-256.
    static func securityHeaders(page: [UInt8]?) -> [(String, String)] {
        var h: [(String, String)] = [
            ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer"),
        ]
        guard let page else { return h }
        let hashes = inlineScripts(page).map { "'sha256-\(Base64.encode(Crypto.sha256($0)))'" }
        h.append(
            (
                "Content-Security-Policy",
                "default-src 'self'; script-src 'self' \(hashes.joined(separator: " ")); "
                    + "style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; connect-src 'self' ws: wss:; "
                    + "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
            ))
        return h
    }

    /// The bodies of a page's inline `<script>` elements (those without `src`), as bytes.
    static func inlineScripts(_ page: [UInt8]) -> [[UInt8]] {
        let html = String(decoding: page, as: UTF8.self)
        var out: [[UInt8]] = []
        var rest = html[...]
        while let open = rest.range(of: "<script") {
            guard let tagEnd = rest[open.upperBound...].firstIndex(of: ">"),
                let close = rest[tagEnd...].range(of: "</script>")
            else { break }
            let attributes = rest[open.upperBound..<tagEnd]
            if !attributes.contains("src=") {
                out.append(Array(rest[rest.index(after: tagEnd)..<close.lowerBound].utf8))
            }
            rest = rest[close.upperBound...]
        }
        return out
    }

    /// The file for a request path (`/replay/CODE` serves the replay page).
    func lookup(_ path: String) -> File? {
        if path.hasPrefix("/replay/") { return files["/replay"] }
        return files[path]
    }
}
