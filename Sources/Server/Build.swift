import Foundation

/// What this binary is: the version (set here, with each release) and the commit it was built from,
/// which `scripts/package.sh` writes into `Web/build.json` before a release build (compiled in with the
/// pages); a build without it says `dev`. Shown by `collabhub --version`, on `/healthz` and as the
/// `collabhub_build_info` metric.
public enum Build {
    public static let version = "0.10.0"
    public static let commit: String = {
        guard let encoded = WebAssets.files["build.json"], let bytes = Data(base64Encoded: encoded),
            let object = try? JSONSerialization.jsonObject(with: bytes) as? [String: Any],
            let commit = object["commit"] as? String, !commit.isEmpty, commit.utf8.count <= 64,
            commit.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") })
        else { return "dev" }
        return commit
    }()
    /// `0.10.0 (3f2a9c1)`.
    public static var description: String { "\(version) (\(commit))" }
}
