// collabhub.js: the browser (and Node) client for CollabHub's collabhub.v1 protocol. No dependencies,
// no build step: `import { CollabClient } from "/client.js"`.

/**
 * @typedef {{id: string, name: string, color: string, role: string, connections: number}} Member
 * @typedef {"idle"|"connecting"|"open"|"resuming"|"offline"|"closed"} ConnectionState
 * @typedef {{kind?: "text"|"file"|"code"|"system", text?: string, file?: object, code?: object, meta?: object}} ChatBody
 */

const PROTOCOL = "collabhub.v1";

const escapeHTML = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));

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
    el.innerHTML = `<svg width="16" height="16" viewBox="0 0 16 16"><path d="M1 1 L1 14 L5 10 L9 15 L11 14 L7 9 L13 9 Z" fill="${color}" stroke="#fff"/></svg><span style="background:${color}">${escapeHTML(who.name)}</span>`;
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

function randomId() {
  const c = globalThis.crypto;
  if (c && c.randomUUID) return c.randomUUID();
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

/**
 * A member's connection to one session. Events (listen with addEventListener; `event.detail` is the payload):
 * `state` (ConnectionState), `joined`, `presence` (Map of members), `chat`, `ack`, `cursors`, `typing`,
 * `event`, `run`, `error`, `reset`, `ended`.
 */
export class CollabClient extends EventTarget {
  /**
   * @param {{session: string, name?: string, token?: string, getToken?: () => Promise<string>, clientId?: string,
   *          hostKey?: string, url?: string, WebSocket?: any, random?: () => number,
   *          schedule?: (fn: Function, ms: number) => any}} options
   * `getToken` is called before every (re)connect and on `token_expiring` (the fresh token is sent as
   * `refresh`); a 4001 close (token expired or required) fetches a fresh one and retries once.
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
    this.WebSocketImpl = options.WebSocket || globalThis.WebSocket;
    this.random = options.random || Math.random;
    this.schedule = options.schedule || ((fn, ms) => setTimeout(fn, ms));
    /** @type {ConnectionState} */ this.state = "idle";
    /** @type {Map<string, Member>} */ this.members = new Map();
    /** @type {Member|null} */ this.you = null;
    /** Highest durable seq seen: what a reconnect resumes from. */ this.seq = 0;
    /** Chat messages sent but not yet acknowledged, by id, resent after a reconnect. */ this.pending = new Map();
    this.typing = new Map();
    this.attempt = 0;
    this.ws = null;
    this.closedByUser = false;
    this._cursor = null;
    this._cursorFrame = false;
    this._typingTimer = null;
    this._typingRefresh = 0;
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
      if (this.hostKey) join.host_key = this.hostKey;
      if (this.seq > 0) join.resume_from = this.seq;
      this._send(join);
    };
    ws.onmessage = (e) => this.handle(JSON.parse(typeof e.data === "string" ? e.data : e.data.toString()));
    ws.onclose = (e) => this._closed(e.code);
    ws.onerror = () => {};
    return this;
  }

  /** Closes for good (no reconnect). */
  close() {
    this.closedByUser = true;
    if (this.ws) this.ws.close(1000);
    this._setState("closed");
  }

  /** Handles one server message (exposed for tests, which replay Protocol/examples through it). */
  handle(m) {
    if (typeof m.seq === "number" && m.type !== "joined" && m.type !== "ack") this.seq = Math.max(this.seq, m.seq);
    switch (m.type) {
      case "joined":
        this.attempt = 0;
        this._authRetried = false;
        this.you = m.you;
        this.members = new Map(m.members.map((x) => [x.id, x]));
        this.seq = Math.max(this.seq, m.seq);
        this._setState("open");
        // Whatever was not acknowledged goes again with the same ids: the hub stores each once.
        for (const [id, body] of this.pending) this._send({ type: "chat", id, ...body });
        this._emit("joined", m);
        this._emit("presence", this.members);
        break;
      case "presence":
        for (const j of m.joins || []) this.members.set(j.id, j);
        for (const u of m.updates || []) this.members.set(u.id, u);
        for (const l of m.leaves || []) { this.members.delete(l.id); this.typing.delete(l.id); }
        this._emit("presence", this.members);
        break;
      case "ack":
        this.pending.delete(m.id);
        this._emit("ack", m);
        break;
      case "chat": this._emit("chat", m); break;
      case "cursors":
        this._emit("cursors", m.updates.filter((u) => !this.you || u.id !== this.you.id));
        break;
      case "typing":
        if (m.state === "start") this.typing.set(m.member, Date.now()); else this.typing.delete(m.member);
        this._emit("typing", m);
        break;
      case "event": this._emit("event", m); break;
      case "run": this._emit("run", m); break;
      case "reset": this._emit("reset", m); break;
      case "error": this._emit("error", m); break;
      case "token_expiring":
        this._emit("token_expiring", m);
        if (this.getToken) Promise.resolve().then(() => this.getToken()).then((t) => this.refresh(t), () => {});
        break;
      case "session_ended": this.closedByUser = true; this._emit("ended", m); break;
      default: this._emit(m.type, m);
    }
  }

  /** Sends a chat message; it stays in `pending` until acknowledged, across reconnects. Returns its id. */
  sendChat(/** @type {ChatBody|string} */ body) {
    const b = typeof body === "string" ? { kind: "text", text: body } : { kind: "text", ...body };
    const id = randomId();
    this.pending.set(id, b);
    if (this.state === "open") this._send({ type: "chat", id, ...b });
    this.setTyping(false);
    return id;
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

  /** An app-defined event; durable ones get a seq and an ack (returns the id). */
  sendEvent(name, data = {}, { durable = false } = {}) {
    const msg = { type: "event", name, data };
    if (durable) { msg.durable = true; msg.id = randomId(); }
    this._send(msg);
    return msg.id;
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
    // 4001 token expired, 4003 forbidden, 4004 ended, 4005 removed, 1002/1007/1009: reconnecting would not help.
    // With getToken, a 4001 (expired or missing token) is worth one retry with a fresh token.
    if (code === 4001 && this.getToken && !this._authRetried && !this.closedByUser) {
      this._authRetried = true;
      this._setState("offline");
      this.schedule(() => { if (!this.closedByUser) this.connect(); }, 0);
      return;
    }
    const final = this.closedByUser || [4001, 4003, 4004, 4005, 1002, 1007, 1009].includes(code);
    if (final) { this._setState("closed"); return; }
    this._setState("offline");
    const delay = backoffDelay(this.attempt++, 250, 15000, this.random);
    this.schedule(() => { if (!this.closedByUser) this.connect(); }, delay);
  }

  _setState(s) { if (this.state !== s) { this.state = s; this._emit("state", s); } }
  _emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
}

/** Follows runs and dashboards over /watch, resuming each run channel from its last seq after a reconnect. */
export class RunWatcher extends EventTarget {
  /** @param {{url?: string, token?: string, key?: string}} options: `token` (a watcher token) goes with
   * every subscribe; `key` (an API key with runs:read) with the upgrade (`?key=`). */
  constructor(options = {}) {
    super();
    this.url = options.url || defaultUrl("/watch");
    if (options.key) this.url += (this.url.includes("?") ? "&" : "?") + "key=" + encodeURIComponent(options.key);
    this.token = options.token;
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
  close() { this.closed = true; if (this.ws) this.ws.close(1000); }
  _subscribe(channel, seq) {
    const msg = { type: "subscribe", channel };
    if (seq > 0) msg.resume_from = seq;
    if (this.token) msg.token = this.token;
    this.ws.send(JSON.stringify(msg));
  }
  handle(m) {
    switch (m.type) {
      case "dashboard": for (const r of m.runs) this.runs.set(r.id, r); break;
      case "run_status": case "run_progress": this.runs.set(m.run.id, { ...this.runs.get(m.run.id), ...m.run }); break;
      case "run_snapshot": this.runs.set(m.run.id, m.run); this.channels.set(m.channel, m.seq); break;
      case "run_event": this.channels.set(`run:${m.run}`, m.seq); break;
    }
    this.dispatchEvent(new CustomEvent(m.type, { detail: m }));
    this.dispatchEvent(new CustomEvent("change", { detail: m }));
  }
}
