// Unit tests of collabhub.js with Node's built-in runner (`node --test`): a fake WebSocket and fake
// timers stand in for the network, and the Protocol/examples exchanges are replayed through the client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { CollabClient, RunWatcher, backoffDelay, fragmentCredentials, showModeBanner } from "../../Sources/Server/Web/collabhub.js";

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
  assert.deepEqual(ws.last(), { type: "join", name: "Ann", client_id: "ann-1" });
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
  for (const code of [4001, 4003, 4004, 4005, 1002]) {
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

test("RunWatcher carries a watcher token in every subscribe and an API key on the upgrade", () => {
  FakeSocket.all = [];
  const w = new RunWatcher({ url: "ws://hub/watch", token: "tok.en.sig", key: "chk_a_b", WebSocket: FakeSocket, schedule: () => 0 });
  w.subscribe("run:r1");
  w.connect();
  const ws = FakeSocket.all[0];
  assert.equal(ws.url, "ws://hub/watch?key=chk_a_b");
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
