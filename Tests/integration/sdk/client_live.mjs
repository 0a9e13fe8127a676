// The collabhub client package against a live hub (run by test_js_sdk.py): two members over Node `ws`, the
// MessageStore (order, acks, edits, deletions, redactions), and the outbox: a chat and a durable event made
// while offline survive a "reload" (a new client on the same storage) and are stored once, also when the
// ack of an earlier send was lost and the message is resent with its id.
import assert from "node:assert/strict";
import WebSocket from "ws";
import { CollabClient, MessageStore, OUTBOX_PREFIX } from "collabhub";
import { CollabHub, memberToken } from "collabhub/server";

const { HUB, ADMIN, SECRET } = process.env;
const wsUrl = (code) => HUB.replace(/^http/, "ws") + "/ws?session=" + code;

class MemoryStorage {
  constructor() { this.map = new Map(); }
  get length() { return this.map.size; }
  key(i) { return [...this.map.keys()][i] ?? null; }
  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await sleep(20);
  }
}

const hub = new CollabHub({ url: HUB, apiKey: ADMIN });
const { code } = await hub.createSession({ title: "sdk live" });
const token = (sub, role) => memberToken({ secret: SECRET, sub, session: code, role, name: sub });

function member(sub, role, storage) {
  return new CollabClient({ session: code, name: sub, clientId: sub + "-device", token: token(sub, role), url: wsUrl(code),
    WebSocket, storage, history: 100 });
}

const annStorage = new MemoryStorage();
let ann = member("ann", "host", annStorage);
const bob = member("bob", "editor", null);
const annStore = new MessageStore({ client: ann });
const bobStore = new MessageStore({ client: bob });
const bobEvents = [];
bob.addEventListener("event", (e) => bobEvents.push(e.detail));
ann.connect(); bob.connect();
await until("both joined", () => ann.state === "open" && bob.state === "open");

// Chat, in seq order on both sides; Ann's own shows pending, then takes its seq from the ack.
const hello = ann.sendChat("hello from ann");
assert.equal(annStore.messages.at(-1).pending, true);
await until("ann's ack", () => !ann.pending.has(hello));
bob.sendChat("hello from bob");
await until("bob's chat at ann", () => annStore.messages.length === 2 && !annStore.messages.some((m) => m.pending));
const seqs = annStore.messages.map((m) => m.seq);
assert.deepEqual(annStore.messages.map((m) => m.text), ["hello from ann", "hello from bob"]);
assert.ok(seqs[0] < seqs[1]);
assert.equal(annStore.messages[0].key, hello, "one's own message keeps its key after the ack");
await until("bob sees both", () => bobStore.messages.length === 2);

// Edits, deletions and redactions reach both stores.
bob.editChat(seqs[1], "hello from bob (edited)");
await until("the edit at ann", () => annStore.get(seqs[1]).edited);
assert.equal(annStore.get(seqs[1]).text, "hello from bob (edited)");
ann.redact(seqs[1], "test");
await until("the redaction at bob", () => bobStore.get(seqs[1]).redacted);
assert.equal(bobStore.get(seqs[1]).text, undefined);
ann.deleteChat(seqs[0]);
await until("the deletion at bob", () => bobStore.get(seqs[0]).deleted);

// A send whose ack was lost: it is still in the outbox when the page goes away.
const once = ann.sendChat("exactly once");
await until("its ack", () => !ann.pending.has(once));
const outboxKey = OUTBOX_PREFIX + code + ".ann-device";
// Offline: the connection is gone; a chat and a durable event are made meanwhile.
ann.close();
const offlineChat = ann.sendChat("written offline");
const offlineEvent = ann.sendEvent("deploy", { env: "staging" }, { durable: true });
assert.equal(typeof offlineEvent, "string");
await sleep(300);
assert.ok(!bobEvents.some((e) => e.id === offlineEvent), "nothing went out while offline");
// The lost ack: put the acknowledged message back, as if the page had closed before the ack came.
const saved = JSON.parse(annStorage.getItem(outboxKey));
saved.items.unshift([once, { type: "chat", kind: "text", text: "exactly once", id: once }]);
annStorage.setItem(outboxKey, JSON.stringify(saved));
assert.equal(saved.items.length, 3);

// The page reloads: a new client on the same storage and client id.
ann = member("ann", "host", annStorage);
const reloadedStore = new MessageStore({ client: ann });
assert.deepEqual(reloadedStore.pending.map((m) => m.text).sort(), ["exactly once", "written offline"]);
const acks = [];
ann.addEventListener("ack", (e) => acks.push(e.detail));
ann.connect();
await until("the outbox is acknowledged", () => ann.state === "open" && ann.pending.size === 0);
assert.equal(annStorage.getItem(outboxKey), null, "an empty outbox leaves storage");
assert.equal(acks.find((a) => a.id === once).duplicate, true, "the resend of a stored message is recognised");
await until("bob has the offline event", () => bobEvents.some((e) => e.id === offlineEvent));
await until("bob has the offline chat", () => bobStore.messages.some((m) => m.text === "written offline"));
await until("the reloaded store shows them confirmed", () => reloadedStore.pending.length === 0);

// The transcript holds each once.
const events = [];
for await (const e of hub.transcript(code)) events.push(e);
const texts = events.filter((e) => e.type === "chat").map((e) => e.text);
assert.equal(texts.filter((t) => t === "exactly once").length, 1, JSON.stringify(texts));
assert.equal(texts.filter((t) => t === "written offline").length, 1);
assert.equal(events.filter((e) => e.type === "event" && e.name === "deploy").length, 1);
assert.equal(bobEvents.filter((e) => e.id === offlineEvent).length, 1);

ann.close(); bob.close();
console.log("OK client");
