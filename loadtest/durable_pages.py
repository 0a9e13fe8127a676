#!/usr/bin/env python3
"""WAL pages and CPU per durable event for the durable chat's write pattern, by table layout (issue 30).

500 live sessions, each event to a random one, a commit every B events (the group commit's size), with the
hub's pragmas (WAL, synchronous NORMAL, no automatic checkpoint, 64 MiB cache), after 100 events per session
already stored. Compares the v10 layout (events keyed by (session, seq), WITHOUT ROWID), the v11 layout (an
arrival-ordered rowid table with a unique (session, seq) index) and an arrival-ordered table alone (the floor:
no per-session reads). Then reads a session's tail and its client ids from each layout, as the hub does.

  /usr/bin/python3 loadtest/durable_pages.py [BATCH ...]     (default 25 90 600)

CPU per event includes Python's sqlite3 module (~5 us an insert here): compare the layouts, not the hub.
"""
import os
import random
import sqlite3
import sys
import tempfile
import time

SESSIONS, EVENTS = 500, 60000
BODY = (b'{"id":"m-000123-000045","from":{"id":"u-abcdef12","name":"Member 12","color":"#3a7bd5"},'
        b'"kind":"text","text":"' + b"x" * 60 + b'"}')
COLUMNS = "session TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, type TEXT NOT NULL, member TEXT, " \
          "client_id TEXT, body BLOB NOT NULL"
LAYOUTS = {
    "v10 (session, seq) WITHOUT ROWID": [f"CREATE TABLE events({COLUMNS}, PRIMARY KEY(session, seq)) WITHOUT ROWID"],
    "v11 arrival + unique index": [f"CREATE TABLE events(id INTEGER PRIMARY KEY, {COLUMNS})",
                                   "CREATE UNIQUE INDEX events_session_seq ON events(session, seq)"],
    "arrival only (floor)": [f"CREATE TABLE events(id INTEGER PRIMARY KEY, {COLUMNS})"],
}


def run(directory, ddl, batch):
    path = os.path.join(directory, "t.sqlite")
    for f in (path, path + "-wal", path + "-shm"):
        if os.path.exists(f):
            os.remove(f)
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=0", "cache_size=-65536",
                   "mmap_size=1073741824"):
        db.execute("PRAGMA " + pragma)
    for statement in ddl:
        db.execute(statement)
    seqs, codes, rnd = [0] * SESSIONS, [f"s{i:05d}x" for i in range(SESSIONS)], random.Random(1)

    def insert(k):
        s = rnd.randrange(SESSIONS)
        seqs[s] += 1
        db.execute("INSERT INTO events(session, seq, ts, type, member, client_id, body) VALUES(?,?,?,?,?,?,?)",
                   (codes[s], seqs[s], k, "chat", f"member-key-{s:05d}-a", f"c-{k:08d}", BODY))

    db.execute("BEGIN")
    for k in range(SESSIONS * 100):
        insert(k)
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    start = time.process_time()
    for c in range(EVENTS // batch):
        db.execute("BEGIN IMMEDIATE")
        for j in range(batch):
            insert(SESSIONS * 100 + c * batch + j)
        db.execute("COMMIT")
    cpu = (time.process_time() - start) / EVENTS * 1e6
    frames = (os.path.getsize(path + "-wal") - 32) / (4096 + 24) / EVENTS
    reads = []
    for query in ("SELECT seq, ts, type, body FROM events WHERE session=? ORDER BY seq DESC LIMIT 1000",
                  "SELECT member, client_id, seq, ts FROM events WHERE session=? AND client_id IS NOT NULL "
                  "ORDER BY seq DESC LIMIT 10000"):
        start = time.perf_counter()
        for s in range(0, SESSIONS, 10):
            db.execute(query, (codes[s],)).fetchall()
        reads.append((time.perf_counter() - start) / (SESSIONS // 10) * 1e3)
    db.close()
    return frames, cpu, reads


def main():
    batches = [int(a) for a in sys.argv[1:]] or [25, 90, 600]
    with tempfile.TemporaryDirectory() as directory:
        print(f"{'batch':>5}  {'layout':<34} {'WAL pages/event':>15} {'CPU us/event':>12} {'tail ms':>8} {'ids ms':>7}")
        for batch in batches:
            for name, ddl in LAYOUTS.items():
                frames, cpu, (tail, ids) = run(directory, ddl, batch)
                print(f"{batch:>5}  {name:<34} {frames:>15.2f} {cpu:>12.1f} {tail:>8.2f} {ids:>7.2f}")


if __name__ == "__main__":
    main()
