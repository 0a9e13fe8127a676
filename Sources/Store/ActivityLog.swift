import CSQLite
import Foundation
import Hub

extension SQLiteStore: ActivityLog {
    /// Records an administrative action (committed with the next group).
    public func record(_ entry: ActivityEntry) { enqueue(.activity(entry)) }

    public func activity(_ q: ActivityQuery) throws -> [ActivityEntry] {
        try read { db in
            // Every filter is bound, whether it is set or not (`?N IS NULL OR ...`): one statement, typed binds.
            let s = try db.prepare(
                """
                SELECT id, ts, actor, action, target, session, address, details FROM activity
                WHERE (?1 IS NULL OR session = ?1) AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR ts >= ?3)
                  AND (?4 IS NULL OR id < ?4)
                ORDER BY id DESC LIMIT ?5
                """)
            s.bind(1, q.session); s.bind(2, q.actor)
            if let since = q.since { s.bind(3, since) } else { s.bind(3, nil as String?) }
            if let before = q.before { s.bind(4, before) } else { s.bind(4, nil as String?) }
            s.bind(5, q.limit)
            var out: [ActivityEntry] = []
            while try s.step() {
                var e = ActivityEntry(
                    actor: s.string(2) ?? "", action: s.string(3) ?? "", target: s.string(4),
                    session: s.string(5), address: s.string(6), details: s.string(7), ts: s.int(1))
                e.id = Int(s.int(0))
                out.append(e)
            }
            return out
        }
    }

    static func logActivity(_ db: Database, _ a: ActivityEntry) throws {
        let st = try db.prepare(
            """
            INSERT INTO activity(ts, actor, action, target, session, address, details) VALUES(?,?,?,?,?,?,?)
            """)
        st.bind(1, a.ts); st.bind(2, a.actor); st.bind(3, a.action); st.bind(4, a.target); st.bind(5, a.session)
        st.bind(6, a.address); st.bind(7, a.details)
        _ = try st.step()
    }
}
