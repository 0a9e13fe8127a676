// collabhub/server against a live hub (run by test_js_sdk.py): tokens the hub accepts (and an expired or forged
// one it refuses, told apart), sessions, backend messages with idempotency, share links, batched run publishing
// seen live by a watcher token, a lost response retried and stored once, typed errors naming the field, a real
// webhook to a local HTTP server verified (and a tampered one refused), webhook and API key management, and
// the list iterators walking three pages and more of sessions, a transcript, deliveries and the activity log.
import assert from "node:assert/strict";
import http from "node:http";
import WebSocket from "ws";
import { CollabClient, RunWatcher } from "collabhub";
import { CollabHub, CollabHubError, keyIdOf, memberToken, verifyWebhook, watcherToken } from "collabhub/server";

const { HUB, ADMIN, SECRET } = process.env;
const WS = HUB.replace(/^http/, "ws");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await sleep(25);
  }
}
async function rejects(promise, check) {
  try { await promise; } catch (e) { assert.ok(e instanceof CollabHubError, String(e)); check(e); return e; }
  throw new Error("expected a CollabHubError");
}

// Requests are counted (batching) and one answer can be lost on the way back (retries).
let requests = [];
let loseNextAnswer = false;
const countingFetch = async (url, init) => {
  requests.push(`${init.method} ${new URL(url).pathname}`);
  const res = await fetch(url, init);
  if (loseNextAnswer) { loseNextAnswer = false; await res.text(); throw new TypeError("fetch failed (answer lost)"); }
  return res;
};
const hub = new CollabHub({ url: HUB, apiKey: ADMIN, fetch: countingFetch, backoffMs: 20 });

// ---- Webhook receiver: a real HTTP server; the hub signs, we verify.
const received = [];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => { received.push({ headers: req.headers, body: Buffer.concat(chunks) }); res.writeHead(200); res.end(); });
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const hook = await hub.createWebhook({ url: `http://127.0.0.1:${server.address().port}/hook`, events: ["chat.created", "event.created"] });
assert.match(hook.secret, /^whsec_/);
assert.deepEqual(hook.events, ["chat.created", "event.created"]);

// ---- Sessions and tokens
const session = await hub.createSession({ title: "server sdk" });
assert.match(session.code, /^[A-Z0-9]+$/);
assert.equal(typeof session.host_key, "string");
const got = await hub.getSession(session.code);
assert.equal(got.title, "server sdk");

const editor = memberToken({ secret: SECRET, sub: "u-1", session: session.code, role: "editor", name: "Ann" });
const ann = new CollabClient({ session: session.code, token: editor, url: `${WS}/ws?session=${session.code}`,
  WebSocket, storage: null });
const chats = [], annEvents = [];
ann.addEventListener("chat", (e) => chats.push(e.detail));
ann.addEventListener("event", (e) => annEvents.push(e.detail));
let ended = null;
ann.addEventListener("ended", (e) => { ended = e.detail; });
ann.connect();
await until("ann joined with the minted token", () => ann.state === "open");
assert.equal(ann.you.role, "editor");
assert.equal(ann.you.name, "Ann");

// The token's session claim is checked: another session's token is refused.
const other = await hub.createSession({ title: "other" });
const wrong = new CollabClient({ session: other.code, token: editor, url: `${WS}/ws?session=${other.code}`, WebSocket, storage: null });
let refused = null;
wrong.addEventListener("error", (e) => { refused = e.detail; });
wrong.connect();
await until("a token for another session refused", () => refused || wrong.state === "closed");
wrong.close();
assert.notEqual(wrong.you?.role, "editor");

// Over HTTP an expired token and a forged one are both 401, told apart: token_expired (e.expired) and unauthorized.
const reader = (tok) => new CollabHub({ url: HUB, token: tok, retries: 0 });
const expired = memberToken({ secret: SECRET, sub: "u-1", session: session.code, role: "host", now: 1_000_000, ttl: 60 });
const forged = memberToken({ secret: "not-the-hub-secret-0123456789", sub: "u-1", session: session.code, role: "host" });
const rawCode = async (tok) => (await (await fetch(`${HUB}/api/sessions/${session.code}`,
  { headers: { Authorization: "Bearer " + tok } })).json()).error.code;
const eExpired = await rejects(reader(expired).getSession(session.code), (e) => { assert.equal(e.status, 401); assert.equal(e.retryable, false); });
const eForged = await rejects(reader(forged).getSession(session.code), (e) => { assert.equal(e.status, 401); assert.equal(e.retryable, false); });
assert.equal(eExpired.code, await rawCode(expired));
assert.equal(eForged.code, await rawCode(forged));
assert.equal(eExpired.code, "token_expired");
assert.equal(eExpired.expired, true);
assert.equal(eForged.code, "unauthorized");
assert.equal(eForged.expired, false);

// ---- Bad input: refused before the wire, or by the hub, with the field named.
assert.throws(() => memberToken({ secret: SECRET, sub: "u", session: session.code, role: "owner" }),
  (e) => e instanceof CollabHubError && e.code === "invalid_field" && e.field === "role" && !e.retryable);
assert.throws(() => memberToken({ secret: "short", sub: "u", session: session.code }), (e) => e.field === "secret");
assert.throws(() => watcherToken({ secret: SECRET, sub: "w", channels: [] }), (e) => e.field === "channels");
await rejects(hub.createSession({ max_participants: "many" }), (e) => {
  assert.equal(e.status, 400); assert.equal(e.retryable, false); assert.ok(e.code.length > 0);
});
await rejects(hub.getSession("NOSUCHCODE"), (e) => { assert.equal(e.status, 404); assert.equal(e.retryable, false); });

// ---- Backend messages: committed with a seq; the same Idempotency-Key is stored once.
const m1 = await hub.postMessage(session.code, { kind: "system", text: "Deploy 41 started" }, { idempotencyKey: "deploy-41" });
const m2 = await hub.postMessage(session.code, { kind: "system", text: "Deploy 41 started" }, { idempotencyKey: "deploy-41" });
assert.equal(m1.seq, m2.seq);
assert.equal(m2.duplicate, true);
// A lost answer: the SDK retries with the same key and gets the stored seq.
loseNextAnswer = true;
requests = [];
const m3 = await hub.postMessage(session.code, { type: "event", name: "build.done", data: { ok: true } });
assert.equal(requests.length, 2, requests.join());
assert.equal(m3.duplicate, true);
await until("ann has the system chat and one event", () => chats.some((c) => c.text === "Deploy 41 started") && annEvents.length === 1);
await sleep(200);
assert.equal(chats.filter((c) => c.text === "Deploy 41 started").length, 1);
assert.equal(annEvents.filter((e) => e.name === "build.done").length, 1);

// ---- Runs: a watcher token follows the run live; the publisher batches and keeps order.
const runId = "deploy-41";
const watch = new RunWatcher({ url: `${WS}/watch`, token: watcherToken({ secret: SECRET, sub: "dash", channels: [`run:${runId}`] }), WebSocket });
watch.connect();
watch.subscribe(`run:${runId}`);
await until("the watcher is open", () => watch.state === "open");
const publisher = hub.publisher({ maxBatch: 100, flushMs: 30 });
requests = [];
const results = await Promise.all([
  publisher.publish(runId, { type: "started", owner: "team-a", name: "Deploy 41" }),
  ...Array.from({ length: 20 }, (_, i) => publisher.publish(runId, { type: "log", line: `line ${i}` })),
  publisher.publish(runId, { type: "progress", percent: 50 }),
]);
const batches = requests.filter((r) => r === `POST /api/runs/${runId}/events`).length;
assert.ok(batches >= 1 && batches <= 2, `22 events in ${batches} requests`);
const runSeqs = results.map((r) => r.seq);
assert.deepEqual(runSeqs, [...runSeqs].sort((a, b) => a - b), "seqs follow the order of publish");
assert.equal(new Set(runSeqs).size, runSeqs.length);
// A batch whose answer is lost is sent again with the same event ids: stored once.
loseNextAnswer = true;
const last = await publisher.publish(runId, { type: "completed", outcome: "succeeded" });
await publisher.close();
assert.equal(last.duplicate, true);
const run = await hub.getRun(runId);
assert.equal(run.run.status, "succeeded");
assert.equal(run.events.filter((e) => e.event === "completed").length, 1, JSON.stringify(run.events.slice(-3)));
await until("the watcher saw it complete", () => watch.runs.get(runId)?.status === "succeeded");
const watched = watch.runs.get(runId);
assert.equal(watched.name, "Deploy 41");
assert.equal(watched.percent, 50);
assert.equal(watched.log_count, 20);
watch.close();
await rejects(publisher.publish(runId, { type: "log", line: "late" }), (e) => assert.equal(e.code, "closed"));

// ---- Transcript, a page at a time.
const events = [];
for await (const e of new CollabHub({ url: HUB, apiKey: ADMIN }).transcript(session.code, { limit: 2 })) events.push(e);
const seqs = events.map((e) => e.seq);
assert.ok(seqs.length >= 3);
assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b));

// ---- A chat makes a webhook; it verifies, and a tampered copy does not.
ann.sendChat("hook me");
const delivery = await until("the chat's webhook", () => received.find((r) => {
  try { return JSON.parse(r.body).data?.text === "hook me"; } catch { return false; }
}));
const payload = verifyWebhook({ secret: hook.secret, headers: delivery.headers, body: delivery.body });
assert.equal(payload.type, "chat.created");
assert.equal(payload.data.session, session.code);
assert.throws(() => verifyWebhook({ secret: hook.secret, headers: delivery.headers, body: delivery.body.toString().replace("hook me", "hook you") }),
  (e) => e.code === "invalid_signature" && e.field === "webhook-signature");
assert.throws(() => verifyWebhook({ secret: hook.secret, headers: delivery.headers, body: delivery.body, now: Math.floor(Date.now() / 1000) + 3600 }),
  (e) => e.code === "invalid_signature" && e.field === "webhook-timestamp");
assert.throws(() => verifyWebhook({ secret: "whsec_" + Buffer.alloc(24, 1).toString("base64"), headers: delivery.headers, body: delivery.body }),
  (e) => e.code === "invalid_signature");
assert.ok(received.every((r) => { try { verifyWebhook({ secret: hook.secret, headers: r.headers, body: r.body }); return true; } catch { return false; } }));

// ---- Share links: made, used to read the transcript, revoked (refused at once); the host key alone may too.
const link = await hub.share(session.code, { ttl_s: 600 });
assert.ok(link.url.startsWith(`/replay/${session.code}`) && link.token && link.id, JSON.stringify(link));
assert.ok(Math.abs(link.expires_at - (Date.now() / 1000 + 600)) < 60);
const viewer = new CollabHub({ url: HUB, token: link.token, retries: 0 });
const shown = [];
for await (const e of viewer.transcript(session.code)) shown.push(e.seq);
assert.ok(shown.length >= 3);
assert.deepEqual(await hub.revokeShare(session.code, link.id), { id: link.id, revoked: true });
await rejects((async () => { for await (const _ of viewer.transcript(session.code)) { /* read */ } })(),
  (e) => { assert.equal(e.status, 401); assert.equal(e.expired, false); });
const keyless = new CollabHub({ url: HUB, retries: 0 });
const byHost = await keyless.share(session.code, {}, { hostKey: session.host_key });
assert.equal((await keyless.revokeShare(session.code, byHost.id, { hostKey: session.host_key })).revoked, true);
await rejects(hub.share("ZZZZZZZZ"), (e) => { assert.equal(e.status, 404); assert.equal(e.code, "unknown_session"); });
await rejects(hub.share(session.code, { ttl_s: 5 }), (e) => { assert.equal(e.status, 400); assert.equal(e.code, "invalid_field"); });

// ---- Webhook management: list, get, update, test, deliveries (paged), retry, rotate, delete.
const listedHooks = [];
for await (const w of hub.webhooks({ limit: 1 })) listedHooks.push(w.id);
assert.ok(listedHooks.includes(hook.id));
const gotHook = await hub.getWebhook(hook.id);
assert.equal(gotHook.url, hook.url);
assert.equal(gotHook.secret, undefined);
const updated = await hub.updateWebhook(hook.id, { description: "sdk", events: ["chat.created", "event.created", "session.ended"] });
assert.equal(updated.description, "sdk");
assert.deepEqual(updated.events, ["chat.created", "event.created", "session.ended"]);
const tested = await hub.testWebhook(hook.id);
assert.equal(tested.event, "webhook.test");
await until("the test delivery", () => received.some((r) => JSON.parse(r.body).type === "webhook.test"));
const rotated = await hub.rotateWebhookSecret(hook.id);
assert.match(rotated.secret, /^whsec_/);
assert.notEqual(rotated.secret, hook.secret);
const delivered = await until("the test delivery delivered", async () => {
  for await (const d of hub.webhookDeliveries(hook.id, { status: "delivered" })) if (d.id === tested.id) return d;
  return null;
});
const retried = await hub.retryDelivery(hook.id, delivered.id);
assert.equal(retried.id, delivered.id);
await until("the retried delivery, signed with both secrets", () => received.filter((r) => JSON.parse(r.body).type === "webhook.test").length >= 2);
const again = received.filter((r) => JSON.parse(r.body).type === "webhook.test").at(-1);
for (const secret of [hook.secret, rotated.secret]) assert.equal(verifyWebhook({ secret, headers: again.headers, body: again.body }).type, "webhook.test");
await rejects(hub.getWebhook("nosuchhook"), (e) => { assert.equal(e.status, 404); assert.equal(e.code, "unknown_webhook"); });
await rejects(hub.createWebhook({ url: "ftp://example.com/" }), (e) => { assert.equal(e.status, 400); assert.equal(e.code, "invalid_field"); });
assert.throws(() => hub.webhookDeliveries(hook.id, { status: "lost" }), (e) => e.field === "status");

// ---- API keys: made (the key shown once), listed, used, counted, revoked (refused at once).
const made = await hub.createKey({ name: "js sdk", scopes: ["sessions:create", "sessions:read", "sessions:write",
  "transcripts:read", "activity:read", "webhooks:admin"], per_minute: 100000 });
assert.match(made.key, /^chk_/);
assert.equal(keyIdOf(made.key), made.id);
const listedKeys = [];
for await (const k of hub.keys({ limit: 1 })) listedKeys.push(k);
const mine = listedKeys.find((k) => k.id === made.id);
assert.ok(mine && mine.active && mine.key === undefined, JSON.stringify(mine));
assert.deepEqual(await hub.keyUsage(made.id), { id: made.id, minute: 0, hour: 0, month: 0 });
await rejects(hub.keyUsage("nosuchkey0123"), (e) => { assert.equal(e.status, 404); assert.equal(e.code, "unknown_key"); });
await rejects(hub.createKey({ name: "bad", scopes: ["root"] }), (e) => { assert.equal(e.status, 400); assert.equal(e.code, "invalid_field"); });

// ---- Every list iterator walks page after page by `next`: three pages and more of sessions, a transcript,
// deliveries and the activity log, each page one request (counted by the hub against the key that lists).
const pagerRequests = [];
const pager = new CollabHub({ url: HUB, apiKey: made.key, fetch: (url, init) => { pagerRequests.push(url); return fetch(url, init); } });
const monthOf = async () => (await hub.keyUsage(made.key)).month;
async function walk(iterator, max = Infinity) {
  const before = await monthOf(), items = [];
  for await (const item of iterator) { items.push(item); if (items.length >= max) break; }
  return { items, pages: (await monthOf()) - before };
}
const pagedCodes = [];
for (let i = 0; i < 5; i++) pagedCodes.push((await pager.createSession({ title: `paged ${i}` })).code);
const sessionsWalk = await walk(pager.sessions({ limit: 2 }));
const sessionCodes = sessionsWalk.items.map((x) => x.code);
assert.ok(pagedCodes.every((c) => sessionCodes.includes(c)));
assert.equal(new Set(sessionCodes).size, sessionCodes.length, "a session listed twice");
assert.ok(sessionsWalk.pages >= 3 && sessionsWalk.pages >= sessionCodes.length / 2, JSON.stringify(sessionsWalk.pages));
for (let i = 0; i < 7; i++) await pager.postMessage(pagedCodes[0], { kind: "system", text: `p${i}` });
const transcriptWalk = await walk(pager.transcript(pagedCodes[0], { limit: 2 }));
assert.deepEqual(transcriptWalk.items.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7]);
assert.equal(transcriptWalk.pages, 4);
const silent = await pager.createWebhook({ url: "http://127.0.0.1:9/never", events: ["session.ended"] });
const tests = [];
for (let i = 0; i < 3; i++) tests.push((await pager.testWebhook(silent.id)).id);
const deliveriesWalk = await walk(pager.webhookDeliveries(silent.id, { limit: 1 }));
assert.deepEqual(deliveriesWalk.items.map((d) => d.id).sort(), [...tests].sort());
assert.ok(deliveriesWalk.pages >= 3, String(deliveriesWalk.pages));
assert.deepEqual(await pager.deleteWebhook(silent.id), { id: silent.id, deleted: true });
const activityWalk = await walk(pager.activity({ limit: 2 }), 6);
const activityIds = activityWalk.items.map((a) => a.id);
assert.equal(activityWalk.pages, 3);
assert.deepEqual(activityIds, [...activityIds].sort((a, b) => b - a), "newest first");
assert.equal(new Set(activityIds).size, 6);
assert.ok(pagerRequests.some((u) => u.includes("cursor=")) && !pagerRequests.some((u) => /next_after|offset=/.test(u)));
assert.deepEqual(await hub.revokeKey(made.key), { id: made.id, revoked: true });
await rejects(pager.getSession(pagedCodes[0]), (e) => { assert.equal(e.status, 401); assert.equal(e.expired, false); });

// ---- Ending the session reaches its member.
await hub.endSession(session.code, { reason: "done" });
await until("ann is told the session ended", () => ended);
ann.close();
await hub.deleteWebhook(hook.id);
await rejects(hub.getWebhook(hook.id), (e) => assert.equal(e.code, "unknown_webhook"));
server.close();
console.log("OK server");
