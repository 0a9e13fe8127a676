// Unit tests of the MessageStore (seq order, edits, deletions, redactions, acks) and of the outbox for
// durable events (kept across offline time and reloads, resent with their ids), with a fake WebSocket.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CollabClient, MessageStore } from "../../Sources/Clients/js/index.js";

class FakeSocket {
  static all = [];
  constructor(url, protocol) { this.url = url; this.protocol = protocol; this.sent = []; this.readyState = 0; FakeSocket.all.push(this); }
  open() { this.readyState = 1; this.onopen?.(); }
  send(s) { this.sent.push(JSON.parse(s)); }
  receive(m) { this.onmessage?.({ data: JSON.stringify(m) }); }
  close(code = 1006) { this.readyState = 3; this.onclose?.({ code }); }
}

/** A Storage-like object (what localStorage offers), kept in a Map. */
class MemoryStorage {
  constructor() { this.map = new Map(); }
  get length() { return this.map.size; }
  key(i) { return [...this.map.keys()][i] ?? null; }
  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
}

const ann = { id: "a", name: "Ann", color: "#e6194b", role: "editor", connections: 1 };
const bob = { id: "b", name: "Bob", color: "#3cb44b" };
const chat = (seq, text, from = bob, extra = {}) => ({ type: "chat", seq, ts: 1000 + seq, id: "m" + seq, from, kind: "text", text, ...extra });
const texts = (store) => store.messages.map((m) => m.text ?? (m.redacted ? "<redacted>" : m.deleted ? "<deleted>" : "?"));

function client(storage, timers = []) {
  return new CollabClient({ session: "abcd2345", name: "Ann", clientId: "ann-1", url: "ws://hub/ws?session=ABCD2345",
    WebSocket: FakeSocket, storage, random: () => 0.5, schedule: (fn, ms) => { timers.push({ fn, ms }); return timers.length; } });
}

test("messages are kept in seq order, whatever order they come in, and each seq once", () => {
  const store = new MessageStore();
  store.apply(chat(3, "three"));
  store.apply(chat(1, "one"));
  store.apply(chat(2, "two"));
  store.apply(chat(2, "two again"));
  assert.deepEqual(texts(store), ["one", "two", "three"]);
  assert.deepEqual(store.messages.map((m) => m.key), ["seq:1", "seq:2", "seq:3"]);
  assert.equal(store.apply({ type: "chat", text: "no seq" }), false);
  assert.equal(store.apply(null), false);
});

test("edits, deletions and redactions apply to their target, also when they come first", () => {
  const store = new MessageStore();
  let changes = 0;
  store.addEventListener("change", () => changes++);
  store.apply(chat(1, "hello"));
  store.apply({ type: "chat_edit", seq: 2, ts: 5, target: 1, text: "hello, world" });
  assert.equal(store.get(1).text, "hello, world");
  assert.ok(store.get(1).edited);
  // A change before its message (a resume's order, or history read late) waits for it.
  store.apply({ type: "chat_delete", seq: 6, target: 4 });
  store.apply({ type: "chat_edit", seq: 5, target: 3, text: "fixed" });
  store.apply(chat(3, "typo"));
  store.apply(chat(4, "to delete"));
  assert.equal(store.get(3).text, "fixed");
  assert.ok(store.get(4).deleted && store.get(4).text === undefined);
  // After a deletion nothing changes it back; a redaction wipes what an edit put there.
  store.apply({ type: "chat_edit", seq: 7, target: 4, text: "back?" });
  assert.equal(store.get(4).text, undefined);
  store.apply({ type: "redact", seq: 8, target: 1, reason: "secret" });
  assert.ok(store.get(1).redacted && !store.get(1).edited && store.get(1).text === undefined);
  store.apply({ type: "chat_edit", seq: 9, target: 1, text: "again" });
  assert.equal(store.get(1).text, undefined);
  // A redacted message from the history is a tombstone; an edit marked redacted too.
  store.apply(chat(10, undefined, bob, { redacted: true }));
  store.apply(chat(11, "x"));
  store.apply({ type: "chat_edit", seq: 12, target: 11, redacted: true });
  assert.ok(store.get(10).redacted && store.get(11).redacted && store.get(11).text === undefined);
  assert.deepEqual(texts(store), ["<redacted>", "fixed", "<deleted>", "<redacted>", "<redacted>"]);
  assert.ok(changes >= 8);
});

test("own messages show at once as pending, take their seq from the ack or the echo, and stay one message", () => {
  const timers = [];
  const c = client(null, timers);
  const store = new MessageStore({ client: c });
  c.connect();
  const ws = FakeSocket.all.at(-1);
  ws.open();
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: ann, members: [ann], seq: 4 });
  const first = c.sendChat("first");
  const second = c.sendChat({ kind: "code", code: { source: "x = 1" } });
  assert.deepEqual(store.messages.map((m) => [m.key, m.pending, m.from?.id]), [[first, true, "a"], [second, true, "a"]]);
  ws.receive(chat(5, "from bob"));
  assert.deepEqual(texts(store), ["from bob", "first", undefined].map((t) => t ?? "?"));
  // The ack gives the seq: the message moves into seq order and keeps its key.
  ws.receive({ type: "ack", id: first, seq: 6, ts: 2000 });
  // The echo comes before the ack for the second: still one message.
  ws.receive({ type: "chat", seq: 7, ts: 2001, id: second, from: { id: "a", name: "Ann", color: "#e6194b" }, kind: "code", code: { source: "x = 1" } });
  ws.receive({ type: "ack", id: second, seq: 7, ts: 2001 });
  ws.receive({ type: "chat", seq: 6, ts: 2000, id: first, from: { id: "a", name: "Ann", color: "#e6194b" }, kind: "text", text: "first" });
  assert.deepEqual(store.messages.map((m) => [m.key, m.seq, m.pending]), [["seq:5", 5, false], [first, 6, false], [second, 7, false]]);
  assert.equal(store.pending.length, 0);
  assert.equal(store.get(6).ts, 2000);
});

test("a message refused for good is marked failed; a transient refusal keeps it pending", () => {
  const c = client(null);
  const store = new MessageStore({ client: c });
  c.connect();
  const ws = FakeSocket.all.at(-1);
  ws.open();
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: ann, members: [ann], seq: 1 });
  const a = c.sendChat("too fast");
  const b = c.sendChat("not allowed");
  ws.receive({ type: "error", code: "rate_limited", message: "slow down", ref: a });
  ws.receive({ type: "error", code: "forbidden", message: "viewers may not chat", ref: b });
  assert.equal(store.messages.find((m) => m.key === a).failed, undefined);
  assert.equal(store.messages.find((m) => m.key === b).failed, "forbidden");
  assert.ok(c.pending.has(a) && !c.pending.has(b));
});

test("a durable event sent offline waits in the outbox, survives a reload, and goes with its id on join", () => {
  const storage = new MemoryStorage();
  const c = client(storage);
  c.connect();
  let ws = FakeSocket.all.at(-1);
  ws.open();
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: ann, members: [ann], seq: 2 });
  ws.close(1006);   // offline
  const id = c.sendEvent("deploy", { env: "staging" }, { durable: true });
  const chatId = c.sendChat("while offline");
  assert.equal(typeof id, "string");
  assert.equal(ws.sent.filter((m) => m.type === "event").length, 0, "nothing goes out while offline");
  assert.equal(c.sendEvent("cursor-ish", { x: 1 }), undefined, "an ephemeral event has no id and is not kept");
  c.close();
  // The page reloads: a new client with the same storage and client id.
  const again = client(storage);
  const store = new MessageStore({ client: again });
  assert.deepEqual(store.messages.map((m) => [m.key, m.text, m.pending]), [[chatId, "while offline", true]]);
  again.connect();
  ws = FakeSocket.all.at(-1);
  ws.open();
  ws.receive({ type: "joined", session: "ABCD2345", title: "t", you: ann, members: [ann], seq: 2 });
  const resent = ws.sent.filter((m) => m.type === "event" || m.type === "chat");
  assert.deepEqual(resent.map((m) => [m.type, m.id]).sort(), [["chat", chatId], ["event", id]].sort());
  assert.deepEqual(resent.find((m) => m.type === "event"), { type: "event", name: "deploy", data: { env: "staging" }, durable: true, id });
  ws.receive({ type: "ack", id, seq: 3, ts: 1 });
  ws.receive({ type: "ack", id: chatId, seq: 4, ts: 1, duplicate: true });
  assert.equal(again.pending.size, 0);
  assert.ok(![...storage.map.keys()].some((k) => k.startsWith("collabhub.outbox.")), "the outbox is gone from storage");
});

test("a store trims the oldest messages past its limit", () => {
  const store = new MessageStore({ limit: 3 });
  for (let i = 1; i <= 5; i++) store.apply(chat(i, "m" + i));
  assert.deepEqual(texts(store), ["m3", "m4", "m5"]);
});

test("tombstones from the store are deleted messages, with who deleted them, and an edit's tombstone deletes", () => {
  const store = new MessageStore();
  store.apply(chat(1, undefined, bob, { deleted: true, deleted_by: "host" }));
  store.apply(chat(2, "mine"));
  store.apply({ type: "chat_delete", seq: 3, ts: 9, id: "d3", from: bob, target: 2 });
  store.apply(chat(4, "theirs"));
  store.apply({ type: "chat_delete", seq: 5, ts: 9, id: "d5", from: ann, target: 4 });
  // An edit read from the store after its message was deleted has no text: the message is deleted.
  store.apply(chat(6, "edited then deleted"));
  store.apply({ type: "chat_edit", seq: 7, target: 6, deleted: true });
  store.apply(chat(8, "kept"));
  store.apply({ type: "chat_edit", seq: 9, target: 8 });   // no text, no flag: nothing to apply
  assert.deepEqual(texts(store), ["<deleted>", "<deleted>", "<deleted>", "<deleted>", "kept"]);
  assert.deepEqual(store.messages.map((m) => m.deletedBy), ["host", "author", "host", undefined, undefined]);
  assert.ok(!store.get(8).edited && store.get(1).text === undefined && !store.get(1).redacted);
  // A redacted tombstone is redacted, not deleted.
  store.apply(chat(10, undefined, bob, { redacted: true, deleted: true }));
  assert.ok(store.get(10).redacted && !store.get(10).deleted);
});

test("reset rebuilds the chat from a list of events (a replay's seek), with one change, keeping own pending ones", () => {
  const store = new MessageStore();
  let changes = 0;
  store.addEventListener("change", () => changes++);
  const events = [chat(1, "one"), chat(2, "two"), { type: "presence", seq: 3, joins: [], leaves: [] },
    { type: "chat_edit", seq: 4, target: 1, text: "one!" }, { type: "chat_delete", seq: 5, target: 2 }, chat(6, "six")];
  store.addPending({ id: "own-1", kind: "text", text: "mine" }, ann);
  changes = 0;
  store.reset(events);
  assert.equal(changes, 1);
  assert.deepEqual(texts(store), ["one!", "<deleted>", "six", "mine"]);
  // Back to before seq 4: the edit and the deletion are not there yet.
  store.reset(events.filter((e) => e.seq < 4));
  assert.deepEqual(texts(store), ["one", "two", "mine"]);
  assert.ok(!store.get(1).edited && store.get(6) === undefined);
  // A change kept waiting for a message that a reset forgot does not apply to a later one of that seq.
  store.reset([{ type: "chat_edit", seq: 9, target: 7, text: "late" }]);
  store.reset([chat(7, "fresh")]);
  assert.equal(store.get(7).text, "fresh");
  assert.equal(changes, 4);
  assert.equal(store.reset(), store);
  assert.deepEqual(texts(store), ["mine"]);
});
