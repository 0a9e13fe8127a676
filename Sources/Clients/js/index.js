// collabhub.js: the browser (and Node) client for CollabHub's collabhub.v1 protocol, the npm package `collabhub`
// (Sources/Clients/js; types in index.d.ts) and what the hub serves at /client.js (the one copy, compiled in).
// No dependencies, no build step: `import { CollabClient } from "/client.js"` (browser) or `from "collabhub"`.

/**
 * @typedef {"active"|"idle"|"away"|"stale"} PresenceStatus `stale`: the member's connection is gone and the
 *   reconnect grace runs (set by the hub, never sent by a client).
 * @typedef {{id: string, name: string, color: string, role: string, connections: number, status?: PresenceStatus,
 *            location?: any}} Member
 * @typedef {"idle"|"connecting"|"open"|"resuming"|"offline"|"closed"} ConnectionState
 * @typedef {{kind?: "text"|"file"|"code"|"system", text?: string, file?: object, code?: object, meta?: object}} ChatBody
 * @typedef {{getItem(key: string): string|null, setItem(key: string, value: string): void, removeItem(key: string): void}} Storage
 *   The part of the Web Storage API the outbox uses (`localStorage`, or a fake in Node).
 */

const PROTOCOL = "collabhub.v1";

const escapeHTML = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));

/** Black or white text, whichever reads better on `color` (a #rgb or #rrggbb member colour): member
 * colours range from navy to lime, and a name drawn on one must stay legible. */
export function inkOn(color) {
  let h = String(color || "").replace("#", "");
  if (h.length === 3) h = [...h].map((c) => c + c).join("");
  if (!/^[0-9a-fA-F]{6}$/.test(h)) return "#fff";
  const lin = (i) => { const c = parseInt(h.slice(i, i + 2), 16) / 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const l = 0.2126 * lin(0) + 0.7152 * lin(2) + 0.0722 * lin(4);
  return 1.05 / (l + 0.05) >= (l + 0.05) / 0.0556 ? "#fff" : "#111";   // 0.0556: #111's luminance + 0.05
}

/**
 * Draws a member's cursor on `surface` (a positioned element), or moves it there.
 * @param {HTMLElement} surface
 * @param {Map<string, HTMLElement>} cursors member id -> its cursor element, kept by the caller
 * @param {{id: string, x: number, y: number}} update a cursor update (`cursors` message)
 * @param {{name: string, color: string}} who
 */
export function placeCursor(surface, cursors, update, who) {
  let el = cursors.get(update.id);
  if (!el) {
    el = document.createElement("div"); el.className = "cursor"; el.dataset.member = update.id;
    const color = escapeHTML(who.color);
    el.innerHTML = `<svg width="16" height="16" viewBox="0 0 16 16"><path d="M1 1 L1 14 L5 10 L9 15 L11 14 L7 9 L13 9 Z" fill="${color}" stroke="#fff"/></svg><span style="background:${color};color:${inkOn(who.color)}">${escapeHTML(who.name)}</span>`;
    surface.appendChild(el); cursors.set(update.id, el);
  }
  el.style.left = update.x + "px"; el.style.top = update.y + "px";
}

/** Credentials handed to a page in its URL fragment (`#token=...&key=...`): the fragment never reaches
 * the server's logs or a Referer header. */
export function fragmentCredentials(hash = globalThis.location ? globalThis.location.hash : "") {
  const p = new URLSearchParams(String(hash).replace(/^#/, ""));
  return { token: p.get("token") || undefined, key: p.get("key") || undefined };
}

/** Shows the hub's open-mode notice in `element` when the hub has no credentials configured. */
export async function showModeBanner(element, fetchImpl = globalThis.fetch) {
  try {
    const mode = await (await fetchImpl("/api/mode")).json();
    if (mode.open) { element.textContent = mode.notice; element.hidden = false; }
  } catch { /* no banner */ }
}

/** Exponential backoff with full jitter: attempt n waits a random time up to min(cap, base * 2^n). */
export function backoffDelay(attempt, base = 250, cap = 15000, random = Math.random) {
  return Math.floor(random() * Math.min(cap, base * 2 ** attempt));
}

function defaultUrl(path) {
  if (typeof location === "undefined") throw new Error("pass url when not in a browser");
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

/** The HTTP origin of a ws(s):// URL (for the transcript API). */
function httpOrigin(wsUrl) {
  try {
    const u = new URL(wsUrl);
    return (u.protocol === "wss:" ? "https://" : "http://") + u.host;
  } catch { return ""; }
}

function randomId() {
  const c = globalThis.crypto;
  if (c && c.randomUUID) return c.randomUUID();
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

/** Key prefix of the outboxes kept in storage: `collabhub.outbox.SESSION.CLIENT_ID`. */
export const OUTBOX_PREFIX = "collabhub.outbox.";
/** Outboxes untouched for this long (a tab closed with unsent messages) are removed at construction. */
const OUTBOX_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** Key prefix of the resume secrets kept in storage: `collabhub.secret.CLIENT_ID` -> `{saved, secret}`. */
export const SECRET_PREFIX = "collabhub.secret.";
/** Resume secrets not used (joined) for this long are removed at construction. */
const SECRET_MAX_AGE_MS = 30 * 24 * 3600 * 1000;
/** What the hub accepts as a `resume_secret`. */
const SECRET_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;

/** Removes the `{saved, ...}` items under `prefix` not written for `maxAge` ms (needs `length` and `key(i)`). */
function pruneStale(storage, prefix, maxAge, now) {
  if (!storage || typeof storage.key !== "function" || typeof storage.length !== "number") return;
  try {
    const old = [];
    for (let i = 0; i < storage.length; i++) {
      const k = storage.key(i);
      if (!k || !k.startsWith(prefix)) continue;
      let saved = 0;
      try { saved = JSON.parse(storage.getItem(k)).saved || 0; } catch { /* unreadable: old */ }
      if (now - saved > maxAge) old.push(k);
    }
    for (const k of old) storage.removeItem(k);
  } catch { /* storage unavailable */ }
}

/** The resume secret kept under `key`, or null (none, unreadable, or not one the hub would accept). */
function loadSecret(storage, key) {
  if (!storage || !key) return null;
  try {
    const secret = JSON.parse(storage.getItem(key) || "null")?.secret;
    return typeof secret === "string" && SECRET_PATTERN.test(secret) ? secret : null;
  } catch { return null; }
}

function defaultStorage() {
  try { return globalThis.localStorage || null; } catch { return null; }   // access throws when storage is blocked
}

/**
 * The unacknowledged outbox: message id -> the message to (re)send (`{type, ...fields}`; a body without
 * `type` is a chat). A Map that writes itself to `storage` on every change, so what was not acknowledged
 * survives a page reload and is sent again, with the same ids, once the reloaded page has joined (the hub
 * stores each id once per sender identity: the `client_id` or the token's `sub`).
 */
export class Outbox extends Map {
  /** @param {Storage|null} storage @param {string} key */
  constructor(storage, key) {
    super();
    this.storage = storage;
    this.key = key;
    if (!storage) return;
    try {
      const saved = JSON.parse(storage.getItem(key) || "null");
      for (const [id, msg] of (saved && Array.isArray(saved.items) ? saved.items : [])) {
        if (typeof id === "string" && msg && typeof msg === "object") super.set(id, msg);
      }
    } catch { /* unreadable: start empty */ }
  }
  set(id, msg) { super.set(id, msg); this._save(); return this; }
  delete(id) { const had = super.delete(id); if (had) this._save(); return had; }
  clear() { super.clear(); this._save(); }
  _save() {
    if (!this.storage) return;
    try {
      if (this.size === 0) this.storage.removeItem(this.key);
      else this.storage.setItem(this.key, JSON.stringify({ saved: Date.now(), items: [...this] }));
    } catch { /* quota or privacy mode: the outbox still works for this page */ }
  }
  /** Removes other outboxes not written for `maxAge` ms (needs a storage with `length` and `key(i)`). */
  static prune(storage, maxAge = OUTBOX_MAX_AGE_MS, now = Date.now()) {
    pruneStale(storage, OUTBOX_PREFIX, maxAge, now);
  }
}

/** Unacknowledged messages kept at most (in memory and in storage). */
const MAX_OUTBOX = 500;
/** Error codes after which resending the same message could succeed: it stays in the outbox. */
const TRANSIENT_ERRORS = new Set(["rate_limited", "storage_unavailable", "not_ready", "not_joined"]);
/** Close codes after which a reconnect cannot help: the connection stays closed and `closed` says why. A
 * refused join (unknown session 4404, ended 4004, full 4006, a token refused 4001/4003) ends with one of them. */
export const FINAL_CLOSE_CODES = [4001, 4003, 4004, 4005, 4006, 4404, 1002, 1007, 1009];
/** The states a client may set (`stale` is the hub's). */
const PRESENCE_STATUSES = new Set(["active", "idle", "away"]);

/** The `state` of a presence message: status, and location when there is one. */
const presenceState = (status, location) => ({ status: status || "active", ...(location === undefined || location === null ? {} : { location }) });

/**
 * A member's connection to one session. Events (listen with addEventListener; `event.detail` is the payload):
 * `state` (ConnectionState), `joined`, `presence` (Map of members, with each one's `status` and `location`),
 * `chat` (a redacted one is a tombstone: `redacted: true`, no text), `chat_edit`, `chat_delete`, `redact`
 * (`target` is the chat message's seq), `ack`, `cursors`, `typing`, `event`, `run`, `error`, `reset`,
 * `history`, `ended`, `closed` (`{code}`: the hub closed the connection for good, e.g. 4005 removed).
 *
 * A `reset` (the events after our last seq were deleted by retention, or could not be read) is filled from
 * the transcript API when the client holds a credential it can send over HTTP (a token, or the host key):
 * the events it loads are emitted like live ones (`chat`, `chat_edit`, ...; live events that arrive
 * meanwhile wait so the order holds), then `history {from, to, events}`. Without a credential, or when the
 * transcript cannot be read, `reset` is emitted (with `error` when a load failed) and the page decides.
 */
export class CollabClient extends EventTarget {
  /**
   * @param {{session: string, name?: string, token?: string, getToken?: () => Promise<string>, clientId?: string,
   *          resumeSecret?: string, hostKey?: string, url?: string, httpUrl?: string, WebSocket?: any,
   *          fetch?: typeof fetch, storage?: Storage|null, secretStorage?: Storage|null, history?: number,
   *          random?: () => number, schedule?: (fn: Function, ms: number) => any}} options
   * `getToken` is called before every (re)connect and on `token_expiring` (the fresh token is sent as
   * `refresh`); a 4001 close (token expired or required) fetches a fresh one and retries once.
   * `storage` (default `localStorage`; `null` for none) keeps the unacknowledged outbox across reloads,
   * under a key per session and client id: pass a stable `clientId` for a reload to find it.
   * Without a token, a `clientId` is the same member again only with its resume secret: the first `joined`
   * brings one (`resume_secret`), which is sent on every later join (reconnects, reloads, other tabs with the
   * same id). Given a `clientId`, the secret is kept in `secretStorage` (default: `storage`; keep it where the
   * client id is kept, so both live as long) under `collabhub.secret.CLIENT_ID`; `resumeSecret` passes one in.
   * `history` (default 50, 0 for none): how many recent durable events a newcomer asks for in its first
   * join, so the room shows what was said before it came.
   * `httpUrl`: the hub's HTTP origin for the transcript API (default: derived from `url`).
   * `fetch`: for the transcript API (default: the global `fetch`).
   */
  constructor(options) {
    super();
    this.session = options.session.toUpperCase();
    this.name = options.name || "Guest";
    this.token = options.token;
    this.getToken = options.getToken;
    this._authRetried = false;
    this.hostKey = options.hostKey;
    this.clientId = options.clientId || randomId();
    this.url = options.url || defaultUrl(`/ws?session=${encodeURIComponent(this.session)}`);
    this.httpUrl = options.httpUrl || httpOrigin(this.url);
    this.WebSocketImpl = options.WebSocket || globalThis.WebSocket;
    this.fetchImpl = options.fetch || (globalThis.fetch ? globalThis.fetch.bind(globalThis) : null);
    this.history = options.history ?? 50;
    this.random = options.random || Math.random;
    this.schedule = options.schedule || ((fn, ms) => setTimeout(fn, ms));
    /** @type {ConnectionState} */ this.state = "idle";
    /** @type {Map<string, Member>} */ this.members = new Map();
    /** @type {Member|null} */ this.you = null;
    /** Highest durable seq seen: what a reconnect resumes from. */ this.seq = 0;
    const storage = options.storage === undefined ? defaultStorage() : options.storage;
    Outbox.prune(storage);
    this.secretStorage = options.secretStorage === undefined ? storage : options.secretStorage;
    pruneStale(this.secretStorage, SECRET_PREFIX, SECRET_MAX_AGE_MS, Date.now());
    // A client id made up here lives as long as this object: its secret is not kept.
    this._secretKey = options.clientId ? SECRET_PREFIX + this.clientId : null;
    /** Makes this client's `client_id` this member (from `joined`, or kept from an earlier page). */
    this.resumeSecret = (typeof options.resumeSecret === "string" && SECRET_PATTERN.test(options.resumeSecret)
      ? options.resumeSecret : null) || loadSecret(this.secretStorage, this._secretKey);
    /** Messages sent but not yet acknowledged (chat, chat_edit, chat_delete, redact, durable events), by id: resent after a
     * reconnect, and kept in `storage` so a reloaded page sends them again. */
    this.pending = new Outbox(storage, OUTBOX_PREFIX + this.session + "." + this.clientId);
    /** This client's presence state as it wants the others to see it (sent on change, and after a join). */
    this.presence = { status: "active", location: undefined };
    this._presenceSent = null;   // what the hub has for us, as JSON
    this.typing = new Map();
    this.attempt = 0;
    this.ws = null;
    this.closedByUser = false;
    this._cursor = null;
    this._cursorFrame = false;
    this._typingTimer = null;
    this._typingRefresh = 0;
    this._recovery = null;   // {from, to, held: []} while a reset is filled from the transcript
  }

  /** Opens the connection (and keeps reconnecting until close()). */
  connect() {
    this.closedByUser = false;
    this._setState(this.seq > 0 ? "resuming" : "connecting");
    if (!this.getToken) { this._open(); return this; }
    Promise.resolve().then(() => this.getToken()).then((t) => {
      this.token = t;
      if (!this.closedByUser) this._open();
    }, () => this._closed(1006));   // no token now: back off and try again
    return this;
  }

  _open() {
    const ws = new this.WebSocketImpl(this.url, PROTOCOL);
    this.ws = ws;
    ws.onopen = () => {
      const join = { type: "join", name: this.name, client_id: this.clientId };
      if (this.token) join.token = this.token;
      else if (this.resumeSecret) join.resume_secret = this.resumeSecret;
      if (this.hostKey) join.host_key = this.hostKey;
      // A resume gets exactly what it missed; a first join asks for the recent history instead.
      if (this.seq > 0) join.resume_from = this.seq;
      else if (this.history > 0) join.history = Math.min(1000, Math.floor(this.history));
      this._send(join);
    };
    ws.onmessage = (e) => this.handle(JSON.parse(typeof e.data === "string" ? e.data : e.data.toString()));
    ws.onclose = (e) => this._closed(e.code);
    ws.onerror = () => {};
    return this;
  }

  /** Closes for good (no reconnect). The outbox stays in storage. */
  close() {
    this.closedByUser = true;
    if (this.ws) this.ws.close(1000);
    this._setState("closed");
  }

  /** Handles one server message (exposed for tests, which replay Protocol/examples through it). */
  handle(m) {
    if (typeof m.seq === "number" && m.type !== "joined" && m.type !== "ack" && m.type !== "reset") {
      this.seq = Math.max(this.seq, m.seq);
      // While a reset is being filled, later timeline events wait for the older ones being loaded.
      if (this._recovery && m.type !== "presence") { this._recovery.held.push(m); return; }
    }
    this._dispatch(m, false);
  }

  /** One message's effect; `replayed`: it comes from the transcript (a reset being filled). */
  _dispatch(m, replayed) {
    switch (m.type) {
      case "joined":
        this.attempt = 0;
        this._authRetried = false;
        this.you = m.you;
        this._keepSecret(m.resume_secret);
        this.members = new Map(m.members.map((x) => [x.id, x]));
        this.seq = Math.max(this.seq, m.seq);
        this._setState("open");
        // Whatever was not acknowledged goes again with the same ids: the hub stores each once. After
        // a reload these are the previous page's, loaded from storage.
        this._resendPending();
        // The hub keeps our presence state across a reconnect within the grace, not after it (nor for a
        // new member): tell it again when it differs.
        this._presenceSent = JSON.stringify(presenceState(m.you?.status, m.you?.location));
        this._sendPresence();
        this._emit("joined", m);
        this._emit("presence", this.members);
        break;
      case "presence":
        // Joins and leaves from the transcript are older than the member list `joined` brought.
        if (!replayed) {
          for (const j of m.joins || []) this.members.set(j.id, j);
          for (const u of m.updates || []) {
            this.members.set(u.id, u);   // whole member objects: status and location included
            if (this.you && u.id === this.you.id) this.you = u;
          }
          for (const l of m.leaves || []) { this.members.delete(l.id); this.typing.delete(l.id); }
        }
        this._emit("presence", this.members);
        break;
      case "ack":
        this.pending.delete(m.id);
        this._emit("ack", m);
        break;
      case "chat": case "chat_edit": case "chat_delete": case "redact":
        this._emit(m.type, m);
        break;
      case "cursors":
        this._emit("cursors", m.updates.filter((u) => !this.you || u.id !== this.you.id));
        break;
      case "typing":
        if (m.state === "start") this.typing.set(m.member, Date.now()); else this.typing.delete(m.member);
        this._emit("typing", m);
        break;
      case "event": this._emit("event", m); break;
      case "run": this._emit("run", m); break;
      case "reset": this._reset(m); break;
      case "error":
        // A refusal that would be repeated (forbidden, invalid_field, ...) leaves the outbox: resending
        // it after every reconnect and reload would only be refused again.
        if (m.ref && this.pending.has(m.ref) && !TRANSIENT_ERRORS.has(m.code)) this.pending.delete(m.ref);
        // Refused for the rate (the hub does not say which message): what is still unacknowledged goes
        // again, paced, a little later.
        if (m.code === "rate_limited" && this.pending.size && !this._resendLater) {
          this._resendLater = true;
          this.schedule(() => { this._resendLater = false; this._resendPending(); }, 2000);
        }
        this._emit("error", m);
        break;
      case "token_expiring":
        this._emit("token_expiring", m);
        if (this.getToken) Promise.resolve().then(() => this.getToken()).then((t) => this.refresh(t), () => {});
        break;
      case "session_ended": this.closedByUser = true; this._emit("ended", m); break;
      default: this._emit(m.type, m);
    }
  }

  /** Takes a new resume secret from `joined` (if any) and keeps the one in use, stamped with now. */
  _keepSecret(fresh) {
    if (typeof fresh === "string" && SECRET_PATTERN.test(fresh)) this.resumeSecret = fresh;
    if (!this.resumeSecret || !this.secretStorage || !this._secretKey) return;
    try {
      this.secretStorage.setItem(this._secretKey, JSON.stringify({ saved: Date.now(), secret: this.resumeSecret }));
    } catch { /* quota or privacy mode: the secret still works for this page */ }
  }

  /** The credential this client can show the HTTP API, as request headers (null: none). */
  _httpCredential() {
    if (this.token) return { Authorization: "Bearer " + this.token };
    if (this.hostKey) return { "X-Host-Key": this.hostKey };
    return null;
  }

  /** `reset`: the events after our seq are gone from the hub's stream; load what is left from the transcript. */
  _reset(m) {
    const from = this.seq;
    const to = typeof m.seq === "number" ? m.seq : Infinity;
    if (typeof m.seq === "number") this.seq = Math.max(this.seq, m.seq);
    if (this._recovery) return;   // already filling the gap: the load in flight goes on to the end
    const headers = this._httpCredential();
    if (!headers || !this.fetchImpl) { this._emit("reset", m); return; }   // the page decides (e.g. reload)
    const recovery = (this._recovery = { from, to, held: [] });
    this._loadTranscript(from, to, headers).then((events) => {
      this._recovery = null;
      this._emit("history", { from, to: events.length ? events[events.length - 1].seq : from, events, reset: m });
      this._flush(recovery.held);
    }, (error) => {
      this._recovery = null;
      this._emit("reset", { ...m, error: String(error && error.message || error) });
      this._flush(recovery.held);
    });
  }

  /** Reads the transcript after `from` through `to`, a page at a time, emitting each event as it comes. */
  async _loadTranscript(from, to, headers) {
    const loaded = [];
    let after = from;
    let cursor = null;
    for (;;) {
      const where = cursor === null ? `after=${after}` : `cursor=${encodeURIComponent(cursor)}`;
      const url = `${this.httpUrl}/api/sessions/${encodeURIComponent(this.session)}/transcript?${where}&limit=1000`;
      const res = await this.fetchImpl(url, { headers });
      if (!res.ok) throw new Error(`transcript: HTTP ${res.status}`);
      const page = await res.json();
      for (const e of page.events || []) {
        if (typeof e.seq !== "number" || e.seq <= after || e.seq > to) continue;
        this.seq = Math.max(this.seq, e.seq);
        loaded.push(e);
        this._dispatch(e, true);
      }
      // `next`: an opaque cursor to the following page, null on the last one.
      const last = page.events?.at(-1)?.seq;
      if (typeof page.next !== "string" || page.next === cursor || typeof last !== "number" || last >= to) return loaded;
      after = last;
      cursor = page.next;
    }
  }

  _flush(held) { for (const m of held) this._dispatch(m, false); }

  /** Resends the unacknowledged messages, oldest first, at 4 a second: under the hub's chat rate (5/s,
   * burst 10), so that a long outbox is not refused for its own haste. */
  _resendPending() {
    const queue = [...this.pending.entries()];
    const step = () => {
      if (this.state !== "open") return;
      for (const [id, msg] of queue.splice(0, 4)) if (this.pending.has(id)) this._send({ type: "chat", ...msg, id });
      if (queue.length) this.schedule(step, 1000);
    };
    step();
  }

  /** Queues a message that waits for its ack, and sends it when connected. Returns its id. The outbox
   * holds at most MAX_OUTBOX messages: past that, nothing more is accepted until acks come. */
  _sendAcked(msg) {
    if (this.pending.size >= MAX_OUTBOX) throw new Error(`${MAX_OUTBOX} messages are waiting for the hub; wait for acks`);
    const id = randomId();
    this.pending.set(id, { ...msg, id });
    if (this.state === "open") this._send({ ...msg, id });
    this._emit("sent", { ...msg, id });
    return id;
  }

  /** Sends a chat message; it stays in `pending` until acknowledged, across reconnects and reloads. Returns its id. */
  sendChat(/** @type {ChatBody|string} */ body) {
    const b = typeof body === "string" ? { kind: "text", text: body } : { kind: "text", ...body };
    const id = this._sendAcked({ type: "chat", ...b });
    this.setTyping(false);
    return id;
  }

  /** The author changes the text of its chat message number `seq` (its seq, not its id). Returns the edit's id. */
  editChat(seq, text) { return this._sendAcked({ type: "chat_edit", seq, text: String(text) }); }

  /** The author (or a host) deletes chat message `seq`: the others hide it. Returns the deletion's id. */
  deleteChat(seq) { return this._sendAcked({ type: "chat_delete", seq }); }

  /** A host removes chat message `seq`'s content for good, everywhere it is stored. Returns the redaction's id. */
  redact(seq, reason) {
    return this._sendAcked({ type: "redact", seq, ...(reason ? { reason: String(reason) } : {}) });
  }

  /**
   * This member's presence: `status` (`active`, `idle`, `away`; undefined keeps the current one) and
   * `location` (any JSON up to 1 KiB saying what it is looking at, e.g. `{label: "viewing chat"}`; undefined
   * keeps the current one, null clears it). Sent only when it changes, and again after a reconnect.
   */
  setPresence(status, location) {
    if (status !== undefined && status !== null && !PRESENCE_STATUSES.has(status)) throw new Error(`unknown status ${status}`);
    this.presence = {
      status: status ?? this.presence.status,
      location: location === undefined ? this.presence.location : (location ?? undefined),
    };
    this._sendPresence();
  }

  _sendPresence() {
    if (this.state !== "open") return;
    const state = presenceState(this.presence.status, this.presence.location);
    const json = JSON.stringify(state);
    if (json === this._presenceSent) return;
    this._presenceSent = json;
    this._send({ type: "presence", state });
  }

  /**
   * Follows the page's activity: `away` while it is hidden (visibilitychange), `idle` after `idleMs`
   * without input (pointer, keyboard, wheel, touch), `active` again on input or when shown. Returns a
   * function that stops it. `document`, `window`, `schedule`/`cancel` (timers) and `now` are injectable.
   * @param {{document?: any, window?: any, idleMs?: number, schedule?: (fn: Function, ms: number) => any,
   *          cancel?: (handle: any) => void, now?: () => number}} [options]
   */
  trackActivity(options = {}) {
    const doc = options.document || globalThis.document;
    const win = options.window || globalThis.window;
    const idleMs = options.idleMs ?? 60000;
    const schedule = options.schedule || ((fn, ms) => setTimeout(fn, ms));
    const cancel = options.cancel || ((h) => clearTimeout(h));
    const now = options.now || (() => Date.now());
    if (!doc) throw new Error("trackActivity needs a document");
    let lastInput = now();
    let timer = null;
    let stopped = false;
    const hidden = () => doc.visibilityState === "hidden" || doc.hidden === true;
    // One timer at a time: input only moves `lastInput`; when the timer fires early it waits the rest.
    const arm = (ms) => { if (timer === null && !stopped) timer = schedule(check, ms); };
    const check = () => {
      timer = null;
      if (stopped || hidden()) return;
      const quiet = now() - lastInput;
      if (quiet >= idleMs) this.setPresence("idle");
      else arm(idleMs - quiet);
    };
    const onInput = () => {
      lastInput = now();
      if (hidden()) return;
      if (this.presence.status !== "active") this.setPresence("active");
      arm(idleMs);
    };
    const onVisibility = () => {
      if (hidden()) { this.setPresence("away"); return; }
      onInput();   // shown again: active, and the idle clock restarts
    };
    const inputs = ["pointermove", "pointerdown", "keydown", "wheel", "touchstart"];
    const opts = { passive: true, capture: true };
    for (const t of inputs) doc.addEventListener(t, onInput, opts);
    doc.addEventListener("visibilitychange", onVisibility);
    if (win && win.addEventListener) win.addEventListener("focus", onInput);
    if (hidden()) this.setPresence("away"); else { this.setPresence("active"); arm(idleMs); }
    return () => {
      stopped = true;
      if (timer !== null) { cancel(timer); timer = null; }
      for (const t of inputs) doc.removeEventListener(t, onInput, opts);
      doc.removeEventListener("visibilitychange", onVisibility);
      if (win && win.removeEventListener) win.removeEventListener("focus", onInput);
    };
  }

  /** Pointer position; at most one update per animation frame goes out (the latest). */
  sendCursor(x, y, el) {
    this._cursor = { type: "cursor", x: Math.round(x), y: Math.round(y), ...(el ? { el } : {}) };
    if (this._cursorFrame) return;
    this._cursorFrame = true;
    const visible = typeof document !== "undefined" && document.visibilityState === "visible";
    const raf = (visible && globalThis.requestAnimationFrame) || ((fn) => this.schedule(fn, 16));
    raf(() => { this._cursorFrame = false; if (this._cursor && this.state === "open") this._send(this._cursor); this._cursor = null; });
  }

  /** Typing indicator with its own debounce: a start is refreshed every 3 s while typing, stopped after 3 s idle. */
  setTyping(active) {
    const now = Date.now();
    if (this._typingTimer) { clearTimeout(this._typingTimer); this._typingTimer = null; }
    if (active) {
      if (now - this._typingRefresh > 3000) { this._typingRefresh = now; this._send({ type: "typing", state: "start" }); }
      this._typingTimer = this.schedule(() => this.setTyping(false), 3000);
    } else if (this._typingRefresh) {
      this._typingRefresh = 0;
      this._send({ type: "typing", state: "stop" });
    }
  }

  /** An app-defined event. A durable one gets a seq and an ack: like a chat it waits in the outbox (across
   * reconnects, offline time and reloads) until acknowledged, and is resent with its id (returned), which the
   * hub stores once. An ephemeral one is sent only when connected (returns undefined). */
  sendEvent(name, data = {}, { durable = false } = {}) {
    if (durable) return this._sendAcked({ type: "event", name: String(name), data, durable: true });
    this._send({ type: "event", name, data });
    return undefined;
  }

  /** Host: remove a member. */ remove(memberId) { this._send({ type: "remove", member: memberId }); }
  /** Ask a run's publisher to pause/resume/cancel. */ controlRun(run, action) { this._send({ type: "run_control", run, action }); }
  /** Host: end the session. */ end(reason) { this._send({ type: "end", reason }); }
  /** A fresh token before the current one expires. */ refresh(token) { this.token = token; this._send({ type: "refresh", token }); }

  _send(msg) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(msg));
  }

  _closed(code) {
    this.ws = null;
    /** The close code of the last connection (4001 token expired or guests refused, 4003 forbidden, 4004
     * session ended, 4005 removed, 4006 session full, 4008 rate limited, 4404 unknown session, ...). */
    this.closeCode = code;
    // 4001 token expired, 4003 forbidden, 4004 ended, 4005 removed, 4006 full, 4404 no such session,
    // 1002/1007/1009: reconnecting would not help (the hub said why in an `error` just before).
    // With getToken, a 4001 (expired or missing token) is worth one retry with a fresh token.
    if (code === 4001 && this.getToken && !this._authRetried && !this.closedByUser) {
      this._authRetried = true;
      this._setState("offline");
      this.schedule(() => { if (!this.closedByUser) this.connect(); }, 0);
      return;
    }
    const final = this.closedByUser || FINAL_CLOSE_CODES.includes(code);
    if (final) {
      this._setState("closed");
      // Why it stays closed (a page says so): not after close(), which the caller asked for.
      if (!this.closedByUser || [4004].includes(code)) this._emit("closed", { code });
      return;
    }
    this._setState("offline");
    const delay = backoffDelay(this.attempt++, 250, 15000, this.random);
    this.schedule(() => { if (!this.closedByUser) this.connect(); }, delay);
  }

  _setState(s) { if (this.state !== s) { this.state = s; this._emit("state", s); } }
  _emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
}

/** A run's state (as a snapshot gives it) after one `run_event`: status, steps, progress and logs follow. */
export function applyRunEvent(run, e) {
  const r = { ...(run || { id: e.run, status: "pending", steps: [], log_count: 0, last_logs: [] }), seq: e.seq };
  r.steps = Array.isArray(r.steps) ? r.steps.map((s) => ({ ...s })) : [];
  const step = () => [...r.steps].reverse().find((s) => s.name === e.step);
  switch (e.event) {
    case "started":
      r.status = "running"; r.started_at = e.ts;
      if (e.name !== undefined) r.name = e.name;
      if (e.owner !== undefined) r.owner = e.owner;
      if (e.session !== undefined) r.session = e.session;
      break;
    case "step_started": r.steps.push({ name: e.step, status: "running", started_at: e.ts }); break;
    case "step_completed": case "step_failed": {
      const s = step();
      if (s) {
        s.status = e.event === "step_completed" ? "completed" : "failed"; s.ended_at = e.ts;
        if (typeof s.started_at === "number") s.duration_ms = e.ts - s.started_at;
        if (e.error !== undefined) s.error = e.error;
      }
      break;
    }
    case "paused": r.status = "paused"; break;
    case "resumed": r.status = "running"; break;
    case "progress":
      // The hub keeps the latest progress whole: a percent (0 when left out) and its message, if any.
      r.progress = { percent: e.percent ?? 0, ...(e.message !== undefined ? { message: e.message } : {}) };
      r.percent = r.progress.percent;
      if (e.message !== undefined) r.message = e.message; else delete r.message;
      break;
    case "log":
      r.log_count = (r.log_count || 0) + 1;
      r.last_logs = [...(r.last_logs || []), e.line ?? ""].slice(-RUN_LOG_LINES);
      break;
    case "completed":
      r.status = e.outcome || "succeeded"; r.ended_at = e.ts;
      if (typeof r.started_at === "number") r.duration_ms = e.ts - r.started_at;
      // A step still running when its run ends is cancelled with it.
      for (const s of r.steps) {
        if (s.status !== "running") continue;
        s.status = "cancelled"; s.ended_at = e.ts;
        if (typeof s.started_at === "number") s.duration_ms = e.ts - s.started_at;
      }
      break;
  }
  r.steps_total = r.steps.length;
  r.steps_completed = r.steps.filter((x) => x.status === "completed").length;
  r.steps_failed = r.steps.filter((x) => x.status === "failed").length;
  return r;
}

/** Log lines a run's state keeps (the hub keeps as many). */
const RUN_LOG_LINES = 50;

/**
 * One run's view from two sources that can arrive in any order: a summary (`dashboard`, `run_status`,
 * `run_progress`) and the full state (`run_snapshot`, then `run_event`s). Whichever has the higher seq wins
 * where both say something; what only one says (the steps, the logs) is kept. A newer summary's percent
 * and message are the run's progress.
 */
export function mergeRun(run, update) {
  if (!run) return { ...update };
  const newer = (update.seq ?? 0) >= (run.seq ?? 0);
  const r = newer ? { ...run, ...update } : { ...update, ...run };
  if (newer && update.percent !== undefined && update.progress === undefined) {
    r.progress = { percent: update.percent, ...(update.message !== undefined ? { message: update.message } : {}) };
  }
  return r;
}

/** Follows runs and dashboards over /watch, resuming each run channel from its last seq after a reconnect. */
export class RunWatcher extends EventTarget {
  /** @param {{url?: string, token?: string, key?: string}} options: `token` (a watcher token) or `key` (an API
   * key with runs:read) goes with every subscribe, never in the URL (where proxies log it). */
  constructor(options = {}) {
    super();
    this.url = options.url || defaultUrl("/watch");
    this.token = options.token || options.key;
    /** Called before every (re)connect for a fresh watcher token. */ this.getToken = options.getToken;
    this.WebSocketImpl = options.WebSocket || globalThis.WebSocket;
    this.schedule = options.schedule || ((fn, ms) => setTimeout(fn, ms));
    this.channels = new Map();   // channel -> last seq (runs) or 0
    this.runs = new Map();       // run id -> summary or state
    this.attempt = 0;
    this.state = "idle";
  }
  connect() {
    this.state = "connecting";
    if (this.getToken && !this._tokenFetched) {
      Promise.resolve().then(() => this.getToken()).then((t) => { this.token = t; this._tokenFetched = true; this.connect(); },
        () => { if (!this.closed) this.schedule(() => this.connect(), backoffDelay(this.attempt++)); });
      return this;
    }
    this._tokenFetched = false;   // the next connect fetches again
    const ws = new this.WebSocketImpl(this.url, PROTOCOL);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.state = "open";
      for (const [channel, seq] of this.channels) this._subscribe(channel, seq);
      this.dispatchEvent(new CustomEvent("state", { detail: "open" }));
    };
    ws.onmessage = (e) => this.handle(JSON.parse(typeof e.data === "string" ? e.data : e.data.toString()));
    ws.onclose = () => {
      this.state = "offline";
      this.dispatchEvent(new CustomEvent("state", { detail: "offline" }));
      if (!this.closed) this.schedule(() => this.connect(), backoffDelay(this.attempt++));
    };
    ws.onerror = () => {};
    return this;
  }
  subscribe(channel) {
    if (this.channels.has(channel)) return;   // already followed (and resumed after reconnects)
    this.channels.set(channel, 0);
    if (this.ws && this.ws.readyState === 1) this._subscribe(channel, 0);
  }
  /** Stops following `channel` (and no longer resubscribes it after a reconnect). */
  unsubscribe(channel) {
    if (!this.channels.delete(channel)) return;
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify({ type: "unsubscribe", channel }));
  }
  close() { this.closed = true; if (this.ws) this.ws.close(1000); }
  _subscribe(channel, seq) {
    const msg = { type: "subscribe", channel };
    if (seq > 0) msg.resume_from = seq;
    if (this.token) msg.token = this.token;
    this.ws.send(JSON.stringify(msg));
  }
  handle(m) {
    switch (m.type) {
      case "dashboard": for (const r of m.runs) this.runs.set(r.id, mergeRun(this.runs.get(r.id), r)); break;
      case "run_status": case "run_progress": this.runs.set(m.run.id, mergeRun(this.runs.get(m.run.id), m.run)); break;
      case "run_snapshot":
        this.runs.set(m.run.id, mergeRun(this.runs.get(m.run.id), m.run));
        if (this.channels.has(m.channel)) this.channels.set(m.channel, m.seq);
        break;
      case "run_event": {
        const channel = `run:${m.run}`;
        if (this.channels.has(channel)) this.channels.set(channel, Math.max(this.channels.get(channel), m.seq));
        const run = this.runs.get(m.run);
        // Already in the state (a resume's overlap, or a snapshot taken after it): applied once.
        if (run && Array.isArray(run.steps) && typeof run.seq === "number" && m.seq <= run.seq) break;
        this.runs.set(m.run, applyRunEvent(run, m));
        break;
      }
    }
    this.dispatchEvent(new CustomEvent(m.type, { detail: m }));
    this.dispatchEvent(new CustomEvent("change", { detail: m }));
  }
}

/** Chat kinds a store shows (a `system` message has no author). */
const CHAT_TYPES = new Set(["chat", "chat_edit", "chat_delete", "redact"]);

/**
 * The chat as it should be shown: messages in seq order, each with its edits, deletion or redaction applied,
 * and this client's own messages shown at once (`pending: true`) until their ack gives them a seq. It holds
 * what every app would otherwise rewrite: a change that arrives before its message (history, resume) waits
 * for it; a message seen twice (history and live, an ack and its echo) is one message; a message refused for
 * good is marked `failed` with the hub's error code. Pure logic (no DOM): feed it the client's events with
 * `attach(client)` (or `apply(message)` by hand) and read `messages`; it dispatches `change` after each change.
 *
 * A message is `{key, seq?, id?, ts?, from?, kind, text?, code?, file?, meta?, pending, edited, deleted,
 * redacted, failed?}`; `key` is stable for its life (the client id of one's own message, else `seq:N`).
 */
export class MessageStore extends EventTarget {
  /** @param {{client?: CollabClient, limit?: number}} [options] `limit`: messages kept (oldest dropped first). */
  constructor(options = {}) {
    super();
    this.limit = options.limit ?? 5000;
    /** @type {Map<number, any>} */ this._bySeq = new Map();
    /** @type {Map<string, any>} own messages not yet acknowledged, by id */ this._pending = new Map();
    /** @type {Map<number, any[]>} changes whose target has not been seen yet, in arrival order */ this._later = new Map();
    this._sorted = null;
    /** Bumped on every change (handy for React's useSyncExternalStore). */ this.version = 0;
    this._quiet = false;
    this._detach = null;
    if (options.client) this.attach(options.client);
  }

  /** Every message, confirmed ones by seq, then this client's pending ones in the order they were sent. */
  get messages() {
    if (!this._sorted) {
      const confirmed = [...this._bySeq.values()].sort((a, b) => a.seq - b.seq);
      this._sorted = confirmed.concat([...this._pending.values()]);
    }
    return this._sorted;
  }

  /** The message at `seq`, or undefined. */ get(seq) { return this._bySeq.get(seq); }
  /** Own messages waiting for their ack. */ get pending() { return [...this._pending.values()]; }

  /**
   * Follows `client` (a CollabClient): its `chat`, edits, deletions, redactions, acks, errors and its own
   * sends (`sent`); the chats waiting in its outbox (from before a reload) are shown as pending at once.
   * Returns a function that stops following it.
   */
  attach(client) {
    if (this._detach) this._detach();
    const on = (type, fn) => { client.addEventListener(type, fn); return () => client.removeEventListener(type, fn); };
    const you = () => client.you || undefined;
    const offs = [
      ...["chat", "chat_edit", "chat_delete", "redact", "ack", "error"].map((t) => on(t, (e) => this.apply(e.detail))),
      on("sent", (e) => { if (e.detail.type === "chat") this.addPending(e.detail, you()); }),
      on("joined", () => {
        for (const m of this._pending.values()) if (!m.from && client.you) m.from = client.you;
        this._changed();
      }),
    ];
    for (const [id, msg] of client.pending || []) if ((msg.type || "chat") === "chat") this.addPending({ ...msg, id }, you());
    this._detach = () => { for (const off of offs) off(); this._detach = null; };
    return this._detach;
  }

  /** Shows one of this client's chats (`{id, kind, text|code|file, meta?}`) as pending until its ack. */
  addPending(msg, from) {
    if (typeof msg.id !== "string" || this._pending.has(msg.id)) return;
    for (const m of this._bySeq.values()) if (m.id === msg.id && m.own) return;   // already confirmed
    const entry = this._message({ ...msg, ...(from ? { from } : {}) });
    entry.key = msg.id;
    entry.pending = true;
    entry.own = true;
    entry.ts = Date.now();
    this._pending.set(msg.id, entry);
    this._changed();
  }

  /** Applies one hub message (`chat`, `chat_edit`, `chat_delete`, `redact`, `ack`, `error`); others are ignored.
   * Returns whether anything changed. */
  apply(m) {
    if (!m || typeof m !== "object") return false;
    switch (m.type) {
      case "chat": return this._chat(m);
      case "chat_edit": case "chat_delete": case "redact": return this._change(m);
      case "ack": return this._ack(m);
      case "error": return this._error(m);
      default: return false;
    }
  }

  /** Forgets everything (e.g. before loading another session). */
  clear() { this._bySeq.clear(); this._pending.clear(); this._later.clear(); this._changed(); }

  /**
   * The chat as `events` make it, from nothing: forgets the confirmed messages and the changes waiting for
   * theirs (one's own pending messages stay), then applies `events` in order (a transcript page, or the
   * frames a replay has played up to a seek), with one `change` at the end. Returns the store.
   * @param {Iterable<object>} [events]
   */
  reset(events = []) {
    this._bySeq.clear(); this._later.clear();
    this._quiet = true;
    try { for (const m of events) this.apply(m); } finally { this._quiet = false; }
    this._changed();
    return this;
  }

  _message(m) {
    const redacted = m.redacted === true, deleted = !redacted && m.deleted === true;
    const out = { key: "", seq: undefined, id: m.id, ts: m.ts, from: m.from, kind: m.kind || "text", pending: false,
      edited: false, deleted, redacted, own: false };
    // A tombstone from the store (history, transcript, playback) says who deleted it; its content is gone.
    if (deleted && (m.deleted_by === "author" || m.deleted_by === "host")) out.deletedBy = m.deleted_by;
    for (const k of ["text", "code", "file", "meta"]) if (m[k] !== undefined && !redacted && !deleted) out[k] = m[k];
    return out;
  }

  _chat(m) {
    if (!Number.isInteger(m.seq) || m.seq < 1) return false;
    if (this._bySeq.has(m.seq)) return false;   // seen (history and live, a resume's overlap)
    let entry = typeof m.id === "string" ? this._pending.get(m.id) : undefined;
    // Our own message's echo: the pending one takes its seq (keeping its key, so a list does not jump).
    if (entry && (!m.from || !entry.from || m.from.id === entry.from.id)) {
      this._pending.delete(m.id);
      Object.assign(entry, { pending: false, seq: m.seq, ts: m.ts ?? entry.ts, from: m.from || entry.from });
      if (m.redacted) this._redact(entry);
      else if (m.deleted) this._delete(entry, m.deleted_by);
    } else {
      entry = this._message(m);
      entry.key = "seq:" + m.seq;
      entry.seq = m.seq;
    }
    return this._place(m.seq, entry);
  }

  /** Files `entry` at `seq`, applies the changes that came before it, and tells the listeners. */
  _place(seq, entry) {
    this._bySeq.set(seq, entry);
    for (const c of this._later.get(seq) || []) this._applyChange(entry, c);
    this._later.delete(seq);
    this._trim();
    this._changed();
    return true;
  }

  _ack(m) {
    const entry = typeof m.id === "string" ? this._pending.get(m.id) : undefined;
    if (!entry || !Number.isInteger(m.seq)) return false;
    this._pending.delete(m.id);
    // The echo may have come first (history read at the same time): one message, not two.
    if (this._bySeq.has(m.seq)) { this._changed(); return true; }
    Object.assign(entry, { pending: false, seq: m.seq, ts: m.ts ?? entry.ts });
    return this._place(m.seq, entry);
  }

  _error(m) {
    const entry = typeof m.ref === "string" ? this._pending.get(m.ref) : undefined;
    if (!entry || TRANSIENT_ERRORS.has(m.code)) return false;
    entry.failed = m.code || "error";
    entry.error = m.message;
    this._changed();
    return true;
  }

  _change(c) {
    if (!Number.isInteger(c.target)) return false;
    const entry = this._bySeq.get(c.target);
    if (!entry) {
      // Its message is not here (yet): applied if it comes. Bounded like the messages.
      if (!this._later.has(c.target)) this._later.set(c.target, []);
      this._later.get(c.target).push(c);
      if (this._later.size > this.limit) this._later.delete(this._later.keys().next().value);
      return false;
    }
    this._applyChange(entry, c);
    this._changed();
    return true;
  }

  _applyChange(entry, c) {
    if (entry.redacted) return;   // nothing left to change
    if (c.type === "redact" || (c.type === "chat_edit" && c.redacted)) return this._redact(entry);
    if (entry.deleted) return;
    if (c.type === "chat_edit") {
      // An edit whose message was deleted since has no text left either (a tombstone in the store).
      if (typeof c.text !== "string") { if (c.deleted === true) this._delete(entry); return; }
      entry.text = c.text;
      entry.edited = true;
      entry.editedAt = c.ts;
    } else if (c.type === "chat_delete") {
      const by = c.from && entry.from ? (c.from.id === entry.from.id ? "author" : "host") : undefined;
      this._delete(entry, by);
    }
  }

  _delete(entry, by) {
    entry.deleted = true;
    entry.edited = false;
    if (by === "author" || by === "host") entry.deletedBy = by;
    for (const k of ["text", "code", "file", "meta"]) delete entry[k];
  }

  _redact(entry) {
    entry.redacted = true;
    entry.deleted = false;
    entry.edited = false;
    for (const k of ["text", "code", "file", "meta"]) delete entry[k];
  }

  _trim() {
    if (this._bySeq.size <= this.limit) return;
    const seqs = [...this._bySeq.keys()].sort((a, b) => a - b);
    for (const s of seqs.slice(0, this._bySeq.size - this.limit)) this._bySeq.delete(s);
  }

  _changed() {
    this._sorted = null;
    if (this._quiet) return;   // reset(): one change at the end
    this.version++;
    this.dispatchEvent(new CustomEvent("change", { detail: this }));
  }
}
