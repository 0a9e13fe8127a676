// collabhub/server's retry policy against a real local HTTP server that answers as a busy hub would: 429 and 503
// with Retry-After (waited at least that long), errors parsed into CollabHubError, a non-idempotent POST not
// retried after a lost answer; tokens signed as HS256 with exactly the claims given.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHmac } from "node:crypto";
import { CollabHub, CollabHubError, memberToken, watcherToken, verifyWebhook } from "../../Sources/Clients/js/server.js";

async function serve(answers) {
  const seen = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      const [status, headers, payload] = answers[Math.min(seen.length - 1, answers.length - 1)];
      if (status === 0) { req.socket.destroy(); return; }
      res.writeHead(status, { "Content-Type": "application/json", ...headers });
      res.end(payload === undefined ? "" : JSON.stringify(payload));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, seen, close: () => server.close() };
}

const waits = [];
const client = (url, extra = {}) => new CollabHub({ url, apiKey: "k", random: () => 0.5, sleep: async (ms) => { waits.push(ms); }, ...extra });
const busy = (code, retryAfter) => ({ error: { code, message: "busy", ...(retryAfter ? { retry_after: retryAfter } : {}) } });

test("429 and 503 are retried after Retry-After, then the answer is returned", async () => {
  const s = await serve([[429, { "Retry-After": "3" }, busy("rate_limited")], [503, {}, busy("busy", 2)], [201, {}, { code: "ABCDEFGH" }]]);
  waits.length = 0;
  const r = await client(s.url).createSession({ title: "t" });
  assert.deepEqual(r, { code: "ABCDEFGH" });
  assert.equal(s.seen.length, 3);
  assert.ok(waits[0] >= 3000 && waits[1] >= 2000, String(waits));
  assert.equal(s.seen[0].headers["x-api-key"], "k");
  assert.equal(s.seen[0].headers["content-type"], "application/json");
  s.close();
});

test("errors carry code, status, field, retryAfter and retryable; retries stop at the limit", async () => {
  const s = await serve([[400, {}, { error: { code: "unknown_field", message: "no titel", field: "titel" } }]]);
  const e = await client(s.url).createSession({ titel: "x" }).catch((x) => x);
  assert.ok(e instanceof CollabHubError);
  assert.deepEqual([e.code, e.status, e.field, e.retryable], ["unknown_field", 400, "titel", false]);
  assert.equal(s.seen.length, 1);
  s.close();
  const t = await serve([[503, { "Retry-After": "1" }, busy("busy")]]);
  const e2 = await client(t.url, { retries: 2 }).getSession("ABCDEFGH").catch((x) => x);
  assert.deepEqual([e2.code, e2.status, e2.retryAfter, e2.retryable, t.seen.length], ["busy", 503, 1, true, 3]);
  t.close();
  const u = await serve([[401, {}, { error: { code: "token_expired", message: "expired" } }]]);
  const e3 = await client(u.url).getSession("ABCDEFGH").catch((x) => x);
  assert.deepEqual([e3.code, e3.retryable, e3.expired], ["token_expired", false, true]);
  assert.equal(e.expired, false);
  assert.equal(new CollabHubError("unauthorized", "wrong").expired, false);
  u.close();
});

test("list iterators follow next only: cursor in, filters kept, legacy fields refused, a stall stopped", async () => {
  const s = await serve([
    [200, {}, { deliveries: [{ id: 3 }], next: "c1" }],
    [200, {}, { deliveries: [{ id: 2 }], next: "c2" }],
    [200, {}, { deliveries: [{ id: 1 }], next: null }],
  ]);
  const ids = [];
  for await (const d of client(s.url).webhookDeliveries("w1", { status: "failed", limit: 1 })) ids.push(d.id);
  assert.deepEqual(ids, [3, 2, 1]);
  assert.deepEqual(s.seen.map((r) => r.url), ["/api/webhooks/w1/deliveries?limit=1&status=failed",
    "/api/webhooks/w1/deliveries?limit=1&status=failed&cursor=c1", "/api/webhooks/w1/deliveries?limit=1&status=failed&cursor=c2"]);
  s.close();
  // A transcript's `after` starts the first page only; the cursor says where the next one starts.
  const t = await serve([[200, {}, { events: [{ seq: 6 }], next: "n" }], [200, {}, { events: [], next: null }]]);
  for await (const _ of client(t.url).transcript("ABCDEFGH", { after: 5, limit: 1 })) { /* read */ }
  assert.deepEqual(t.seen.map((r) => r.url), ["/api/sessions/ABCDEFGH/transcript?limit=1&after=5",
    "/api/sessions/ABCDEFGH/transcript?limit=1&cursor=n"]);
  t.close();
  for (const legacy of [{ events: [{ seq: 1 }], next_after: 1, has_more: true }, { events: [] }, { events: [], next: 7 }]) {
    const u = await serve([[200, {}, legacy]]);
    const e = await (async () => { for await (const _ of client(u.url).transcript("ABCDEFGH")) { /* read */ } })().catch((x) => x);
    assert.ok(e instanceof CollabHubError, String(e));
    assert.deepEqual([e.code, e.retryable, u.seen.length], ["bad_response", false, 1]);
    u.close();
  }
  const v = await serve([[200, {}, { keys: [], next: "same" }]]);
  const e = await (async () => { for await (const _ of client(v.url).keys()) { /* read */ } })().catch((x) => x);
  assert.deepEqual([e.code, v.seen.length], ["paging_stalled", 2]);
  v.close();
});

test("a lost answer is retried only for idempotent requests", async () => {
  const s = await serve([[0], [201, {}, { seq: 3, ts: 1, duplicate: true }]]);
  const r = await client(s.url).postMessage("ABCDEFGH", { kind: "system", text: "x" }, { idempotencyKey: "k1" });
  assert.equal(r.seq, 3);
  assert.equal(s.seen.length, 2);
  assert.equal(s.seen[0].headers["idempotency-key"], "k1");
  assert.equal(s.seen[1].headers["idempotency-key"], "k1");
  s.close();
  const t = await serve([[0], [201, {}, { code: "X" }]]);
  const e = await client(t.url).createSession({}).catch((x) => x);
  assert.deepEqual([e.code, e.retryable, t.seen.length], ["network", false, 1]);
  t.close();
});

test("tokens are HS256 JWTs with the claims the hub checks", () => {
  const secret = "0123456789abcdef-secret";
  const tok = memberToken({ secret, sub: "u1", session: "abcdefgh", role: "host", name: "Ann", now: 1000, ttl: 60, kid: "k2" });
  const [h, p, s] = tok.split(".");
  const dec = (x) => JSON.parse(Buffer.from(x, "base64url").toString());
  assert.deepEqual(dec(h), { alg: "HS256", typ: "JWT", kid: "k2" });
  assert.deepEqual(dec(p), { sub: "u1", session: "ABCDEFGH", role: "host", name: "Ann", iat: 1000, exp: 1060 });
  assert.equal(s, createHmac("sha256", secret).update(`${h}.${p}`).digest("base64url"));
  const w = watcherToken({ secret, sub: "svc", channels: ["run:r1", "dashboard:a*"], now: 5, ttl: 10 });
  assert.deepEqual(dec(w.split(".")[1]), { sub: "svc", channels: ["run:r1", "dashboard:a*"], iat: 5, exp: 15 });
  for (const [opts, field] of [[{ sub: "" }, "sub"], [{ session: "a b" }, "session"], [{ ttl: 0 }, "ttl"], [{ secret: "short" }, "secret"]]) {
    assert.throws(() => memberToken({ secret, sub: "u", session: "ABCDEFGH", ...opts }), (e) => e.field === field);
  }
});

test("webhook signatures: Standard Webhooks v1, several signatures, headers in any case", () => {
  const key = Buffer.alloc(32, 7);
  const secret = "whsec_" + key.toString("base64");
  const body = '{"type":"chat.created","data":{}}';
  const now = 1_700_000_000;
  const sig = createHmac("sha256", key).update(`m1.${now}.${body}`).digest("base64");
  const headers = { "Webhook-Id": "m1", "Webhook-Timestamp": String(now), "Webhook-Signature": `v1,AAAA v1,${sig}` };
  assert.equal(verifyWebhook({ secret, headers, body, now }).type, "chat.created");
  assert.equal(verifyWebhook({ secret, headers: new Headers(headers), body: Buffer.from(body), now }).type, "chat.created");
  assert.throws(() => verifyWebhook({ secret, headers: { ...headers, "Webhook-Signature": `v2,${sig}` }, body, now }), (e) => e.code === "invalid_signature");
  assert.throws(() => verifyWebhook({ secret, headers: { ...headers, "Webhook-Id": "m2" }, body, now }), (e) => e.field === "webhook-signature");
  assert.throws(() => verifyWebhook({ secret, headers: {}, body, now }), (e) => e.field === "webhook-id");
  assert.throws(() => verifyWebhook({ secret: "nope", headers, body, now }), (e) => e.field === "secret");
});
