import WebSocket

/// A session's host key as it is kept: `sha256:` and the SHA-256 of the key (base64url), like API
/// keys. The key itself is shown once, to whoever created the session; the store, Redis's session
/// row and the directory channel hold only the hash, so reading them (a backup, a Redis replica, a
/// subscriber of `chub:dir`) does not make one a host. Rows written before keys were hashed hold the
/// key itself, and are compared as they are (SQLite's rows are hashed when the database is opened).
public enum HostKey {
    static let marker = "sha256:"

    /// A new key: what to show once, and what to store.
    public static func generate() -> (key: String, stored: String) {
        let key = Base64.encode(Crypto.randomBytes(18), urlSafe: true)
        return (key, stored(key))
    }

    /// What is stored for `key`.
    public static func stored(_ key: String) -> String {
        marker + Base64.encode(Crypto.sha256(Array(key.utf8)), urlSafe: true)
    }

    /// Whether a stored value is a hash (not an older row's plaintext key).
    public static func isHashed(_ stored: String) -> Bool { stored.hasPrefix(marker) }

    /// Whether `given` is the key `stored` records, compared in constant time. A plaintext key (older
    /// rows) cannot start with the marker: keys are base64url, which has no `:`.
    public static func matches(_ given: String, stored: String) -> Bool {
        if isHashed(stored) { return Crypto.constantTimeEquals(Array(Self.stored(given).utf8), Array(stored.utf8)) }
        return !stored.isEmpty && Crypto.constantTimeEquals(Array(given.utf8), Array(stored.utf8))
    }
}
