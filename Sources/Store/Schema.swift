import CSQLite
import Foundation
import Hub

extension SQLiteStore {
    public static let schemaVersion = 11

    static func configure(_ db: Database, durability: Durability) throws {
        try db.exec("PRAGMA journal_mode=WAL")
        try db.exec("PRAGMA synchronous=\(durability == .full ? "FULL" : "NORMAL")")
        try db.exec("PRAGMA foreign_keys=ON")
        // With many live sessions every group commit touches a B-tree page per session; SQLite's default
        // 2 MB cache then re-reads pages from the kernel on every batch. Keep 64 MiB of pages, and map
        // the file so reads need no copy.
        try db.exec("PRAGMA cache_size=-65536")
        try db.exec("PRAGMA mmap_size=\(mmapLimit)")
    }

    /// Bytes of the database file SQLite may map (`PRAGMA mmap_size`) on every connection.
    static let mmapLimit = 1 << 30

    /// Schema migrations, numbered by `PRAGMA user_version`.
    static func migrate(_ db: Database) throws {
        let version = try db.scalar("PRAGMA user_version")
        if version > Int64(schemaVersion) {
            throw Database.Error(
                code: 0, message: "database schema \(version) is newer than this build (\(schemaVersion))")
        }
        if version < 1 {
            try db.exec(
                """
                BEGIN;
                CREATE TABLE sessions(code TEXT PRIMARY KEY, title TEXT NOT NULL, max_participants INTEGER NOT NULL,
                  guest_policy TEXT NOT NULL, host_key TEXT NOT NULL, created_at INTEGER NOT NULL,
                  ended_at INTEGER, end_reason TEXT);
                CREATE TABLE events(session TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
                  type TEXT NOT NULL,
                  member TEXT, client_id TEXT, body BLOB NOT NULL, PRIMARY KEY(session, seq)) WITHOUT ROWID;
                CREATE INDEX events_client ON events(session, client_id) WHERE client_id IS NOT NULL;
                PRAGMA user_version=1;
                COMMIT;
                """)
        }
        if version < 2 {
            // v2: no index on client ids. Resends are recognised from the writer's memory of each session's
            // recent ids (refilled from the table when a session is first written after a start): an index
            // would dirty one more B-tree page per session on every group commit.
            try db.exec(
                """
                BEGIN;
                DROP INDEX IF EXISTS events_client;
                PRAGMA user_version=2;
                COMMIT;
                """)
        }
        if version < 3 {
            // v3: the activity log (who did what, when, from where) and per-session options.
            try db.exec(
                """
                BEGIN;
                CREATE TABLE activity(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, actor TEXT NOT NULL,
                  action TEXT NOT NULL,
                  target TEXT, session TEXT, address TEXT, details TEXT);
                CREATE INDEX activity_session ON activity(session, id);
                CREATE INDEX activity_actor ON activity(actor, id);
                ALTER TABLE sessions ADD COLUMN options TEXT;
                PRAGMA user_version=3;
                COMMIT;
                """)
        }
        if version < 4 {
            // v4: API keys (only a SHA-256 of the secret is stored).
            try db.exec(
                """
                BEGIN;
                CREATE TABLE api_keys(id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_sha256 BLOB NOT NULL,
                  created_at INTEGER NOT NULL,
                  revoked_at INTEGER, per_minute INTEGER NOT NULL, per_hour INTEGER NOT NULL,
                    per_month INTEGER NOT NULL);
                PRAGMA user_version=4;
                COMMIT;
                """)
        }
        if version < 5 {
            // v5: sampled cursor positions for playback (`--record-cursors`), outside the seq order.
            try db.exec(
                """
                BEGIN;
                CREATE TABLE cursors(id INTEGER PRIMARY KEY, session TEXT NOT NULL, ts INTEGER NOT NULL,
                  updates BLOB NOT NULL);
                CREATE INDEX cursors_session ON cursors(session, ts);
                PRAGMA user_version=5;
                COMMIT;
                """)
        }
        if version < 6 {
            // v6: API key usage per hour and per month ("h<hour>", "m<month>"), so quotas survive restarts.
            try db.exec(
                """
                BEGIN;
                CREATE TABLE api_key_usage(key_id TEXT NOT NULL, window TEXT NOT NULL, count INTEGER NOT NULL,
                  PRIMARY KEY(key_id, window)) WITHOUT ROWID;
                PRAGMA user_version=6;
                COMMIT;
                """)
        }
        if version < 7 {
            // v7: the last seq of sessions whose events retention deleted entirely (seq continues).
            try db.exec(
                """
                BEGIN;
                CREATE TABLE seq_floor(session TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
                PRAGMA user_version=7;
                COMMIT;
                """)
        }
        if version < 8 {
            // v8: API key scopes (comma-separated; keys made before scopes existed only publish runs, as
            // they always did) and the runs a key may publish to (NULL: any).
            try db.exec(
                """
                BEGIN;
                ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'runs:publish';
                ALTER TABLE api_keys ADD COLUMN runs TEXT;
                PRAGMA user_version=8;
                COMMIT;
                """)
        }
        if version < 9 {
            // v9: webhook endpoints and their outbox (written in the transaction of the event it reports).
            try db.exec(
                """
                BEGIN;
                CREATE TABLE webhooks(id TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, description TEXT,
                  headers TEXT NOT NULL, timeout_ms INTEGER NOT NULL, max_attempts INTEGER NOT NULL,
                  secret TEXT NOT NULL, previous_secret TEXT, previous_until INTEGER, active INTEGER NOT NULL,
                  created_at INTEGER NOT NULL,
                  failing_since INTEGER, disabled_reason TEXT);
                CREATE TABLE webhook_outbox(id INTEGER PRIMARY KEY, webhook TEXT NOT NULL, message_id TEXT NOT NULL,
                  type TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL,
                  status TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt INTEGER NOT NULL, last_status INTEGER,
                  last_error TEXT, duration_ms INTEGER, created_at INTEGER NOT NULL, delivered_at INTEGER);
                CREATE INDEX webhook_outbox_pending ON webhook_outbox(status, id);
                CREATE INDEX webhook_outbox_webhook ON webhook_outbox(webhook, id);
                PRAGMA user_version=9;
                COMMIT;
                """)
        }
        if version < 10 {
            // v10: the run owners an API key may start runs for (a JSON array; NULL: any), and host keys
            // kept as their hash (`HostKey`): the plaintext keys of older rows are replaced by it, with
            // deleted content zeroed (the writer turns secure_delete on later; this runs before it).
            try db.exec("PRAGMA secure_delete=ON")
            try db.exec("BEGIN IMMEDIATE")
            do {
                try db.exec("ALTER TABLE api_keys ADD COLUMN owners TEXT")
                let plain = try db.prepare("SELECT code, host_key FROM sessions WHERE host_key NOT LIKE 'sha256:%'")
                var rows: [(String, String)] = []
                while try plain.step() { rows.append((plain.string(0) ?? "", plain.string(1) ?? "")) }
                let update = try db.prepare("UPDATE sessions SET host_key=? WHERE code=?")
                for (code, key) in rows where !key.isEmpty {
                    update.reset()
                    update.bind(1, HostKey.stored(key)); update.bind(2, code)
                    _ = try update.step()
                }
                try db.exec("PRAGMA user_version=10")
                try db.exec("COMMIT")
            } catch {
                try? db.exec("ROLLBACK")
                throw error
            }
        }
        if version < 11 {
            // v11: events in a rowid table, in the order they were stored, with a unique index on (session,
            // seq) for every read (issue 30: durable chat). Keyed by (session, seq) itself, each commit
            // rewrote a leaf page per session it touched, and a session's leaf sat in the middle of the
            // tree, so it filled and split every few events (three siblings and their parent rewritten each
            // time): ~2.2 WAL pages per event at 500 live sessions. Appended in arrival order, a commit's
            // events share the table's last leaves (split cheaply, at the tree's right edge), and only the
            // index, whose entries are a tenth of a row's size, takes a page per session: ~1.1 pages per
            // event, and about half the writer's SQLite time (`loadtest/durable_pages.py`). The price is on
            // reads by session, which now look each event up by rowid on pages it shares with other
            // sessions (~3x the time for a recent tail). Existing events are copied session by session, so an
            // older transcript stays on contiguous pages.
            // Deleted content is zeroed (secure_delete) like everything else the hub deletes.
            // A failed copy (a full disk) is rolled back here: the store stays at v10 and the next start
            // tries again.
            try db.exec("PRAGMA secure_delete=ON")
            try db.exec("BEGIN IMMEDIATE")
            do {
                try db.exec(
                    """
                    CREATE TABLE events_v11(id INTEGER PRIMARY KEY, session TEXT NOT NULL, seq INTEGER NOT NULL,
                      ts INTEGER NOT NULL, type TEXT NOT NULL, member TEXT, client_id TEXT, body BLOB NOT NULL);
                    INSERT INTO events_v11(session, seq, ts, type, member, client_id, body)
                      SELECT session, seq, ts, type, member, client_id, body FROM events ORDER BY session, seq;
                    DROP TABLE events;
                    ALTER TABLE events_v11 RENAME TO events;
                    CREATE UNIQUE INDEX events_session_seq ON events(session, seq);
                    PRAGMA user_version=11;
                    """)
                try db.exec("COMMIT")
            } catch {
                try? db.exec("ROLLBACK")
                throw error
            }
        }
    }

}
