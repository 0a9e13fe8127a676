// collabhub/server: CollabHub for Node backends. Mints member and watcher tokens (HS256 JWTs with exactly the
// claims the hub checks), calls the HTTP API (sessions, messages, members, share links, transcripts, run events:
// batched, idempotent, retried with backoff honouring Retry-After; webhooks and API keys managed) and verifies
// webhook signatures (Standard Webhooks).
// Node 18+ only (node:crypto, fetch); no dependencies. Types in server.d.ts.
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";

/**
 * Every failure of this module: the hub's error (`code`, `message`, `field`, `status`, `retryAfter` in seconds
 * when the hub gave one) or a local one (`invalid_field` for a bad argument, `network` when the hub could not
 * be reached, `timeout`, `invalid_signature` for a webhook). `retryable`: sending the same request again later
 * may succeed (429, 502-504, `busy`, `storage_unavailable`, network errors). `token_expired` (an expired
 * credential) is told apart from `unauthorized` / `invalid_token` (a wrong one).
 */
export class CollabHubError extends Error {
  constructor(code, message, { status = 0, field, retryAfter, retryable } = {}) {
    super(message);
    this.name = "CollabHubError";
    this.code = code;
    this.status = status;
    if (field !== undefined) this.field = field;
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
    this.retryable = retryable ?? (RETRYABLE_STATUS.has(status) || RETRYABLE_CODES.has(code));
  }

  /** The credential had expired (`token_expired`): mint or fetch a fresh one. A wrong one is not "expired". */
  get expired() { return this.code === "token_expired"; }
}

const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);
const RETRYABLE_CODES = new Set(["network", "timeout", "busy", "storage_unavailable", "rate_limited", "too_many_exports"]);
const ROLES = new Set(["host", "editor", "viewer"]);

const bad = (field, message) => new CollabHubError("invalid_field", message, { field });
const b64url = (buf) => Buffer.from(buf).toString("base64").replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
const isText = (v, max) => typeof v === "string" && v.length > 0 && [...v].length <= max;

// ---- Tokens ----

/**
 * Signs `claims` as an HS256 JWT with `secret` (a string, as given to the hub's `--jwt-secret`, or bytes)
 * and, when the hub's secret is `KID=SECRET`, its `kid`.
 */
export function signToken(claims, secret, { kid } = {}) {
  if (!(typeof secret === "string" && secret.length >= 16) && !(secret instanceof Uint8Array && secret.length >= 16)) {
    throw bad("secret", "secret must be the hub's --jwt-secret: at least 16 bytes");
  }
  if (kid !== undefined && !isText(kid, 128)) throw bad("kid", "kid must be a string of 1-128 characters");
  const header = { alg: "HS256", typ: "JWT", ...(kid ? { kid } : {}) };
  const head = b64url(JSON.stringify(header)) + "." + b64url(JSON.stringify(claims));
  return head + "." + b64url(createHmac("sha256", secret).update(head).digest());
}

/** The time claims every token needs (`exp`; `iat`, and `nbf` only when asked), checked. */
function timeClaims(options) {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const ttl = options.ttl ?? 3600;
  if (!Number.isInteger(now) || now < 0) throw bad("now", "now must be a time in seconds since the epoch");
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 366 * 86400) throw bad("ttl", "ttl must be 1 s to a year, in whole seconds");
  const out = { iat: now, exp: now + ttl };
  if (options.notBefore !== undefined) {
    if (!Number.isInteger(options.notBefore)) throw bad("notBefore", "notBefore must be seconds since the epoch");
    out.nbf = options.notBefore;
  }
  if (options.audience !== undefined) {
    if (!isText(options.audience, 256)) throw bad("audience", "audience must be the hub's --jwt-audience");
    out.aud = options.audience;
  }
  if (options.issuer !== undefined) {
    if (!isText(options.issuer, 256)) throw bad("issuer", "issuer must be the hub's --jwt-issuer");
    out.iss = options.issuer;
  }
  return out;
}

/**
 * A member token: joins `session` (a code, or `*` for any) as `sub` with `role` (`host`, `editor`,
 * `viewer`; default viewer, the hub's own default), shown as `name`.
 */
export function memberToken(options) {
  const { secret, sub, session, role = "viewer", name, kid } = options || {};
  if (!isText(sub, 128)) throw bad("sub", "sub must be a stable user id of 1-128 characters");
  if (!isText(session, 64) || !(session === "*" || /^[A-Za-z0-9]{6,32}$/.test(session))) {
    throw bad("session", "session must be a session code or *");
  }
  if (!ROLES.has(role)) throw bad("role", "role must be host, editor or viewer");
  if (name !== undefined && !isText(name, 64)) throw bad("name", "name must be 1-64 characters");
  const claims = { sub, session: session === "*" ? "*" : session.toUpperCase(), role, ...(name ? { name } : {}),
    ...timeClaims(options) };
  return signToken(claims, secret, { kid });
}

/** A watcher token for `/watch`: `channels` such as `run:r1` or `dashboard:team-a*` (1-100 of them). */
export function watcherToken(options) {
  const { secret, sub, channels, kid } = options || {};
  if (!isText(sub, 128)) throw bad("sub", "sub must be a stable id of 1-128 characters");
  if (!Array.isArray(channels) || channels.length < 1 || channels.length > 100 || !channels.every((c) => isText(c, 256))) {
    throw bad("channels", "channels must be 1-100 channel names (run:ID, dashboard:OWNER, a trailing * for a prefix)");
  }
  return signToken({ sub, channels: [...channels], ...timeClaims(options) }, secret, { kid });
}

// ---- Webhooks ----

/**
 * Checks a webhook the hub sent (Standard Webhooks): `secret` is the endpoint's `whsec_...`, `headers` the
 * request's (a plain object or a Headers; names in any case), `body` the raw body exactly as received
 * (string or bytes, never re-serialised JSON). Returns the parsed payload, or throws `CollabHubError`
 * `invalid_signature` (with `field` naming the header at fault). `tolerance`: seconds the timestamp may be
 * off (default 300: a replayed old delivery is refused).
 */
export function verifyWebhook({ secret, headers, body, tolerance = 300, now = Math.floor(Date.now() / 1000) }) {
  if (typeof secret !== "string" || !secret.startsWith("whsec_")) throw bad("secret", "secret must be the endpoint's whsec_... secret");
  const key = Buffer.from(secret.slice(6), "base64");
  if (key.length < 16) throw bad("secret", "secret must be the endpoint's whsec_... secret");
  const get = (name) => {
    if (headers && typeof headers.get === "function") return headers.get(name) ?? undefined;
    for (const [k, v] of Object.entries(headers || {})) if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
    return undefined;
  };
  const fail = (field, message) => new CollabHubError("invalid_signature", message, { field, status: 401, retryable: false });
  const id = get("webhook-id"), ts = get("webhook-timestamp"), sigs = get("webhook-signature");
  if (typeof id !== "string" || !id) throw fail("webhook-id", "no webhook-id header");
  if (typeof ts !== "string" || !/^\d{1,12}$/.test(ts)) throw fail("webhook-timestamp", "no webhook-timestamp header");
  if (Math.abs(now - Number(ts)) > tolerance) throw fail("webhook-timestamp", "webhook timestamp is outside the tolerance");
  if (typeof sigs !== "string" || !sigs) throw fail("webhook-signature", "no webhook-signature header");
  const raw = typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body ?? []);
  const expected = createHmac("sha256", key).update(`${id}.${ts}.`).update(raw).digest();
  const ok = sigs.split(" ").some((s) => {
    const [version, sig] = s.split(",", 2);
    if (version !== "v1" || !sig) return false;
    const given = Buffer.from(sig, "base64");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!ok) throw fail("webhook-signature", "webhook signature does not match");
  try { return JSON.parse(raw.toString("utf8")); } catch { throw fail("body", "webhook body is not JSON"); }
}

// ---- The HTTP API ----

/** Full-jitter exponential backoff: attempt n waits up to min(cap, base * 2^n) ms. */
const backoff = (attempt, base, cap, random) => Math.floor(random() * Math.min(cap, base * 2 ** attempt));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The seconds of a Retry-After header (seconds or an HTTP date), or undefined. */
function retryAfterSeconds(value, now = Date.now()) {
  if (value === null || value === undefined || value === "") return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : Math.max(0, Math.ceil((t - now) / 1000));
}

const segment = (field, v) => {
  if (!isText(v, 128)) throw bad(field, `${field} must be a string of 1-128 characters`);
  return encodeURIComponent(v);
};
const hostHeaders = (hostKey) => (hostKey ? { "X-Host-Key": hostKey } : {});
const badResponse = (message) => new CollabHubError("bad_response", message, { retryable: false });
/** The id of an API key: `chk_<id>_<secret>` gives `<id>`; an id is itself. */
export const keyIdOf = (key) => {
  const parts = typeof key === "string" ? key.split("_") : [];
  return parts.length === 3 && parts[0] === "chk" && parts[1] ? parts[1] : key;
};
// Query parameters that say where a page starts: a cursor replaces them all.
const POSITION = new Set(["cursor", "after", "before", "offset"]);

/**
 * A client of the hub's HTTP API for a backend. `url`: the hub (`http://127.0.0.1:8080`); `apiKey`: an API key
 * or the admin key (sent as `X-API-Key`), or `token` (sent as `Authorization: Bearer`). Requests that fail
 * for a reason worth retrying are retried up to `retries` times (default 4) with exponential backoff and
 * jitter (`backoffMs` 200, `maxBackoffMs` 10,000), waiting at least what `Retry-After` says; a POST is
 * retried only when it is idempotent (it carries an `Idempotency-Key`, or its events their ids).
 */
export class CollabHub {
  constructor(options) {
    const o = options || {};
    if (typeof o.url !== "string" || !/^https?:\/\/[^/]+/.test(o.url)) throw bad("url", "url must be the hub's http(s):// origin");
    this.url = o.url.replace(/\/+$/, "");
    this.apiKey = o.apiKey;
    this.token = o.token;
    this.fetch = o.fetch || globalThis.fetch;
    if (typeof this.fetch !== "function") throw bad("fetch", "no fetch: use Node 18+ or pass fetch");
    this.retries = o.retries ?? 4;
    this.backoffMs = o.backoffMs ?? 200;
    this.maxBackoffMs = o.maxBackoffMs ?? 10000;
    this.timeoutMs = o.timeoutMs ?? 30000;
    this.random = o.random || Math.random;
    this.sleep = o.sleep || sleep;
  }

  /**
   * One API call: `method`, `path` (`/api/...`), `body` (JSON), `headers`, `idempotent` (may be retried).
   * Returns the parsed JSON answer (null for an empty one); throws CollabHubError.
   */
  async request(method, path, { body, headers = {}, idempotent = method === "GET" || method === "DELETE" } = {}) {
    const h = { Accept: "application/json", ...headers };
    if (this.apiKey) h["X-API-Key"] = this.apiKey;
    else if (this.token) h.Authorization = "Bearer " + this.token;
    if (body !== undefined) h["Content-Type"] = "application/json";
    for (let attempt = 0; ; attempt++) {
      let error;
      try {
        const res = await this.fetch(this.url + path, {
          method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
          signal: typeof AbortSignal !== "undefined" && AbortSignal.timeout ? AbortSignal.timeout(this.timeoutMs) : undefined,
        });
        const text = await res.text();
        let json = null;
        try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
        if (res.ok) return json;
        const e = json && typeof json === "object" && json.error && typeof json.error === "object" ? json.error : {};
        const retryAfter = typeof e.retry_after === "number" ? e.retry_after : retryAfterSeconds(res.headers.get("retry-after"));
        error = new CollabHubError(typeof e.code === "string" ? e.code : `http_${res.status}`,
          typeof e.message === "string" ? e.message : `HTTP ${res.status}`,
          { status: res.status, field: typeof e.field === "string" ? e.field : undefined, retryAfter });
        // 429 and 503 are refusals before any work: even a non-idempotent request may go again.
        if (!(idempotent || res.status === 429 || res.status === 503)) error.retryable = false;
      } catch (e) {
        if (e instanceof CollabHubError) throw e;
        const timeout = e && (e.name === "TimeoutError" || e.name === "AbortError");
        error = new CollabHubError(timeout ? "timeout" : "network", `${method} ${path}: ${e && e.message || e}`,
          { retryable: idempotent });
      }
      if (!error.retryable || attempt >= this.retries) throw error;
      const wait = Math.max(backoff(attempt, this.backoffMs, this.maxBackoffMs, this.random), (error.retryAfter ?? 0) * 1000);
      await this.sleep(wait);
    }
  }

  // Sessions

  /** Creates a session: `{title?, max_participants?, guest_policy?, events?}` -> `{code, host_key, url, ...}`. */
  createSession(options = {}) { return this.request("POST", "/api/sessions", { body: options }); }
  /** The session's settings and state. */
  getSession(code) { return this.request("GET", `/api/sessions/${segment("code", code)}`); }
  /** Changes a session's settings (`{title?, guest_policy?, events?, ...}`). */
  updateSession(code, changes, { hostKey } = {}) {
    return this.request("PATCH", `/api/sessions/${segment("code", code)}`,
      { body: changes, headers: hostKey ? { "X-Host-Key": hostKey } : {}, idempotent: true });
  }
  /** Ends a session for everyone (`reason` is shown to its members). */
  endSession(code, { reason, hostKey } = {}) {
    return this.request("POST", `/api/sessions/${segment("code", code)}/end`,
      { body: reason ? { reason } : {}, headers: hostKey ? { "X-Host-Key": hostKey } : {}, idempotent: true });
  }
  /** The sessions, a page at a time (follows `next`, the paging contract's cursor). */
  sessions({ limit } = {}) { return this._pages("/api/sessions", "sessions", { limit }); }
  /** Members present now. */
  members(code) { return this.request("GET", `/api/sessions/${segment("code", code)}/members`); }
  /** Removes a member from a session. */
  removeMember(code, memberId) {
    return this.request("DELETE", `/api/sessions/${segment("code", code)}/members/${segment("member", memberId)}`);
  }

  /**
   * Posts into a session without joining it: `{kind: "system", text}` or `{type: "event", name, data, durable?}`.
   * Answered once committed (`{seq, ts, duplicate?}`). `idempotencyKey` (made up when not given for a durable
   * message) makes a retry safe: the hub stores it once.
   */
  postMessage(code, message, { idempotencyKey } = {}) {
    if (!message || typeof message !== "object") throw bad("message", "message must be an object");
    const key = idempotencyKey ?? randomUUID();
    if (!isText(key, 128)) throw bad("idempotencyKey", "idempotencyKey must be 1-128 printable characters");
    return this.request("POST", `/api/sessions/${segment("code", code)}/messages`,
      { body: message, headers: { "Idempotency-Key": key }, idempotent: true });
  }

  /**
   * A read-only playback link of the session: `{id, url, token, expires_at}` (`ttl_s`: 60 s to 30 days, default 7
   * days). It replays the session and reads its transcript, and joins nothing.
   */
  share(code, options = {}, { hostKey } = {}) {
    return this.request("POST", `/api/sessions/${segment("code", code)}/share`,
      { body: options, headers: hostHeaders(hostKey) });
  }
  /** Revokes a share link by its `id`: refused at once, on every node, for good. */
  revokeShare(code, shareId, { hostKey } = {}) {
    return this.request("DELETE", `/api/sessions/${segment("code", code)}/share/${segment("shareId", shareId)}`,
      { headers: hostHeaders(hostKey) });
  }

  /**
   * The session's transcript, event by event, from after seq `after` (default 0): an async iterator reading a
   * page at a time (`limit` events, default 500), following `next`.
   */
  async *transcript(code, { after = 0, limit = 500 } = {}) {
    if (!Number.isInteger(after) || after < 0) throw bad("after", "after must be a seq (an integer >= 0)");
    const path = `/api/sessions/${segment("code", code)}/transcript`;
    yield* this._pages(path, "events", { limit, after: after || undefined });
  }

  /**
   * Follows a list route's pages (the paging contract): `limit` and the first request's filters in, the route's
   * array and `next` out; `cursor: next` asks for the following page, until `next` is null. The fields of hubs
   * from before the contract (`next_after`, `has_more`, ...) are not read: an answer without `next` is a
   * `bad_response`.
   */
  async *_pages(path, field, { limit, ...filters } = {}) {
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 1000)) throw bad("limit", "limit must be 1-1000");
    const kept = Object.entries(filters).filter(([k, v]) => v !== undefined && !POSITION.has(k));
    let query = [...(limit ? [["limit", limit]] : []), ...Object.entries(filters).filter(([, v]) => v !== undefined)];
    let cursor;
    for (;;) {
      const qs = new URLSearchParams(query.map(([k, v]) => [k, String(v)])).toString();
      const page = await this.request("GET", path + (qs ? "?" + qs : ""));
      if (!page || typeof page !== "object" || !Array.isArray(page[field])) throw badResponse(`a list answer without its "${field}" array`);
      for (const item of page[field]) yield item;
      if (page.next === null) return;
      if (typeof page.next !== "string" || !page.next) throw badResponse('a list answer without "next" (a hub older than this package?)');
      if (page.next === cursor) throw new CollabHubError("paging_stalled", "the hub answered the same cursor twice", { retryable: false });
      cursor = page.next;
      query = [...(limit ? [["limit", limit]] : []), ...kept, ["cursor", cursor]];
    }
  }

  // Runs

  /**
   * Publishes run events now, in one request (`events`: 1-1000 of `{type, ...}`); each event gets an `id`
   * when it has none, so a retry is stored once. Returns `{run, events: [{seq, duplicate?}]}`.
   */
  publishRunEvents(runId, events) {
    if (!Array.isArray(events) || events.length < 1 || events.length > 1000) throw bad("events", "events must be 1-1000 run events");
    const list = events.map((e, i) => {
      if (!e || typeof e !== "object" || typeof e.type !== "string") throw bad(`events[${i}].type`, "each event needs a type");
      return e.id === undefined ? { ...e, id: randomUUID() } : e;
    });
    return this.request("POST", `/api/runs/${segment("run", runId)}/events`, { body: { events: list }, idempotent: true });
  }

  /** A run's state and events. */
  getRun(runId) { return this.request("GET", `/api/runs/${segment("run", runId)}`); }
  /** Run summaries, newest first, a page at a time; `owner` and `status` filter. */
  runs({ owner, status, limit } = {}) { return this._pages("/api/runs", "runs", { limit, owner, status }); }

  /** The activity log (scope activity:read), newest first, a page at a time; `session`, `actor`, `since` filter. */
  activity({ session, actor, since, limit } = {}) {
    if (since !== undefined && (!Number.isInteger(since) || since < 0)) throw bad("since", "since must be a time in milliseconds since the epoch");
    return this._pages("/api/activity", "activity", { limit, session, actor, since });
  }

  // Webhooks (scope webhooks:admin)

  /**
   * Registers an endpoint: `{url, events?, description?, headers?, timeout_s?, max_attempts?}`. The answer holds
   * its `secret` (`whsec_...`, shown this once): give it to `verifyWebhook` in the receiver.
   */
  createWebhook(fields) {
    if (!fields || typeof fields !== "object" || typeof fields.url !== "string") throw bad("url", "a webhook needs a url");
    return this.request("POST", "/api/webhooks", { body: fields });
  }
  /** The endpoints, a page at a time. */
  webhooks({ limit } = {}) { return this._pages("/api/webhooks", "webhooks", { limit }); }
  /** One endpoint (with `pending`: deliveries waiting); never its secret. */
  getWebhook(id) { return this.request("GET", `/api/webhooks/${segment("id", id)}`); }
  /** Changes an endpoint (`{url?, events?, description?, headers?, timeout_s?, max_attempts?, active?}`). */
  updateWebhook(id, changes) {
    if (!changes || typeof changes !== "object") throw bad("changes", "changes must be an object");
    return this.request("PATCH", `/api/webhooks/${segment("id", id)}`, { body: changes, idempotent: true });
  }
  /** Deletes an endpoint (its pending deliveries with it). */
  deleteWebhook(id) { return this.request("DELETE", `/api/webhooks/${segment("id", id)}`); }
  /** A new secret, in the answer; the old one keeps signing beside it for a day. */
  rotateWebhookSecret(id) { return this.request("POST", `/api/webhooks/${segment("id", id)}/rotate-secret`); }
  /** Queues a `webhook.test` delivery to the endpoint. */
  testWebhook(id) { return this.request("POST", `/api/webhooks/${segment("id", id)}/test`); }
  /** The endpoint's deliveries, newest first, a page at a time; `status`: pending, delivered or failed. */
  webhookDeliveries(id, { status, limit } = {}) {
    if (status !== undefined && !["pending", "delivered", "failed"].includes(status)) {
      throw bad("status", "status must be pending, delivered or failed");
    }
    return this._pages(`/api/webhooks/${segment("id", id)}/deliveries`, "deliveries", { limit, status });
  }
  /** Sends a delivery again now (a failed one too). */
  retryDelivery(id, deliveryId) {
    if (!Number.isInteger(deliveryId) || deliveryId < 0) throw bad("deliveryId", "deliveryId must be a delivery's id (an integer)");
    return this.request("POST", `/api/webhooks/${segment("id", id)}/deliveries/${deliveryId}/retry`, { idempotent: true });
  }

  // API keys (scope keys:admin)

  /**
   * Makes an API key: `{name, scopes, runs?, owners?, per_minute?, per_hour?, per_month?}`. The answer's `key`
   * (`chk_...`) is shown this once.
   */
  createKey(fields) {
    if (!fields || typeof fields !== "object" || !Array.isArray(fields.scopes)) throw bad("scopes", "a key needs scopes (an array)");
    return this.request("POST", "/api/keys", { body: fields });
  }
  /** The keys (never their secrets), a page at a time. */
  keys({ limit } = {}) { return this._pages("/api/keys", "keys", { limit }); }
  /** Revokes a key (its id, or the whole `chk_...` key): refused from then on. */
  revokeKey(idOrKey) { return this.request("DELETE", `/api/keys/${segment("id", keyIdOf(idOrKey))}`); }
  /** Requests counted this minute, hour and month (404 `unknown_key` for an id no key has). */
  keyUsage(idOrKey) { return this.request("GET", `/api/keys/${segment("id", keyIdOf(idOrKey))}/usage`); }

  /**
   * A batching publisher: `publish(runId, event)` returns a promise of that event's `{seq, duplicate?}`; events
   * are sent per run in order, in batches of at most `maxBatch` (100), at most `flushMs` (50 ms) after the
   * first of a batch, one request in flight per run. `flush()` sends what waits and resolves when all is
   * answered; `close()` flushes and stops.
   */
  publisher(options = {}) { return new RunPublisher(this, options); }
}

export class RunPublisher {
  constructor(hub, { maxBatch = 100, flushMs = 50 } = {}) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 1000) throw bad("maxBatch", "maxBatch must be 1-1000");
    this.hub = hub;
    this.maxBatch = maxBatch;
    this.flushMs = flushMs;
    this._runs = new Map();   // run id -> {queue: [{event, resolve, reject}], timer, sending: Promise|null}
    this._closed = false;
  }

  publish(runId, event) {
    if (this._closed) return Promise.reject(new CollabHubError("closed", "publisher closed", { retryable: false }));
    segment("run", runId);
    if (!event || typeof event !== "object" || typeof event.type !== "string") {
      return Promise.reject(bad("type", "a run event needs a type"));
    }
    let run = this._runs.get(runId);
    if (!run) { run = { queue: [], timer: null, sending: null }; this._runs.set(runId, run); }
    return new Promise((resolve, reject) => {
      run.queue.push({ event: event.id === undefined ? { ...event, id: randomUUID() } : event, resolve, reject });
      if (run.queue.length >= this.maxBatch) this._send(runId);
      else if (!run.timer) run.timer = setTimeout(() => this._send(runId), this.flushMs);
    });
  }

  _send(runId) {
    const run = this._runs.get(runId);
    if (!run) return;
    if (run.timer) { clearTimeout(run.timer); run.timer = null; }
    if (run.sending || !run.queue.length) return;
    const batch = run.queue.splice(0, this.maxBatch);
    run.sending = this.hub.publishRunEvents(runId, batch.map((b) => b.event)).then((answer) => {
      const results = answer && Array.isArray(answer.events) ? answer.events : [];
      batch.forEach((b, i) => b.resolve(results[i] || {}));
    }, (error) => { for (const b of batch) b.reject(error); }).finally(() => {
      run.sending = null;
      if (run.queue.length) this._send(runId);
      else if (!run.timer) this._runs.delete(runId);
    });
  }

  /** Sends everything waiting; resolves when every batch so far is answered. */
  async flush() {
    for (;;) {
      const busy = [...this._runs.entries()].filter(([, r]) => r.sending || r.queue.length);
      if (!busy.length) return;
      for (const [id, r] of busy) if (!r.sending) this._send(id);
      await Promise.allSettled(busy.map(([, r]) => r.sending).filter(Boolean));
    }
  }

  async close() { await this.flush(); this._closed = true; }
}
