extension StoreFailure {
    /// What starts a failure whose write may nonetheless be stored: Redis ran the append but fewer
    /// replicas than `--redis-wait-replicas` confirmed it in time (it is on the master, not acknowledged).
    public static let unconfirmedCode = "NOTREPLICATED"

    /// The write may be stored (not acknowledged) rather than surely not stored.
    public var unconfirmed: Bool { message.contains(Self.unconfirmedCode) }

    /// How a client is told: "not acknowledged" when the write may be stored, else "not stored".
    public var notStoredWords: String { unconfirmed ? "not acknowledged" : "not stored" }
}
