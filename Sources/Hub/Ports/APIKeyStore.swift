/// An API key as stored: the secret itself is never kept, only its SHA-256.
public struct APIKeyRecord: Sendable, Equatable {
    public var id: String
    public var name: String
    public var secretSHA256: [UInt8]
    public var createdAt: Int64
    public var revokedAt: Int64?
    public var perMinute: Int
    public var perHour: Int
    public var perMonth: Int
    /// Scope names (`sessions:read`, ...), as stored.
    public var scopes: [String] = ["runs:publish"]
    /// Run ids (a trailing `*` is a prefix) this key may publish to; nil: any.
    public var runs: [String]?
    /// Run owners (a trailing `*` is a prefix) this key may start runs for; nil: any.
    public var owners: [String]?
    public init(
        id: String, name: String, secretSHA256: [UInt8], createdAt: Int64, revokedAt: Int64?, perMinute: Int,
        perHour: Int, perMonth: Int, scopes: [String] = ["runs:publish"], runs: [String]? = nil,
        owners: [String]? = nil
    ) {
        self.id = id; self.name = name; self.secretSHA256 = secretSHA256; self.createdAt = createdAt
        self.revokedAt = revokedAt; self.perMinute = perMinute; self.perHour = perHour; self.perMonth = perMonth
        self.scopes = scopes; self.runs = runs; self.owners = owners
    }
}

/// What a new key may do and how often.
public struct APIKeySpec: Sendable {
    /// The limits a key gets unless its maker says otherwise, chosen for a CI job that publishes a run:
    /// 10 requests a second unbatched (each request may carry up to 1,000 events), a job of an hour at
    /// 2-3 a second, and about 500 such jobs a month. A key for a person or a dashboard gets less.
    public static let defaultPerMinute = 600, defaultPerHour = 10_000, defaultPerMonth = 500_000
    public var name: String
    public var perMinute: Int, perHour: Int, perMonth: Int
    public var scopes: [String]
    public var runs: [String]?
    public var owners: [String]?
    public init(
        name: String, perMinute: Int, perHour: Int, perMonth: Int, scopes: [String] = ["runs:publish"],
        runs: [String]? = nil, owners: [String]? = nil
    ) {
        self.name = name; self.perMinute = perMinute; self.perHour = perHour; self.perMonth = perMonth
        self.scopes = scopes; self.runs = runs; self.owners = owners
    }
}

/// API keys and their usage counts. Every call but `recordUse` blocks on storage, so the hub keeps the
/// keys in memory and calls these from a worker (at start-up, after a change, and every few seconds
/// to see keys made by `collabhub keys` in another process).
public protocol APIKeyStore: AnyObject {
    /// Every key, revoked ones included.
    func allKeys() throws -> [APIKeyRecord]
    /// Creates a key; returns its record and the full key to hand out (`chk_<id>_<secret>`), shown once.
    func createKey(_ spec: APIKeySpec, actor: String) throws -> (APIKeyRecord, String)
    /// Revokes a key; false when there is no such active key.
    func revokeKey(id: String, actor: String) throws -> Bool
    /// Stored request counts in one usage window (`h<hour>` or `m<month>`) of every key that has any.
    func usage(window: String) throws -> [String: Int]
    /// Counts one request of a key in two usage windows; written with the next group commit.
    func recordUse(id: String, windows: (String, String))
    /// The cluster's shared counts (quotas, failed joins) and news of key changes; nil: this process's own.
    var accounting: SharedAccounting? { get }
}

extension APIKeyStore {
    public var accounting: SharedAccounting? { nil }
}
