// Unit tests of collabhub.js with Node's built-in runner (`node --test`): a fake WebSocket and fake
// timers stand in for the network, and the Protocol/examples exchanges are replayed through the client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { CollabClient, Outbox, RunWatcher, applyRunEvent, backoffDelay, fragmentCredentials, inkOn, showModeBanner } from "../../Sources/Clients/js/index.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

class FakeSocket {
  static all = [];
  constructor(url, protocol) { this.url = url; this.protocol = protocol; this.sent = []; this.readyState = 0; FakeSocket.all.push(this); }
  open() { this.readyState = 1; this.onopen?.(); }
  send(s) { this.sent.push(JSON.parse(s)); }
  receive(m) { this.onmessage?.({ data: JSON.stringify(m) }); }
  close(code = 1006) { this.readyState = 3; this.onclose?.({ code }); }
  last() { return this.sent[this.sent.length - 1]; }
}

function client(extra = {}) {
  const timers = [];
  const c = new CollabClient({ session: "abcd2345", name: "Ann", clientId: "ann-1", url: "ws://hub/ws?session=ABCD2345",
    WebSocket: FakeSocket, random: () => 0.5, schedule: (fn, ms) => { timers.push({ fn, ms }); return timers.length; }, ...extra });
  return { c, timers };
}

const member = (id, name) => ({ id, name, color: "#e6194b", role: "editor", connections: 1 });

test("backoff grows exponentially with jitter and a cap", () => {
  assert.equal(backoffDelay(0, 250, 15000, () => 0.999), 249);
  assert.equal(backoffDelay(3, 250, 15000, () => 0.5), 1000);
  assert.equal(backoffDelay(20, 250, 15000, () => 0.5), 7500);
  for (let i = 0; i < 200; i++) assert.ok(backoffDelay(i % 10) < Math.min(15000, 250 * 2 ** (i % 10)));
});

test("join, presence and state", () => {
  const { c } = client();
  const states = [];
  c.addEventListener("state", (e) => states.push(e.detail));
  c.connect();
  const ws = FakeSocket.all.at(-1);
  assert.equal(ws.protocol, "collabhub.v1");
  ws.open();
  // A first join asks for the recent history (50 events by default), so the room is not empty.
  assert.deepEqual(ws.last(), { type: "join", name: "Ann", client_id: "ann-1", history: 50 });
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: member("a", "Ann"), members: [member("a", "Ann")], seq: 1 });
  assert.equal(c.state, "open");
  ws.receive({ type: "presence", seq: 2, ts: 1, joins: [member("b", "Bob")], leaves: [] });
  assert.deepEqual([...c.members.keys()], ["a", "b"]);
  ws.receive({ type: "typing", member: "b", state: "start" });
  assert.ok(c.typing.has("b"));
  ws.receive({ type: "presence", seq: 3, ts: 1, joins: [], leaves: [{ id: "b", reason: "left" }] });
  assert.ok(!c.members.has("b") && !c.typing.has("b"), "a member who leaves stops typing");
  assert.equal(c.seq, 3);
  assert.deepEqual(states, ["connecting", "open"]);
});

test("reconnect resumes from the last seq and resends unacknowledged chat with the same id", () => {
  const { c, timers } = client();
  c.connect();
  let ws = FakeSocket.all.at(-1);
  ws.open();
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: member("a", "Ann"), members: [member("a", "Ann")], seq: 4 });
  const acked = c.sendChat("one");
  const lost = c.sendChat("two");
  ws.receive({ type: "ack", id: acked, seq: 5, ts: 1 });
  ws.receive({ type: "chat", seq: 6, ts: 1, id: "x", kind: "text", text: "from bob", from: { id: "b", name: "Bob", color: "#000" } });
  ws.close(1006);
  assert.equal(c.state, "offline");
  assert.equal(timers.length, 1, "a reconnect is scheduled");
  const queued = c.sendChat("three");   // offline: queued, not sent
  timers[0].fn();
  ws = FakeSocket.all.at(-1);
  assert.equal(c.state, "resuming");
  ws.open();
  assert.deepEqual(ws.last(), { type: "join", name: "Ann", client_id: "ann-1", resume_from: 6 });
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: member("a", "Ann"), members: [member("a", "Ann")], seq: 8 });
  const resent = ws.sent.filter((m) => m.type === "chat").map((m) => [m.id, m.text]);
  assert.deepEqual(resent, [[lost, "two"], [queued, "three"]]);
  assert.ok(!resent.some(([id]) => id === acked));
});

test("final close codes do not reconnect", () => {
  for (const code of [4001, 4003, 4004, 4005, 4006, 4404, 1002]) {
    const { c, timers } = client();
    c.connect(); FakeSocket.all.at(-1).open(); FakeSocket.all.at(-1).close(code);
    assert.equal(c.state, "closed"); assert.equal(timers.length, 0);
  }
});

test("cursor updates are throttled to one per frame, the latest wins", () => {
  const { c, timers } = client();
  c.connect(); const ws = FakeSocket.all.at(-1); ws.open();
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: member("a", "Ann"), members: [], seq: 1 });
  for (let x = 0; x < 10; x++) c.sendCursor(x, 2 * x);
  assert.equal(ws.sent.filter((m) => m.type === "cursor").length, 0);
  timers.at(-1).fn();
  assert.deepEqual(ws.sent.filter((m) => m.type === "cursor"), [{ type: "cursor", x: 9, y: 18 }]);
  ws.receive({ type: "cursors", updates: [{ id: "a", x: 1, y: 1 }, { id: "b", x: 5, y: 6 }] });
});

test("typing starts once, refreshes, and stops on send", () => {
  const { c } = client();
  c.connect(); const ws = FakeSocket.all.at(-1); ws.open();
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: member("a", "Ann"), members: [], seq: 1 });
  c.setTyping(true); c.setTyping(true); c.setTyping(true);
  assert.equal(ws.sent.filter((m) => m.type === "typing").length, 1);
  c.sendChat("done");
  assert.deepEqual(ws.sent.filter((m) => m.type === "typing").map((m) => m.state), ["start", "stop"]);
});

test("a refused join: the error, then the hub's close; no reconnect, whatever the code", () => {
  for (const [error, code] of [["unknown_session", 4404], ["session_full", 4006], ["session_ended", 4004],
    ["guests_not_allowed", 4001], ["forbidden", 4003]]) {
    const { c, timers } = client();
    const seen = [];
    c.addEventListener("error", (e) => seen.push(e.detail.code));
    c.addEventListener("closed", (e) => seen.push(e.detail.code));
    c.connect(); const ws = FakeSocket.all.at(-1); ws.open();
    ws.receive({ type: "error", code: error, message: "refused", field: "session" }); ws.close(code);
    assert.deepEqual(seen, [error, code]);
    assert.equal(c.state, "closed"); assert.equal(timers.length, 0, `${code}: no reconnect`);
    assert.equal(FakeSocket.all.at(-1), ws, `${code}: no second socket`);
  }
});

test("a final close says why (closed {code}) unless the page closed it itself", () => {
  for (const code of [4001, 4003, 4005, 4006, 4404, 4008]) {
    const { c } = client();
    const seen = [];
    c.addEventListener("closed", (e) => seen.push(e.detail.code));
    c.connect(); FakeSocket.all.at(-1).open(); FakeSocket.all.at(-1).close(code);
    assert.deepEqual(seen, code === 4008 ? [] : [code]);
    assert.equal(c.closeCode, code);
  }
  // session_ended, then 4004: the page hears both.
  const { c } = client();
  const seen = [];
  c.addEventListener("ended", () => seen.push("ended"));
  c.addEventListener("closed", (e) => seen.push(e.detail.code));
  c.connect(); const ws = FakeSocket.all.at(-1); ws.open();
  ws.receive({ type: "session_ended", reason: "done" }); ws.close(4004);
  assert.deepEqual(seen, ["ended", 4004]);
  // close() by the page: no `closed` event.
  const { c: d } = client();
  const none = [];
  d.addEventListener("closed", (e) => none.push(e.detail.code));
  d.connect(); FakeSocket.all.at(-1).open(); d.close(); FakeSocket.all.at(-1).onclose?.({ code: 1000 });
  assert.deepEqual(none, []);
});

test("inkOn picks the legible text colour for a member colour", () => {
  assert.equal(inkOn("#000075"), "#fff");
  assert.equal(inkOn("#bfef45"), "#111");
  assert.equal(inkOn("#a9a9a9"), "#111");
  assert.equal(inkOn("#e6194b"), "#fff");
  assert.equal(inkOn("not a colour"), "#fff");
});

test("run watcher unsubscribes a channel and does not resubscribe it after a reconnect", () => {
  const timers = [];
  const w = new RunWatcher({ url: "ws://hub/watch", WebSocket: FakeSocket, schedule: (fn) => timers.push(fn) });
  w.connect(); let ws = FakeSocket.all.at(-1); ws.open();
  w.subscribe("dashboard:a"); w.subscribe("dashboard:b"); w.unsubscribe("dashboard:a"); w.unsubscribe("dashboard:zz");
  assert.deepEqual(ws.sent.map((m) => [m.type, m.channel]), [["subscribe", "dashboard:a"], ["subscribe", "dashboard:b"], ["unsubscribe", "dashboard:a"]]);
  ws.close(); timers.shift()();
  ws = FakeSocket.all.at(-1); ws.open();
  assert.deepEqual(ws.sent, [{ type: "subscribe", channel: "dashboard:b" }]);
});

test("run watcher resumes run channels after a reconnect", () => {
  const timers = [];
  const w = new RunWatcher({ url: "ws://hub/watch", WebSocket: FakeSocket, schedule: (fn) => timers.push(fn) });
  w.connect(); let ws = FakeSocket.all.at(-1); ws.open();
  w.subscribe("run:r1"); w.subscribe("dashboard:ci"); w.subscribe("run:r1");
  assert.deepEqual(ws.sent.map((m) => m.channel), ["run:r1", "dashboard:ci"]);
  ws.receive({ type: "run_snapshot", channel: "run:r1", seq: 3, run: { id: "r1", status: "running", seq: 3, steps: [] } });
  ws.receive({ type: "run_event", seq: 4, ts: 1, run: "r1", event: "log", line: "x" });
  ws.close(); timers.shift()();
  ws = FakeSocket.all.at(-1); ws.open();
  assert.deepEqual(ws.sent, [{ type: "subscribe", channel: "run:r1", resume_from: 4 }, { type: "subscribe", channel: "dashboard:ci" }]);
});

// Replays every Protocol/examples exchange through the client's state, materialising the patterns.
function materialise(v, saved) {
  if (typeof v === "string" && v.startsWith("$")) {
    if (v === "$int") return 12345;
    if (v === "$any") return "any";
    if (v.startsWith("$save:")) return (saved[v.slice(6)] = saved[v.slice(6)] || "m" + Object.keys(saved).length);
    return saved[v.slice(1)];
  }
  if (Array.isArray(v)) return v.map((x) => materialise(x, saved));
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, materialise(x, saved)]));
  return v;
}

for (const file of readdirSync(join(root, "Protocol", "examples")).filter((f) => f.endsWith(".json"))) {
  test(`protocol example ${file}`, () => {
    const example = JSON.parse(readFileSync(join(root, "Protocol", "examples", file), "utf8"));
    const clients = {}, saved = {};
    for (const step of example.steps) {
      if (step.connect) {
        const { c } = client({ name: step.as });
        c.connect(); FakeSocket.all.at(-1).open();
        clients[step.as] = { c, ws: FakeSocket.all.at(-1) };
      }
      const { c, ws } = clients[step.as];
      if (step.send) {
        if (step.send.type === "join") assert.equal(ws.sent[0].type, "join");   // the client joined on open
        else if (step.send.type === "chat") c.pending.set(step.send.id, step.send);
      }
      if (step.expect) {
        const m = materialise(step.expect, saved);
        if (m.type === "joined") { m.members = m.members || []; m.members = m.members.map((x) => ({ ...member(x.id || "x", x.name || "x"), ...x })); m.you = { ...member("me", "me"), ...(m.you || {}) }; m.seq = m.seq ?? 1; }
        if (m.type === "presence") { m.joins = (m.joins || []).map((x) => ({ ...member(x.id || "x", x.name || "x"), ...x })); m.leaves = m.leaves || []; }
        if (m.type === "cursors") m.updates = m.updates.map((u) => ({ x: 0, y: 0, ...u }));
        const seqBefore = c.seq;
        c.handle(m);
        if (m.type === "joined") { assert.equal(c.state, "open"); for (const x of m.members) assert.ok(c.members.has(x.id)); }
        if (m.type === "presence") { for (const j of m.joins) assert.ok(c.members.has(j.id)); for (const l of m.leaves) assert.ok(!c.members.has(l.id)); }
        if (m.type === "ack") assert.ok(!c.pending.has(m.id), "an ack clears the pending message");
        if (typeof m.seq === "number" && m.type !== "ack") assert.ok(c.seq >= Math.max(seqBefore, m.seq));
      }
    }
  });
}

test("RunWatcher carries its credential in every subscribe, never in the URL", () => {
  FakeSocket.all = [];
  // An API key goes where a token does (the subscribe), so no proxy log ever holds it.
  const k = new RunWatcher({ url: "ws://hub/watch", key: "chk_a_b", WebSocket: FakeSocket, schedule: () => 0 });
  k.subscribe("run:r0");
  k.connect();
  assert.equal(FakeSocket.all[0].url, "ws://hub/watch");
  FakeSocket.all[0].open();
  assert.deepEqual(FakeSocket.all[0].last(), { type: "subscribe", channel: "run:r0", token: "chk_a_b" });
  FakeSocket.all = [];
  const w = new RunWatcher({ url: "ws://hub/watch", token: "tok.en.sig", WebSocket: FakeSocket, schedule: () => 0 });
  w.subscribe("run:r1");
  w.connect();
  const ws = FakeSocket.all[0];
  assert.equal(ws.url, "ws://hub/watch");
  ws.open();
  assert.deepEqual(ws.last(), { type: "subscribe", channel: "run:r1", token: "tok.en.sig" });
  // After a reconnect the resume carries the token too.
  ws.receive({ type: "run_snapshot", channel: "run:r1", seq: 7, run: { id: "r1" } });
  ws.close();
  w.connect();
  FakeSocket.all[1].open();
  assert.deepEqual(FakeSocket.all[1].last(), { type: "subscribe", channel: "run:r1", resume_from: 7, token: "tok.en.sig" });
});

test("pages read credentials from the URL fragment and show the open-mode notice", async () => {
  assert.deepEqual(fragmentCredentials("#token=a.b.c&key=chk_x_y"), { token: "a.b.c", key: "chk_x_y" });
  assert.deepEqual(fragmentCredentials(""), { token: undefined, key: undefined });
  const banner = { hidden: true, textContent: "" };
  await showModeBanner(banner, async () => ({ json: async () => ({ open: true, notice: "open mode: anyone" }) }));
  assert.equal(banner.hidden, false);
  assert.equal(banner.textContent, "open mode: anyone");
  const closed = { hidden: true, textContent: "" };
  await showModeBanner(closed, async () => ({ json: async () => ({ open: false }) }));
  assert.equal(closed.hidden, true);
});

test("getToken is asked before every connect, answers token_expiring with a refresh, and a 4001 retries once", async () => {
  FakeSocket.all = [];
  let n = 0;
  const tick = () => new Promise((r) => setImmediate(r));
  const { c, timers } = client({ token: undefined, getToken: async () => `t${++n}` });
  c.connect();
  await tick();
  const first = FakeSocket.all[0];
  first.open();
  assert.equal(first.last().token, "t1");
  first.receive({ type: "joined", session: "ABCD2345", title: "T", you: member("m1", "Ann"), members: [member("m1", "Ann")], seq: 3 });
  first.receive({ type: "token_expiring", exp: 123 });
  await tick();
  assert.deepEqual(first.last(), { type: "refresh", token: "t2" });
  // Expired: a fresh token and one immediate retry, resuming from the last seq.
  first.close(4001);
  assert.equal(c.state, "offline");
  timers.shift().fn();
  await tick();
  const second = FakeSocket.all[1];
  second.open();
  assert.equal(second.last().token, "t3");
  assert.equal(second.last().resume_from, 3);
  // A second 4001 without a successful join in between is final.
  second.close(4001);
  assert.equal(c.state, "closed");
});

test("RunWatcher asks getToken before each connect", async () => {
  FakeSocket.all = [];
  let n = 0;
  const w = new RunWatcher({ url: "ws://hub/watch", getToken: async () => `w${++n}`, WebSocket: FakeSocket, schedule: () => 0 });
  w.subscribe("dashboard:acme");
  w.connect();
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  FakeSocket.all[0].open();
  assert.deepEqual(FakeSocket.all[0].last(), { type: "subscribe", channel: "dashboard:acme", token: "w1" });
});

// ---- Outbox across reloads, edits, presence, activity, reset recovery ----

/** localStorage's interface over a Map (what a page keeps across a reload). */
class FakeStorage {
  constructor() { this.map = new Map(); }
  get length() { return this.map.size; }
  key(i) { return [...this.map.keys()][i] ?? null; }
  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
}

/** Opens `c`'s socket and answers its join. */
function joinAs(c, { seq = 1, you = member("a", "Ann"), members = [member("a", "Ann")] } = {}) {
  c.connect();
  const ws = FakeSocket.all.at(-1);
  ws.open();
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you, members, seq });
  return ws;
}

test("the outbox survives a reload: the next page resends the same id after joined and forgets it on ack", () => {
  const storage = new FakeStorage();
  const first = client({ storage }).c;
  let ws = joinAs(first, { seq: 3 });
  const acked = first.sendChat("acknowledged");
  const lost = first.sendChat("sent just before the reload");
  const edit = first.editChat(2, "fixed typo");
  ws.receive({ type: "ack", id: acked, seq: 4, ts: 1 });
  assert.equal(storage.length, 1, "one outbox per session and client id");
  assert.equal(storage.key(0), "collabhub.outbox.ABCD2345.ann-1");

  // The page reloads: a new client with the same client id and storage, nothing acknowledged since.
  const second = client({ storage }).c;
  assert.deepEqual([...second.pending.keys()], [lost, edit], "loaded at construction");
  second.connect();
  ws = FakeSocket.all.at(-1);
  ws.open();
  assert.equal(ws.sent.length, 1, "nothing is sent before joined");
  assert.equal(ws.last().history, 50, "a reloaded page starts over: history, not resume_from");
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: member("a", "Ann"), members: [member("a", "Ann")], seq: 6 });
  const resent = ws.sent.slice(1);
  assert.deepEqual(resent, [
    { type: "chat", kind: "text", text: "sent just before the reload", id: lost },
    { type: "chat_edit", seq: 2, text: "fixed typo", id: edit },
  ]);
  ws.receive({ type: "ack", id: lost, seq: 5, ts: 1, duplicate: true });
  assert.deepEqual([...second.pending.keys()], [edit]);
  ws.receive({ type: "ack", id: edit, seq: 7, ts: 1 });
  assert.equal(second.pending.size, 0);
  assert.equal(storage.length, 0, "an empty outbox leaves nothing behind");
  // A third page has nothing to send.
  const third = client({ storage }).c;
  assert.equal(third.pending.size, 0);
  // Another session or client id has its own outbox.
  first.sendChat("elsewhere");
  assert.equal(client({ storage, clientId: "ann-2" }).c.pending.size, 0);
  assert.equal(client({ storage, session: "zzzz2345" }).c.pending.size, 0);
});

test("the outbox drops a message the hub refuses for good, keeps one refused for now, and skips broken storage", () => {
  const storage = new FakeStorage();
  const { c } = client({ storage });
  const ws = joinAs(c);
  const refused = c.editChat(9, "not mine");
  const limited = c.sendChat("too fast");
  ws.receive({ type: "error", code: "forbidden", message: "only its author may edit a message", ref: refused });
  ws.receive({ type: "error", code: "rate_limited", message: "slow down", ref: limited });
  assert.deepEqual([...c.pending.keys()], [limited]);
  // Unreadable storage, or storage that throws (privacy mode): the client still works, in memory.
  storage.setItem("collabhub.outbox.ABCD2345.ann-9", "{not json");
  assert.equal(client({ storage, clientId: "ann-9" }).c.pending.size, 0);
  const throwing = { getItem() { throw new Error("denied"); }, setItem() { throw new Error("quota"); }, removeItem() {} };
  const { c: d } = client({ storage: throwing });
  joinAs(d);
  d.sendChat("still works");
  assert.equal(d.pending.size, 1);
  // Outboxes untouched for a week (a tab closed with unsent messages) are pruned.
  const old = new FakeStorage();
  old.setItem("collabhub.outbox.OLD.x", JSON.stringify({ saved: Date.now() - 8 * 24 * 3600e3, items: [["i", { type: "chat" }]] }));
  old.setItem("collabhub.outbox.NEW.x", JSON.stringify({ saved: Date.now(), items: [["j", { type: "chat" }]] }));
  old.setItem("unrelated", "kept");
  Outbox.prune(old);
  assert.deepEqual([...old.map.keys()], ["collabhub.outbox.NEW.x", "unrelated"]);
});

test("the resume secret from joined is kept beside the client id and sent on every later join", () => {
  const storage = new FakeStorage();
  const { c, timers } = client({ storage });
  c.connect();
  let ws = FakeSocket.all.at(-1);
  ws.open();
  assert.equal(ws.last().resume_secret, undefined, "a first join has none: the hub makes one up");
  const secret = "Zm9vYmFyYmF6cXV4MTIz";
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: member("a", "Ann"), members: [member("a", "Ann")], seq: 2, resume_secret: secret });
  assert.equal(c.resumeSecret, secret);
  assert.equal(JSON.parse(storage.getItem("collabhub.secret.ann-1")).secret, secret, "kept under the client id");
  // A reconnect sends it (the same member again), and a later joined without one keeps it.
  ws.close(1006);
  timers[0].fn();
  ws = FakeSocket.all.at(-1);
  ws.open();
  assert.deepEqual(ws.last(), { type: "join", name: "Ann", client_id: "ann-1", resume_secret: secret, resume_from: 2 });
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: member("a", "Ann"), members: [member("a", "Ann")], seq: 2 });
  assert.equal(c.resumeSecret, secret);
  // A reload (a new client, the same client id and storage) sends it on its first join, in any session.
  for (const session of ["abcd2345", "zzzz2345"]) {
    const { c: again } = client({ storage, session });
    again.connect();
    FakeSocket.all.at(-1).open();
    assert.equal(FakeSocket.all.at(-1).last().resume_secret, secret);
  }
  // Another client id has none of its own yet; a client id made up by the client keeps nothing.
  assert.equal(client({ storage, clientId: "ann-2" }).c.resumeSecret, null);
  const { c: made } = client({ storage, clientId: undefined });
  joinAs(made).receive({ type: "joined", session: "ABCD2345", title: "t", you: member("a", "Ann"), members: [], seq: 1, resume_secret: "bWFkZS11cC1pZC1zZWNyZXQ" });
  assert.equal(made.resumeSecret, "bWFkZS11cC1pZC1zZWNyZXQ");
  assert.deepEqual([...storage.map.keys()].filter((k) => k.startsWith("collabhub.secret.")), ["collabhub.secret.ann-1"]);
  // `secretStorage` keeps it elsewhere (the page keeps it where it keeps the client id); `resumeSecret` passes one in.
  const tab = new FakeStorage();
  const { c: paged } = client({ storage: null, secretStorage: tab, clientId: "tab-1" });
  joinAs(paged).receive({ type: "joined", session: "ABCD2345", title: "t", you: member("a", "Ann"), members: [], seq: 1, resume_secret: secret });
  assert.equal(JSON.parse(tab.getItem("collabhub.secret.tab-1")).secret, secret);
  assert.equal(client({ storage: null, secretStorage: tab, clientId: "tab-1" }).c.resumeSecret, secret);
  assert.equal(client({ storage: null, resumeSecret: "given-secret-0123456" }).c.resumeSecret, "given-secret-0123456");
  // Not one the hub would accept (a broken store, a bad option): none, so the hub makes a new one.
  storage.setItem("collabhub.secret.ann-3", JSON.stringify({ saved: Date.now(), secret: "bad/secret" }));
  assert.equal(client({ storage, clientId: "ann-3" }).c.resumeSecret, null);
  storage.setItem("collabhub.secret.ann-4", "{not json");
  assert.equal(client({ storage, clientId: "ann-4", resumeSecret: "short" }).c.resumeSecret, null);
  // With a token the token names the person: no secret is sent.
  const { c: member2 } = client({ storage, token: "member.jwt.token" });
  member2.connect();
  FakeSocket.all.at(-1).open();
  assert.equal(FakeSocket.all.at(-1).last().resume_secret, undefined);
  assert.equal(FakeSocket.all.at(-1).last().token, "member.jwt.token");
  // Secrets not used for 30 days are pruned when a client is made.
  const old = new FakeStorage();
  old.setItem("collabhub.secret.gone", JSON.stringify({ saved: Date.now() - 31 * 24 * 3600e3, secret }));
  old.setItem("collabhub.secret.kept", JSON.stringify({ saved: Date.now() - 3 * 24 * 3600e3, secret }));
  client({ storage: old, clientId: "other" });
  assert.deepEqual([...old.map.keys()], ["collabhub.secret.kept"]);
});

test("edit, delete, redact and presence are sent as the protocol says, and the changes are emitted", () => {
  const { c } = client({ storage: null });
  const ws = joinAs(c, { seq: 10 });
  const e = c.editChat(4, "better words");
  const d = c.deleteChat(5);
  const r = c.redact(6, "personal data");
  const r2 = c.redact(7);
  assert.deepEqual(ws.sent.slice(1), [
    { type: "chat_edit", seq: 4, text: "better words", id: e },
    { type: "chat_delete", seq: 5, id: d },
    { type: "redact", seq: 6, reason: "personal data", id: r },
    { type: "redact", seq: 7, id: r2 },
  ]);
  assert.equal(new Set([e, d, r, r2]).size, 4, "each change has an id of its own");
  assert.equal(c.pending.size, 4, "each waits for its ack");

  const seen = [];
  for (const t of ["chat", "chat_edit", "chat_delete", "redact"]) c.addEventListener(t, (ev) => seen.push([t, ev.detail.target ?? ev.detail.seq]));
  const from = { id: "a", name: "Ann", color: "#e6194b" };
  ws.receive({ type: "chat_edit", seq: 11, ts: 1, id: e, from, target: 4, text: "better words" });
  ws.receive({ type: "chat_delete", seq: 12, ts: 1, id: d, from, target: 5 });
  ws.receive({ type: "redact", seq: 13, ts: 1, id: r, from, target: 6, reason: "personal data" });
  ws.receive({ type: "chat", seq: 6, id: "c6", from, kind: "text", redacted: true });
  assert.deepEqual(seen, [["chat_edit", 4], ["chat_delete", 5], ["redact", 6], ["chat", 6]]);
  assert.equal(c.seq, 13);

  // Presence: sent only on change; undefined keeps a field, null clears the location.
  const presence = () => ws.sent.filter((m) => m.type === "presence").map((m) => m.state);
  c.setPresence("active");
  assert.deepEqual(presence(), [], "the hub already has active");
  c.setPresence("idle", { label: "viewing chat" });
  c.setPresence("idle", { label: "viewing chat" });
  c.setPresence(undefined, { label: "viewing the board" });
  c.setPresence("away");
  c.setPresence("away", null);
  assert.deepEqual(presence(), [
    { status: "idle", location: { label: "viewing chat" } },
    { status: "idle", location: { label: "viewing the board" } },
    { status: "away", location: { label: "viewing the board" } },
    { status: "away" },
  ]);
  assert.throws(() => c.setPresence("stale"), /unknown status/);

  // Others' presence updates carry status and location; the member list keeps them.
  ws.receive({ type: "presence", updates: [{ ...member("b", "Bob"), status: "idle", location: { label: "viewing chat" } }] });
  assert.equal(c.members.get("b").status, "idle");
  assert.deepEqual(c.members.get("b").location, { label: "viewing chat" });
  ws.receive({ type: "presence", updates: [{ ...member("b", "Bob"), connections: 0, status: "stale" }] });
  assert.equal(c.members.get("b").status, "stale");
  assert.equal(c.members.get("b").location, undefined, "an update is the whole member: a cleared location is gone");
  ws.receive({ type: "presence", seq: 14, ts: 1, joins: [], leaves: [{ id: "b", reason: "left", name: "Bob" }] });
  assert.ok(!c.members.has("b"));
});

test("presence set while offline goes out after joined, and again after a reconnect to a hub that forgot it", () => {
  const { c, timers } = client({ storage: null });
  c.setPresence("away", { label: "viewing chat" });
  let ws = joinAs(c, { seq: 2 });
  assert.deepEqual(ws.sent.filter((m) => m.type === "presence"), [{ type: "presence", state: { status: "away", location: { label: "viewing chat" } } }]);
  // Within the grace the hub kept it: the joined `you` says so, nothing is sent.
  ws.close(1006); timers.at(-1).fn(); ws = FakeSocket.all.at(-1); ws.open();
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: { ...member("a", "Ann"), status: "away", location: { label: "viewing chat" } }, members: [], seq: 2 });
  assert.equal(ws.sent.filter((m) => m.type === "presence").length, 0);
  // After the grace the member is new (active, no location): it is told again.
  ws.close(1006); timers.at(-1).fn(); ws = FakeSocket.all.at(-1); ws.open();
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: member("a2", "Ann"), members: [], seq: 3 });
  assert.deepEqual(ws.sent.filter((m) => m.type === "presence").map((m) => m.state), [{ status: "away", location: { label: "viewing chat" } }]);
});

/** A document's event surface: listeners by type, and a visibility the test flips. */
class FakeDocument {
  constructor() { this.visibilityState = "visible"; this.listeners = new Map(); }
  addEventListener(t, fn) { if (!this.listeners.has(t)) this.listeners.set(t, new Set()); this.listeners.get(t).add(fn); }
  removeEventListener(t, fn) { this.listeners.get(t)?.delete(fn); }
  fire(t) { for (const fn of [...(this.listeners.get(t) || [])]) fn({ type: t }); }
  count() { let n = 0; for (const s of this.listeners.values()) n += s.size; return n; }
}

/** Timers on a fake clock: `advance(ms)` runs what falls due, in order. */
function fakeClock() {
  let now = 1_000_000, next = 1;
  const timers = new Map();
  return {
    now: () => now,
    schedule: (fn, ms) => { timers.set(next, { fn, at: now + ms }); return next++; },
    cancel: (h) => timers.delete(h),
    pending: () => timers.size,
    advance(ms) {
      const end = now + ms;
      for (;;) {
        const due = [...timers].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]); now = due[1].at; due[1].fn();
      }
      now = end;
    },
  };
}

test("trackActivity: idle after idleMs without input, active on input, away while hidden; stop removes it all", () => {
  const { c } = client({ storage: null });
  const ws = joinAs(c);
  const doc = new FakeDocument(), win = new FakeDocument(), clock = fakeClock();
  const states = () => ws.sent.filter((m) => m.type === "presence").map((m) => m.state.status);
  const stop = c.trackActivity({ document: doc, window: win, idleMs: 60000, schedule: clock.schedule, cancel: clock.cancel, now: clock.now });
  assert.deepEqual(states(), [], "active from the start, which the hub already has");
  clock.advance(30000);
  for (let i = 0; i < 50; i++) doc.fire("pointermove");   // input pushes idle back without a timer per event
  assert.equal(clock.pending(), 1);
  clock.advance(59000);
  assert.deepEqual(states(), [], "59 s after the last input: still active");
  clock.advance(1000);
  assert.deepEqual(states(), ["idle"]);
  doc.fire("keydown");
  assert.deepEqual(states(), ["idle", "active"]);
  doc.visibilityState = "hidden"; doc.fire("visibilitychange");
  assert.deepEqual(states(), ["idle", "active", "away"]);
  clock.advance(120000);
  assert.deepEqual(states(), ["idle", "active", "away"], "hidden stays away, not idle");
  doc.visibilityState = "visible"; doc.fire("visibilitychange");
  assert.deepEqual(states(), ["idle", "active", "away", "active"]);
  clock.advance(60000);
  assert.deepEqual(states(), ["idle", "active", "away", "active", "idle"]);
  win.fire("focus");
  assert.deepEqual(states().at(-1), "active");
  stop();
  assert.equal(doc.count() + win.count(), 0, "listeners removed");
  assert.equal(clock.pending(), 0, "timer cancelled");
  doc.fire("keydown"); clock.advance(600000);
  assert.equal(states().at(-1), "active", "nothing after stop");
  // A page that starts hidden starts away; the location is kept across status changes.
  const { c: d } = client({ storage: null });
  const ws2 = joinAs(d);
  d.setPresence(undefined, { label: "viewing the board" });
  const hiddenDoc = new FakeDocument(); hiddenDoc.visibilityState = "hidden";
  d.trackActivity({ document: hiddenDoc, schedule: clock.schedule, cancel: clock.cancel, now: clock.now });
  assert.deepEqual(ws2.last(), { type: "presence", state: { status: "away", location: { label: "viewing the board" } } });
});

/** A transcript API over `events`, recording the requests. */
function fakeTranscript(events, { status = 200 } = {}) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, headers: init.headers });
    const q = new URL(url).searchParams;
    // The hub's cursor is opaque; this fake's is "seq:N" (the client must pass it back as it came).
    const cursor = q.get("cursor");
    const after = cursor ? Number(cursor.slice(4)) : Number(q.get("after"));
    const limit = Math.min(Number(q.get("limit")), 2);   // pages of 2: following them matters
    const rest = events.filter((e) => e.seq > after);
    const page = rest.slice(0, limit);
    const next = rest.length > limit ? `seq:${page.at(-1).seq}` : null;
    return { ok: status === 200, status, json: async () => ({ session: "ABCD2345", events: page, next }) };
  };
  return { fetch, calls };
}

const settle = async () => { for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r)); };

test("reset: the transcript after the last seq is loaded page by page and emitted in order before what came live", async () => {
  const from = { id: "b", name: "Bob", color: "#3cb44b" };
  const chat = (seq, text) => ({ type: "chat", seq, ts: seq, id: "c" + seq, from, kind: "text", text });
  const transcript = [chat(5, "five"), chat(6, "six"), chat(7, "seven"),
    { type: "chat_edit", seq: 8, ts: 8, id: "e8", from, target: 6, text: "SIX" },
    { type: "presence", seq: 9, ts: 9, joins: [], leaves: [{ id: "gone", reason: "left", name: "Old" }] },
    chat(10, "ten"), chat(11, "eleven, also live")];
  const { fetch, calls } = fakeTranscript(transcript);
  const { c, timers } = client({ storage: null, token: "member.jwt.token", fetch });
  const order = [];
  for (const t of ["chat", "chat_edit", "history", "reset"]) c.addEventListener(t, (e) => order.push([t, e.detail.seq ?? e.detail.events?.length]));
  let ws = joinAs(c, { seq: 4, members: [member("a", "Ann"), member("b", "Bob")] });
  ws.close(1006); timers.at(-1).fn(); ws = FakeSocket.all.at(-1); ws.open();
  assert.equal(ws.last().resume_from, 4);
  assert.equal(ws.last().history, undefined, "a resume does not ask for history");
  // Retention deleted events 1-4 and the hub's stream cannot serve the gap: reset, then joined.
  ws.receive({ type: "reset", reason: "history_deleted", message: "deleted", seq: 10 });
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: member("a", "Ann"), members: [member("a", "Ann"), member("b", "Bob")], seq: 10 });
  ws.receive(chat(11, "eleven, also live"));   // live, newer than the gap: waits for the gap
  assert.equal(c.state, "open");
  await settle();
  assert.equal(calls[0].url, "ws://hub".replace("ws:", "http:") + "/api/sessions/ABCD2345/transcript?after=4&limit=1000");
  const where = (x) => { const q = new URL(x.url).searchParams; return q.get("cursor") ?? `after=${q.get("after")}`; };
  assert.deepEqual(calls.map(where), ["after=4", "seq:6", "seq:8"], "pages followed by their next cursor until the reset's seq");
  assert.deepEqual(calls[0].headers, { Authorization: "Bearer member.jwt.token" });
  assert.deepEqual(order, [["chat", 5], ["chat", 6], ["chat", 7], ["chat_edit", 8], ["chat", 10], ["history", 6], ["chat", 11]]);
  assert.ok(c.members.has("b"), "joins and leaves from the transcript do not undo the member list joined brought");
  assert.equal(c.seq, 11);
});

test("reset: a host key is the credential; without one, or when the load fails, reset is emitted", async () => {
  const { fetch, calls } = fakeTranscript([{ type: "chat", seq: 3, ts: 3, id: "x", from: { id: "b", name: "B", color: "#000" }, kind: "text", text: "x" }]);
  const { c: host } = client({ storage: null, hostKey: "hk-123", fetch });
  const loaded = [];
  host.addEventListener("history", (e) => loaded.push(e.detail));
  joinAs(host, { seq: 1 }).receive({ type: "reset", reason: "storage_unavailable", message: "x", seq: 3 });
  await settle();
  assert.deepEqual(calls[0].headers, { "X-Host-Key": "hk-123" });
  assert.equal(loaded.length, 1);
  assert.deepEqual({ from: loaded[0].from, to: loaded[0].to, n: loaded[0].events.length }, { from: 1, to: 3, n: 1 });

  const guest = client({ storage: null, fetch }).c;
  const resets = [];
  guest.addEventListener("reset", (e) => resets.push(e.detail));
  joinAs(guest, { seq: 1 }).receive({ type: "reset", reason: "history_deleted", message: "gone", seq: 9 });
  await settle();
  assert.equal(calls.length, 1, "a guest has no credential for the transcript API");
  assert.deepEqual(resets.map((r) => r.reason), ["history_deleted"]);
  assert.equal(guest.seq, 9);

  const failing = fakeTranscript([], { status: 401 });
  const denied = client({ storage: null, token: "t", fetch: failing.fetch }).c;
  const seen = [];
  for (const t of ["reset", "chat"]) denied.addEventListener(t, (e) => seen.push([t, e.detail.error || e.detail.seq]));
  const ws = joinAs(denied, { seq: 1 });
  ws.receive({ type: "reset", reason: "history_deleted", message: "gone", seq: 5 });
  ws.receive({ type: "chat", seq: 6, ts: 6, id: "live", from: { id: "b", name: "B", color: "#000" }, kind: "text", text: "live" });
  await settle();
  assert.deepEqual(seen, [["reset", "transcript: HTTP 401"], ["chat", 6]], "the failure is reported, then the live events go on");
});

test("a long outbox is resent at a pace the hub's chat rate accepts, again after a rate refusal, and is bounded", () => {
  const { c, timers } = client({ storage: null });
  const ids = [];
  for (let i = 0; i < 10; i++) ids.push(c.sendChat(`offline ${i}`));   // not connected: nothing sent yet
  const ws = joinAs(c, { seq: 1 });
  const chats = () => ws.sent.filter((m) => m.type === "chat").map((m) => m.id);
  assert.deepEqual(chats(), ids.slice(0, 4), "four at once");
  const pace = timers.at(-1);
  assert.equal(pace.ms, 1000);
  pace.fn();
  assert.deepEqual(chats(), ids.slice(0, 8));
  timers.at(-1).fn();
  assert.deepEqual(chats(), ids, "then the rest, a second apart");
  // The hub refused some for the rate: what is unacknowledged goes again, once, a little later.
  for (const id of ids.slice(0, 6)) ws.receive({ type: "ack", id, seq: 2, ts: 1 });
  ws.receive({ type: "error", code: "rate_limited", message: "slow down" });
  ws.receive({ type: "error", code: "rate_limited", message: "slow down" });
  const retry = timers.at(-1);
  assert.equal(retry.ms, 2000);
  assert.equal(timers.filter((t) => t.ms === 2000).length, 1, "one retry scheduled, not one per refusal");
  const before = ws.sent.length;
  retry.fn();
  assert.deepEqual(ws.sent.slice(before).map((m) => m.id), ids.slice(6));
  // Bounded: past 500 waiting messages the client refuses more.
  const { c: full } = client({ storage: null });
  for (let i = 0; i < 500; i++) full.sendChat(`m${i}`);
  assert.throws(() => full.sendChat("one too many"), /waiting for the hub/);
});

test("run state follows run_event as the hub folds it: steps, a completed run cancels running steps, progress whole", () => {
  let r = applyRunEvent(undefined, { type: "run_event", seq: 1, ts: 100, run: "r", event: "started", name: "Deploy", owner: "ci" });
  r = applyRunEvent(r, { type: "run_event", seq: 2, ts: 110, run: "r", event: "step_started", step: "build" });
  r = applyRunEvent(r, { type: "run_event", seq: 3, ts: 150, run: "r", event: "step_failed", step: "build", error: "exit 1" });
  r = applyRunEvent(r, { type: "run_event", seq: 4, ts: 160, run: "r", event: "step_started", step: "retry" });
  r = applyRunEvent(r, { type: "run_event", seq: 5, ts: 170, run: "r", event: "progress", percent: 40, message: "half" });
  r = applyRunEvent(r, { type: "run_event", seq: 6, ts: 175, run: "r", event: "progress", percent: 50 });
  for (let i = 0; i < 60; i++) r = applyRunEvent(r, { type: "run_event", seq: 7 + i, ts: 180, run: "r", event: "log", line: "l" + i });
  r = applyRunEvent(r, { type: "run_event", seq: 67, ts: 200, run: "r", event: "completed", outcome: "failed" });
  assert.deepEqual(r.steps.map((s) => [s.name, s.status, s.duration_ms, s.error]),
    [["build", "failed", 40, "exit 1"], ["retry", "cancelled", 40, undefined]]);
  assert.deepEqual(r.progress, { percent: 50 });
  assert.equal(r.message, undefined);
  assert.deepEqual([r.status, r.duration_ms, r.seq, r.log_count, r.last_logs.length, r.last_logs[0]], ["failed", 100, 67, 60, 50, "l10"]);
  assert.deepEqual([r.steps_total, r.steps_completed, r.steps_failed], [2, 0, 1]);
});

test("RunWatcher merges summaries and state by seq, and applies each run_event once", () => {
  const w = new RunWatcher({ url: "ws://hub/watch", WebSocket: FakeSocket, schedule: () => 0 });
  w.subscribe("run:r1");
  w.handle({ type: "run_snapshot", channel: "run:r1", seq: 5, run: { id: "r1", owner: "ci", status: "running", seq: 5,
    steps: [{ name: "a", status: "running", started_at: 1 }], log_count: 0, last_logs: [] } });
  // An older summary (the dashboard's, sent before the snapshot) does not undo the state.
  w.handle({ type: "dashboard", owner: "ci", runs: [{ id: "r1", owner: "ci", status: "pending", seq: 2, steps_total: 0 }] });
  assert.equal(w.runs.get("r1").status, "running");
  assert.equal(w.runs.get("r1").steps.length, 1);
  w.handle({ type: "run_event", seq: 6, ts: 9, run: "r1", event: "log", line: "x" });
  w.handle({ type: "run_event", seq: 6, ts: 9, run: "r1", event: "log", line: "x" });   // again (a resume's overlap)
  assert.equal(w.runs.get("r1").log_count, 1);
  assert.equal(w.channels.get("run:r1"), 6);
  // A newer summary wins where it speaks (status, progress) and keeps the steps and logs.
  w.handle({ type: "run_progress", run: { id: "r1", owner: "ci", status: "running", seq: 7, percent: 70, message: "most" } });
  assert.deepEqual(w.runs.get("r1").progress, { percent: 70, message: "most" });
  assert.deepEqual(w.runs.get("r1").last_logs, ["x"]);
  // A snapshot of a channel no longer followed does not bring it back.
  w.unsubscribe("run:r1");
  w.handle({ type: "run_snapshot", channel: "run:r1", seq: 8, run: { id: "r1", status: "running", seq: 8, steps: [] } });
  assert.equal(w.channels.has("run:r1"), false);
});
