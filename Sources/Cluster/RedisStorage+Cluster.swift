/// What a Redis Cluster changes in the storage's script calls.
extension RedisStorage {
    /// The channel argument of the scripts that publish a session's events (`append.lua`, `batch.lua`,
    /// the member scripts): the channel `{S}:ch`, with `!` before it in a Redis Cluster, where the
    /// scripts then SPUBLISH on the session's shard (sharded pub/sub) instead of PUBLISHing to every
    /// node. On one Redis the argument, and what the scripts do, is as before.
    func publishTarget(_ session: String) -> String {
        let channel = Self.keys(session).channel
        return url.cluster ? "!" + channel : channel
    }
}
