// admin.js: the operator's console at /admin. No dependencies, no build step.
//
// The page holds no data of its own: it asks for the operator's key (kept in sessionStorage, this tab
// only) and reads the hub's JSON API with `Authorization: Bearer KEY`. Everything that comes from the
// API is written with textContent (never innerHTML); tables are updated row by row, in place, so an
// auto-refresh keeps the scroll position and any selected text.

import { MessageStore } from "/client.js";

const STORAGE_KEY = "collabhub.admin.key";
const NOTICE_KEY = "collabhub.admin.notice";
const REFRESH_MS = 3000;           // the visible section
const METRICS_MS = 2000;           // /metrics, always (rates need history)
const METRICS_WINDOW_MS = 180_000; // the charts show the last 3 minutes
const HISTOGRAM_WINDOW = 5;        // latency quantiles over the last 5 scrapes (~10 s)
const TAIL_MS = 2000;              // the live tail of an open transcript
const WEBHOOK_EVENTS = ["*", "session.started", "session.ended", "member.joined", "member.left", "chat.created", "chat.updated",
  "chat.deleted", "event.created", "run.started", "run.paused", "run.resumed", "run.step_failed", "run.completed"];
const SCOPES = ["sessions:create", "sessions:read", "sessions:write", "transcripts:read", "runs:publish", "runs:read",
  "activity:read", "keys:admin", "webhooks:admin", "metrics:read"];

// MARK: - Prometheus text format (pure; exported for tests)

/** Parses Prometheus' text exposition format into samples `{name, labels, value}` (comments skipped). */
export function parsePrometheus(text) {
  const samples = [];
  for (const raw of String(text).split("\n")) {
    const line = raw.trim();
    if (!line || line[0] === "#") continue;
    let i = 0;
    while (i < line.length && line[i] !== "{" && line[i] !== " " && line[i] !== "\t") i++;
    const name = line.slice(0, i);
    const labels = {};
    if (line[i] === "{") {
      i++;
      for (;;) {
        while (line[i] === " " || line[i] === ",") i++;
        if (i >= line.length) break;
        if (line[i] === "}") { i++; break; }
        const eq = line.indexOf("=", i);
        if (eq < 0) break;
        const key = line.slice(i, eq).trim();
        i = eq + 1;
        if (line[i] !== '"') break;
        i++;
        let value = "";
        while (i < line.length && line[i] !== '"') {
          if (line[i] === "\\" && i + 1 < line.length) {
            const c = line[++i];
            value += c === "n" ? "\n" : c;
          } else value += line[i];
          i++;
        }
        i++;   // the closing quote
        labels[key] = value;
      }
    }
    const rest = line.slice(i).trim().split(/\s+/);
    const value = parseValue(rest[0]);
    if (name && !Number.isNaN(value)) samples.push({ name, labels, value });
  }
  return samples;
}

function parseValue(s) {
  if (s === undefined) return NaN;
  if (s === "+Inf" || s === "Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  return Number(s);
}

/** Sums samples of `name` over all label sets (a counter or gauge with labels); null when absent. */
export function total(samples, name) {
  let sum = null;
  for (const s of samples) if (s.name === name) sum = (sum ?? 0) + s.value;
  return sum;
}

/** The histogram `name` summed over every label but `le` (e.g. HTTP routes): `{buckets: [[le, cumulative]],
 * sum, count}` with buckets sorted by bound (the last is +Inf), or null when the scrape has none. */
export function histogram(samples, name) {
  const byBound = new Map();
  let sum = 0, count = null;
  for (const s of samples) {
    if (s.name === name + "_bucket" && s.labels.le !== undefined) {
      const le = parseValue(s.labels.le);
      if (Number.isNaN(le)) continue;
      byBound.set(le, (byBound.get(le) ?? 0) + s.value);
    } else if (s.name === name + "_sum") sum += s.value;
    else if (s.name === name + "_count") count = (count ?? 0) + s.value;
  }
  if (byBound.size === 0) return null;
  const buckets = [...byBound.entries()].sort((a, b) => a[0] - b[0]);
  // Cumulative by definition: a sum over label sets with different bounds could dip; keep it monotonic.
  for (let i = 1; i < buckets.length; i++) if (buckets[i][1] < buckets[i - 1][1]) buckets[i][1] = buckets[i - 1][1];
  const inf = buckets[buckets.length - 1][0] === Infinity ? buckets[buckets.length - 1][1] : null;
  return { buckets, sum, count: inf ?? count ?? buckets[buckets.length - 1][1] };
}

/** What was observed between two scrapes of one histogram (`before` may be null: everything so far).
 * A counter that went down (the hub restarted) counts from zero. */
export function histogramDelta(now, before) {
  if (!now) return null;
  if (!before || now.count < before.count) return now;
  const old = new Map(before.buckets);
  const buckets = now.buckets.map(([le, c]) => [le, Math.max(0, c - (old.get(le) ?? 0))]);
  return { buckets, sum: now.sum - before.sum, count: now.count - before.count };
}

/** The q-quantile (0..1) estimated from cumulative buckets, like Prometheus' histogram_quantile: linear
 * interpolation inside the bucket that holds the rank; in the +Inf bucket, the highest finite bound.
 * null without observations. */
export function quantile(q, buckets) {
  if (!buckets || buckets.length === 0) return null;
  const count = buckets[buckets.length - 1][1];
  if (!(count > 0)) return null;
  const rank = q * count;
  let lower = 0, below = 0;
  for (const [le, c] of buckets) {
    if (c >= rank && c > 0) {
      if (le === Infinity) return lower;
      if (le <= 0) return le;
      if (c === below) return le;
      return lower + (le - lower) * (rank - below) / (c - below);
    }
    if (le !== Infinity) lower = le;
    below = c;
  }
  return lower;
}

// MARK: - Formatting (pure)

export function formatSeconds(s) {
  if (s == null || !Number.isFinite(s)) return "–";
  if (s === 0) return "0";
  if (s < 1e-3) return `${(s * 1e6).toFixed(s < 1e-5 ? 1 : 0)} µs`;
  if (s < 1) return `${(s * 1e3).toFixed(s < 0.01 ? 2 : s < 0.1 ? 1 : 0)} ms`;
  return `${s.toFixed(s < 10 ? 2 : 1)} s`;
}

export function formatNumber(n) {
  if (n == null || !Number.isFinite(n)) return "–";
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(1) + "k";
  if (Number.isInteger(n)) return String(n);
  return a >= 100 ? n.toFixed(0) : a >= 10 ? n.toFixed(1) : n.toFixed(2);
}

function formatDuration(ms) {
  if (ms == null) return "";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return m < 60 ? `${m} min ${Math.round((ms % 60_000) / 1000)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function formatTime(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const safeColor = (c) => (/^#[0-9a-fA-F]{3,8}$/.test(String(c)) ? c : "#8a93a6");
const truncate = (s, n) => (s.length > n ? s.slice(0, n - 1) + "…" : s);

// MARK: - DOM helpers

const $ = (id) => document.getElementById(id);

/** An element; string children become text nodes (never markup). */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

/** Sets text only when it changed: an unchanged cell keeps the user's selection. */
function setText(el, value) {
  const v = value == null ? "" : String(value);
  if (el.textContent !== v) el.textContent = v;
}

/** A cell's content: text, or `{sig, build}` rebuilt only when `sig` (what it shows) changed. */
function fill(el, content) {
  if (content == null || typeof content !== "object") {
    if (el.dataset.sig !== undefined) { delete el.dataset.sig; el.textContent = ""; }
    return setText(el, content);
  }
  if (el.dataset.sig !== content.sig) {
    el.replaceChildren(...[content.build()].flat().filter((c) => c != null));
    el.dataset.sig = content.sig;
  }
}

/** Keeps `parent`'s children in the order of `items`, one per key: existing elements are updated in place,
 * new ones made, gone ones removed. */
function syncList(parent, items, keyOf, create, update) {
  const existing = new Map();
  for (const el of [...parent.children]) existing.set(el.dataset.k, el);
  let prev = null;
  for (const item of items) {
    const k = String(keyOf(item));
    let el = existing.get(k);
    if (el) existing.delete(k);
    else { el = create(item); el.dataset.k = k; }
    update(el, item);
    const want = prev ? prev.nextSibling : parent.firstChild;
    if (want !== el) parent.insertBefore(el, want);
    prev = el;
  }
  for (const el of existing.values()) el.remove();
}

/** A table body of rows with `columns` (each `{class?, value(item)}`), keyed by `keyOf`. */
function syncTable(tbody, items, keyOf, columns, setup) {
  syncList(tbody, items, keyOf, (item) => {
    const tr = h("tr", null, columns.map((c) => h("td", { class: c.class })));
    if (setup) setup(tr, item);
    return tr;
  }, (tr, item) => columns.forEach((c, i) => fill(tr.children[i], c.value(item, tr))));
}

const badge = (text, cls) => h("span", { class: "badge " + (cls ?? text) }, text);

let toastTimer;
function toast(message, bad = false) {
  const t = $("toast");
  t.textContent = message;
  t.className = "show" + (bad ? " bad" : "");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.className = bad ? "bad" : ""), 3500);
}

// MARK: - The API

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

const state = {
  key: null,
  section: "sessions",
  sessions: [],
  members: new Map(),        // code -> {members, seq} | {error}
  transcript: null,          // {code, events, nextAfter, hasMore, names}
  runs: [], runLimit: 50, runTotal: 0, selectedRun: null,
  keys: [], usage: new Map(),
  webhooks: [], deliveries: new Map(), deliveryLimit: new Map(), deliveryFilter: new Map(), collapsed: new Set(),
  activity: new Map(), activityNextBefore: undefined, activityFilterKey: "",
  scrapes: [],               // {t, samples, points: {chart: [values]}}
  lastMetricsError: null,
};

function authHeaders() {
  return state.key ? { Authorization: "Bearer " + state.key } : {};
}

async function api(method, path, body) {
  const headers = authHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "network", "the hub cannot be reached (" + e.message + ")");
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) {
    const err = new ApiError(res.status, data?.error?.code ?? String(res.status), data?.error?.message ?? (res.statusText || "request failed"));
    if (res.status === 401) expired(err);
    throw err;
  }
  return data;
}

/** What an error means to the operator. */
function explain(e, what) {
  if (e.status === 403) return `This key may not ${what}: ${e.message}`;
  if (e.status === 429) return `Rate limited: ${e.message}`;
  if (e.status === 0) return e.message;
  return `Could not ${what} (${e.status} ${e.code}): ${e.message}`;
}

const path = (...parts) => "/" + parts.map((p) => encodeURIComponent(p)).join("/");

// MARK: - Sign in and out

async function checkMode() {
  try {
    const mode = await (await fetch("/api/mode", { cache: "no-store" })).json();
    if (mode.open) {
      $("mode-banner").textContent = mode.notice;
      $("mode-banner").hidden = false;
      $("login-open").hidden = false;
    }
    return !!mode.open;
  } catch { return false; }
}

async function signIn(event) {
  event.preventDefault();
  const key = $("key").value.trim();
  $("login-error").textContent = "";
  const open = await checkMode();
  if (!key && !open) { $("login-error").textContent = "Enter the admin key."; return; }
  $("sign-in").disabled = true;
  try {
    // Any API route tells a wrong key (401) from a valid one; a valid key without sessions:read gets 403
    // here and is still let in (each section then says what the key may not do).
    const res = await fetch("/api/sessions", { headers: key ? { Authorization: "Bearer " + key } : {}, cache: "no-store" });
    if (res.status === 401) {
      const body = await res.json().catch(() => null);
      $("login-error").textContent = "Wrong key: the hub does not accept it" + (body?.error?.message ? ` (${body.error.message}).` : ".");
      $("key").select();
      return;
    }
    if (res.status === 429) { $("login-error").textContent = "This key is over its rate limit; try again shortly."; return; }
    if (!res.ok && res.status !== 403) { $("login-error").textContent = `The hub answered ${res.status}; try again.`; return; }
    sessionStorage.setItem(STORAGE_KEY, key);
    $("key").value = "";
    start(key);
  } catch (e) {
    $("login-error").textContent = "The hub cannot be reached: " + e.message;
  } finally {
    $("sign-in").disabled = false;
  }
}

let stopped = false;

/** The key stopped working (revoked, or the hub restarted with another): back to the sign-in form. */
function expired(err) {
  if (stopped) return;
  sessionStorage.setItem(NOTICE_KEY, `Signed out: the hub no longer accepts this key (${err.message}).`);
  signOut();
}

function signOut() {
  stopped = true;
  sessionStorage.removeItem(STORAGE_KEY);
  // A fresh page: nothing read with the key stays in memory or in the DOM.
  location.replace(location.pathname);
}

function showLogin() {
  $("app").hidden = true;
  $("login").hidden = false;
  const notice = sessionStorage.getItem(NOTICE_KEY);
  if (notice) { $("login-error").textContent = notice; sessionStorage.removeItem(NOTICE_KEY); }
  $("key").focus();
}

function start(key) {
  state.key = key;
  $("login").hidden = true;
  $("app").hidden = false;
  const id = /^chk_([^_]+)_/.exec(key || "");
  $("who").textContent = !key ? "open mode, no key" : id ? `API key ${id[1]}` : "operator key";
  buildCharts();
  buildScopeChoices();
  buildWebhookEventChoices();
  const wanted = location.hash.replace(/^#/, "");
  show(SECTIONS.includes(wanted) ? wanted : "sessions");
  scrape();
  setInterval(scrape, METRICS_MS);
  setInterval(() => { if (!document.hidden) refresh(state.section, true); }, REFRESH_MS);
  window.addEventListener("resize", () => state.section === "metrics" && drawCharts());
}

// MARK: - Sections

const SECTIONS = ["sessions", "runs", "keys", "webhooks", "activity", "metrics"];
const busy = new Set();

function show(section) {
  state.section = section;
  for (const s of SECTIONS) {
    $(s).hidden = s !== section;
    $("nav-" + s).classList.toggle("active", s === section);
  }
  history.replaceState(null, "", "#" + section);
  refresh(section);
}

/** Sections this key may not read (403): not polled again until the operator opens them again. */
const forbidden = new Set();

async function refresh(section, auto = false) {
  if (busy.has(section) || stopped || (auto && forbidden.has(section))) return;
  busy.add(section);
  try {
    await LOADERS[section]();
    forbidden.delete(section);
    if (section !== "metrics") setHealth(true);
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) forbidden.add(section);
    if (!(e instanceof ApiError)) console.error(e);
    setHealth(false, e.message);
  } finally {
    busy.delete(section);
  }
}

function setHealth(ok, message) {
  const el = $("state");
  setText(el, ok ? "live · " + new Date().toLocaleTimeString() : "error");
  el.className = "state " + (ok ? "open" : "closed");
  el.title = ok ? "refreshed every few seconds" : message || "";
}

/** Runs `load`, showing its failure in the section's error line (and rethrowing it). */
async function guarded(errorId, what, load) {
  try {
    const out = await load();
    setText($(errorId), "");
    return out;
  } catch (e) {
    setText($(errorId), e instanceof ApiError ? explain(e, what) : String(e.message || e));
    throw e;
  }
}

// MARK: Sessions

async function loadSessions() {
  const data = await guarded("sessions-error", "list sessions", () => api("GET", "/api/sessions"));
  state.sessions = data.sessions || [];
  // Presence of the live sessions someone is in (asking for an empty one would wake it up for nothing).
  const present = state.sessions.filter((s) => s.status === "live" && s.members > 0).slice(0, 50);
  const wanted = new Set(present.map((s) => s.code));
  for (const code of state.members.keys()) if (!wanted.has(code)) state.members.delete(code);
  await Promise.all(present.map(async (s) => {
    try {
      const m = await api("GET", path("api", "sessions", s.code, "members"));
      state.members.set(s.code, { members: m.members || [], seq: m.seq });
    } catch (e) {
      state.members.set(s.code, { error: e.message });
    }
  }));
  renderSessions();
}

function renderSessions() {
  const filter = $("sessions-filter").value, q = $("sessions-search").value.trim().toLowerCase();
  const all = state.sessions;
  const list = all
    .filter((s) => filter === "all" || s.status === filter)
    .filter((s) => !q || s.code.toLowerCase().includes(q) || String(s.title ?? "").toLowerCase().includes(q))
    .sort((a, b) => (a.status === b.status ? 0 : a.status === "live" ? -1 : 1) || (b.created_at ?? 0) - (a.created_at ?? 0));
  const live = all.filter((s) => s.status === "live");
  const people = live.reduce((n, s) => n + (s.members || 0), 0);
  setText($("sessions-summary"), `${live.length} live, ${all.length - live.length} ended · ${people} ${people === 1 ? "person" : "people"} present`);
  $("sessions-empty").hidden = list.length > 0;
  syncTable($("sessions-rows"), list, (s) => s.code, [
    { class: "mono nowrap", value: (s) => s.code },
    { value: (s) => s.title },
    { class: "nowrap", value: (s) => ({
      sig: s.status + (s.end_reason ?? ""),
      build: () => [badge(s.status), s.end_reason ? h("div", { class: "muted", text: s.end_reason }) : null],
    }) },
    { class: "members", value: (s) => membersCell(s) },
    { class: "num", value: (s) => s.events ?? "" },
    { class: "nowrap", value: (s) => formatTime(s.created_at) },
    { class: "act", value: (s) => ({ sig: s.status, build: () => sessionActions(s) }) },
  ], (tr, s) => { tr.dataset.code = s.code; });
  for (const tr of $("sessions-rows").children) tr.classList.toggle("selected", tr.dataset.code === state.transcript?.code);
}

function membersCell(s) {
  if (s.status !== "live") return { sig: "ended", build: () => h("span", { class: "muted", text: "—" }) };
  if (!s.members) return { sig: "nobody", build: () => h("span", { class: "muted", text: "nobody present" }) };
  const m = state.members.get(s.code);
  if (!m) return { sig: "count" + s.members, build: () => h("span", { class: "muted", text: `${s.members} present` }) };
  if (m.error) return { sig: "error" + m.error, build: () => h("span", { class: "error", text: m.error }) };
  const people = m.members;
  return {
    sig: JSON.stringify(people.map((p) => [p.id, p.name, p.color, p.role, p.connections])),
    build: () => people.map((p) => h("span", {
      class: "chip member" + (p.connections > 0 ? "" : " away"), dataset: { member: p.id },
      title: `${p.name} · ${p.role} · ` + (p.connections > 0
        ? `${p.connections} connection${p.connections > 1 ? "s" : ""}` : "reconnecting (in the grace period)"),
    }, colorDot(p.color), h("span", { class: "name", text: p.name }),
    h("small", { text: p.role + (p.connections > 1 ? " ×" + p.connections : p.connections === 0 ? " · away" : "") }))),
  };
}

function colorDot(color) {
  const i = h("i");
  i.style.background = safeColor(color);
  return i;
}

function sessionActions(s) {
  const out = [
    h("button", { class: "secondary btn-sm open-transcript", type: "button", onclick: () => openTranscript(s.code) }, "Transcript"),
    // The replay page takes its credential from the fragment (`#key=`), which never reaches a server log.
    h("a", {
      class: "btn-sm replay-link", target: "_blank", rel: "noopener", title: "Play the session back (opens a new tab)",
      href: `/replay/${encodeURIComponent(s.code)}${state.key ? "#key=" + encodeURIComponent(state.key) : ""}`,
    }, "Playback ↗"),
  ];
  if (s.status === "live") out.push(h("button", { class: "danger btn-sm end-session", type: "button", onclick: () => endSession(s.code) }, "End"));
  return h("div", { class: "actions" }, out);
}

async function endSession(code) {
  if (!confirm(`End session ${code} for everyone? Its members are disconnected and it cannot be joined again.`)) return;
  try {
    await api("POST", path("api", "sessions", code, "end"), { reason: "ended by an operator" });
    toast(`Session ${code} is ending.`);
  } catch (e) {
    toast(explain(e, `end session ${code}`), true);
  }
  setTimeout(() => refresh("sessions"), 300);
}

// The session's detail: its transcript (followed live), its members (with Remove) and share links.
//
// Live: the console's credential (the admin key or an API key) cannot watch a session over /ws: `join`
// admits only a member token, the session's host key or (where allowed) a guest, and `replay` with a key
// plays what is stored and finishes. So the tail reads `transcript?after=LAST` every TAIL_MS and appends
// what was committed since: events exactly as members received them, in seq order, none twice.

let tailTimer = null;

async function openTranscript(code) {
  setLive(false);
  const session = state.sessions.find((s) => s.code === code);
  const ended = session?.status === "ended";
  state.transcript = { code, events: [], nextAfter: 0, hasMore: false, names: new Map(), live: false, loading: false,
    loaded: false, ended, members: null };
  $("transcript").hidden = false;
  setText($("transcript-code"), code);
  $("transcript-rows").replaceChildren();
  $("members-rows").replaceChildren();
  setText($("members-error"), "");
  setText($("member-action-error"), "");
  hideShare();
  renderSessions();
  const t = state.transcript;
  await Promise.all([loadTranscriptPage(), loadMembers()]);
  if (state.transcript !== t) return;
  t.loaded = true;
  // A live session is followed from the start: nothing to click to see what is said next.
  setLive(!ended);
  $("transcript").scrollIntoView({ block: "start", behavior: "smooth" });
}

function closeTranscript() {
  setLive(false);
  state.transcript = null;
  $("transcript").hidden = true;
  renderSessions();
}

function setLive(on) {
  const t = state.transcript;
  clearInterval(tailTimer);
  tailTimer = null;
  if (t) t.live = on;
  if (on) tailTimer = setInterval(tailTick, TAIL_MS);
  $("transcript-live").setAttribute("aria-pressed", String(!!on));
  renderLiveState();
  if (t) renderTranscript();
}

function renderLiveState(error) {
  const el = $("live-state"), t = state.transcript;
  el.classList.toggle("on", !!t?.live && !error);
  setText(el, !t?.live ? "" : error ? "live: retrying" : "live");
  el.title = error || (t?.live ? `following: new events appear within ${TAIL_MS / 1000} s` : "");
}

async function tailTick() {
  const t = state.transcript;
  if (!t || !t.live || stopped || state.section !== "sessions") return;
  const ok = await loadTranscriptPage({ tail: true });
  if (state.transcript !== t) return;
  renderLiveState(ok ? null : $("transcript-error").textContent);
  if (!t.ended) await loadMembers();
}

/** The next page of the transcript (after what is loaded); the tail takes larger pages. Returns whether it worked. */
async function loadTranscriptPage(opts = {}) {
  const t = state.transcript;
  if (!t || t.loading) return true;
  t.loading = true;
  $("transcript-more").disabled = true;
  try {
    const data = await guarded("transcript-error", `read the transcript of ${t.code}`,
      () => api("GET", `${path("api", "sessions", t.code, "transcript")}?after=${t.nextAfter}&limit=${opts.tail ? 200 : 100}`));
    if (state.transcript !== t) return true;   // another transcript was opened meanwhile
    // Only what is new (seq above the last loaded one): a page read twice appends nothing twice.
    const last = t.events.length ? t.events[t.events.length - 1].seq ?? 0 : 0;
    t.events.push(...(data.events || []).filter((e) => e.seq == null || e.seq > last));
    t.nextAfter = data.events?.length ? data.events[data.events.length - 1].seq ?? t.nextAfter : t.nextAfter;
    t.hasMore = typeof data.next === "string";
    renderTranscript();
    return true;
  } catch { return false; /* shown */ } finally {
    t.loading = false;
    $("transcript-more").disabled = false;
  }
}

function renderTranscript() {
  const t = state.transcript;
  // What later events did to chat messages (edits, deletions, redactions): the client package's store.
  const chat = new MessageStore().reset(t.events);
  const rows = t.events.map((e) => describeEvent(e, t.names, chat));
  setText($("transcript-info"), `${t.events.length} event${t.events.length === 1 ? "" : "s"}${t.hasMore ? ", more to load" : ""}`);
  $("transcript-empty").hidden = t.events.length > 0;
  // Loaded to the end: the button asks for what was written since (a live session grows; the tail does that by itself).
  setText($("transcript-more"), t.hasMore ? "Load more" : "Check for newer events");
  $("transcript-foot").hidden = t.live && !t.hasMore;
  const box = $("transcript-rows").closest(".scroll");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  let added = false;
  syncTable($("transcript-rows"), rows, (r) => r.key, [
    { class: "num mono", value: (r) => r.seq ?? "" },
    { class: "nowrap", value: (r) => formatTime(r.ts) },
    { class: "nowrap", value: (r) => r.type },
    { class: "nowrap", value: (r) => r.who },
    { class: "long", value: (r) => r.body },
  ], (tr, r) => {
    tr.dataset.seq = r.seq ?? "";
    tr.dataset.type = r.rawType;
    if (t.loaded) { tr.classList.add("new-event"); added = true; }
  });
  const classes = new Map(rows.map((r) => [String(r.key), r.state]));
  for (const tr of $("transcript-rows").children) {
    const st = classes.get(tr.dataset.k) ?? "";
    if ((tr.dataset.state ?? "") !== st) {
      tr.classList.remove("redacted", "deleted", "edited");
      if (st) tr.classList.add(st);
      tr.dataset.state = st;
    }
  }
  // Following: stay at the newest event when the operator was already looking at the end.
  if (added && atBottom) box.scrollTop = box.scrollHeight;
}

// MARK: Members (of the open session)

async function loadMembers() {
  const t = state.transcript;
  if (!t) return;
  if (t.ended) {
    t.members = [];
    setText($("members-info"), "");
    setText($("members-empty"), "The session has ended: nobody is connected.");
    $("members-empty").hidden = false;
    return;
  }
  try {
    const m = await api("GET", path("api", "sessions", t.code, "members"));
    if (state.transcript !== t) return;
    t.members = m.members || [];
    setText($("members-error"), "");
  } catch (e) {
    if (state.transcript !== t) return;
    setText($("members-error"), explain(e, `list the members of ${t.code}`));
    if (!t.members) return;
  }
  renderMembers();
}

function renderMembers() {
  const t = state.transcript, list = t?.members || [];
  const conns = list.reduce((n, m) => n + (m.connections || 0), 0);
  setText($("members-info"), `${list.length} member${list.length === 1 ? "" : "s"}, ${conns} connection${conns === 1 ? "" : "s"}`);
  setText($("members-empty"), "Nobody is connected.");
  $("members-empty").hidden = list.length > 0;
  syncTable($("members-rows"), list, (m) => m.id, [
    { value: (m) => ({ sig: m.name + m.color, build: () => h("span", { class: "chip" }, colorDot(m.color), h("span", { class: "name", text: m.name })) }) },
    { value: (m) => m.role },
    { class: "num", value: (m) => (m.connections > 0 ? m.connections : "0 (reconnecting)") },
    { value: (m) => m.status ?? "" },
    { class: "act", value: (m) => ({
      sig: m.id,
      build: () => h("button", { class: "danger btn-sm remove-member", type: "button", "aria-label": `Remove ${m.name}`,
        onclick: () => removeMember(t.code, m) }, "Remove"),
    }) },
  ], (tr, m) => { tr.dataset.member = m.id; });
}

async function removeMember(code, m) {
  if (!confirm(`Remove ${m.name} from session ${code}? Their connections are closed.`)) return;
  try {
    await api("DELETE", path("api", "sessions", code, "members", m.id));
    setText($("member-action-error"), "");
    toast(`${m.name} removed from ${code}.`);
  } catch (e) {
    // Its own line: the list's error line is cleared by the next successful read (every 2 s while live).
    const message = explain(e, `remove ${m.name}`);
    setText($("member-action-error"), message);
    toast(message, true);
  }
  await loadMembers();
}

// MARK: Share links

function hideShare() {
  $("share-result").hidden = true;
  setText($("share-url"), "");
  setText($("share-error"), "");
}

async function createShare(event) {
  event.preventDefault();
  const t = state.transcript;
  if (!t) return;
  hideShare();
  $("share-create").disabled = true;
  try {
    const made = await api("POST", path("api", "sessions", t.code, "share"), { ttl_s: Number($("share-ttl").value) });
    if (state.transcript !== t) return;
    setText($("share-url"), new URL(made.url, location.origin).href);
    // expires_at is in seconds (a JWT's exp); the console's times are milliseconds.
    const exp = made.expires_at < 1e12 ? made.expires_at * 1000 : made.expires_at;
    setText($("share-expires"), exp ? `(expires ${formatTime(exp)})` : "");
    $("share-result").hidden = false;
  } catch (e) {
    setText($("share-error"), e instanceof ApiError ? explain(e, "create a share link") : String(e));
  } finally {
    $("share-create").disabled = false;
  }
}

/** One transcript event as a row: type, who and a readable text. `names` maps member ids to names; `chat`
 * (a MessageStore fed the loaded events) has each chat message with its edits, deletion or redaction. */
function describeEvent(e, names, chat = null) {
  const row = { key: e.seq ?? JSON.stringify(e), seq: e.seq, ts: e.ts, type: e.type, rawType: e.type, who: "", body: "", state: "" };
  const sig = String(e.seq);
  const now = e.type === "chat" && e.seq != null ? chat?.get(e.seq) : undefined;
  switch (e.type) {
    case "chat": {
      if (e.from) names.set(e.from.id, e.from.name);
      row.who = e.from?.name ?? (e.kind === "system" ? "system" : "");
      row.type = e.kind && e.kind !== "text" ? `chat · ${e.kind}` : "chat";
      if (e.redacted || now?.redacted) {
        // The store keeps a tombstone; one loaded before the redaction still has its text here: not shown.
        row.state = "redacted";
        row.body = { sig: "redacted", build: () => h("span", { class: "gone", text: "[redacted]" }) };
      } else if (e.deleted || now?.deleted) {
        // The store keeps a tombstone (no text); one loaded before the deletion still has its text here: not shown.
        row.state = "deleted";
        const byHost = (e.deleted_by ?? now?.deletedBy) === "host";
        row.body = { sig: "deleted|" + byHost, build: () => [badge("deleted", "ended"), " ", h("span", { class: "gone", text: byHost ? "by a host" : "" })] };
      } else if (now?.edited) {
        const text = now.text ?? "";
        row.state = "edited";
        row.body = { sig: "edited|" + text, build: () => [text, " ", h("span", { class: "tag", text: "edited" })] };
      } else if (e.kind === "code" && e.code) {
        row.body = { sig, build: () => [e.text ? h("div", { text: e.text }) : null, h("pre", { text: e.code.source ?? "" })] };
      } else if (e.kind === "file" && e.file) {
        row.body = `${e.text ? e.text + " · " : ""}file ${e.file.name ?? ""} (${formatNumber(e.file.size ?? 0)} bytes) ${e.file.url ?? ""}`;
      } else {
        row.body = e.text ?? "";
      }
      break;
    }
    case "presence": {
      const joins = e.joins || [], leaves = e.leaves || [];
      for (const j of joins) names.set(j.id, j.name);
      row.who = [...joins.map((j) => j.name), ...leaves.map((l) => names.get(l.id ?? l) ?? l.id ?? l)].join(", ");
      row.body = [
        ...joins.map((j) => `${j.name} joined (${j.role ?? "member"})`),
        ...leaves.map((l) => `${names.get(l.id ?? l) ?? l.id ?? l} left${l.reason ? " (" + l.reason + ")" : ""}`),
      ].join("; ");
      break;
    }
    case "event":
      row.who = names.get(e.from) ?? e.from ?? "";
      row.type = "event";
      row.body = { sig, build: () => [h("b", { text: e.name ?? "" }), " ", h("span", { class: "mono", text: truncate(JSON.stringify(e.data ?? {}), 300) })] };
      break;
    case "chat_edit":
      row.who = e.from?.name ?? names.get(e.from) ?? "";
      row.type = "edit";
      row.body = { sig: sig + "|" + (e.text ?? ""), build: () => [h("span", { class: "tag", text: `edit of #${e.target}` }), " ",
        e.text ?? (e.deleted ? "(its message was deleted)" : e.redacted ? "(its message was redacted)" : "")] };
      break;
    case "chat_delete":
      row.who = e.from?.name ?? names.get(e.from) ?? "";
      row.type = "delete";
      row.body = `deleted message #${e.target}`;
      break;
    case "redact":
      row.who = e.from?.name ?? names.get(e.from) ?? "";
      row.type = "redact";
      row.body = `redacted by host${e.reason ? ": " + e.reason : ""} (message #${e.target})`;
      break;
    case "run":
      row.who = e.run?.owner ?? "";
      row.body = `run ${e.run?.name || e.run?.id || ""} (${e.run?.id ?? ""}): ${e.event ?? ""}, ${e.run?.status ?? ""}`;
      break;
    default:
      row.body = truncate(JSON.stringify(e), 300);
  }
  return row;
}

// MARK: Runs

async function loadRuns() {
  const q = new URLSearchParams({ limit: String(state.runLimit) });
  if ($("runs-owner").value.trim()) q.set("owner", $("runs-owner").value.trim());
  if ($("runs-status").value) q.set("status", $("runs-status").value);
  const data = await guarded("runs-error", "list runs", () => api("GET", "/api/runs?" + q));
  state.runs = data.runs || [];
  state.runTotal = data.total ?? state.runs.length;
  renderRuns(data.next != null);
  if (state.selectedRun) await loadRunDetail();
}

function dashboardHref(owner) {
  // Not the operator's key: the dashboard puts its credential in the /watch URL (a query string reaches
  // proxies' logs). It asks for a watcher token or key of its own.
  return `/dashboard?owner=${encodeURIComponent(owner)}`;
}

function renderRuns(more) {
  const counts = {};
  for (const r of state.runs) counts[r.status] = (counts[r.status] || 0) + 1;
  setText($("runs-summary"), `${state.runTotal} run${state.runTotal === 1 ? "" : "s"}` +
    (Object.keys(counts).length ? " · " + Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ") : ""));
  $("runs-empty").hidden = state.runs.length > 0;
  $("runs-foot").hidden = !more || state.runLimit >= 500;
  syncTable($("runs-rows"), state.runs, (r) => r.id, [
    { class: "mono", value: (r) => ({
      sig: r.id,
      build: () => h("button", { class: "link mono open-run", type: "button", onclick: () => selectRun(r.id) }, r.id),
    }) },
    { value: (r) => r.name || "" },
    { value: (r) => r.owner },
    { value: (r) => ({ sig: r.status, build: () => badge(r.status) }) },
    { class: "nowrap", value: (r) => `${r.steps_completed ?? 0}/${r.steps_total ?? 0} done${r.steps_failed ? `, ${r.steps_failed} failed` : ""}` },
    { value: (r) => (r.percent != null ? `${r.percent}%${r.message ? " · " + r.message : ""}` : "") },
    { class: "nowrap", value: (r) => formatTime(r.started_at) },
    { class: "nowrap", value: (r) => formatDuration(r.duration_ms) },
    { class: "act", value: (r) => ({
      sig: r.owner,
      build: () => (r.owner ? h("a", { class: "btn-sm dashboard-link", href: dashboardHref(r.owner), target: "_blank",
        rel: "noopener", title: `The live dashboard of ${r.owner}'s runs` }, "Dashboard ↗") : null),
    }) },
  ], (tr, r) => { tr.dataset.run = r.id; });
  for (const tr of $("runs-rows").children) tr.classList.toggle("selected", tr.dataset.run === state.selectedRun);
}

async function selectRun(id) {
  state.selectedRun = id;
  for (const tr of $("runs-rows").children) tr.classList.toggle("selected", tr.dataset.run === id);
  $("run-detail").hidden = false;
  $("run-steps").replaceChildren();
  await loadRunDetail();
  $("run-detail").scrollIntoView({ block: "start", behavior: "smooth" });
}

async function loadRunDetail() {
  const id = state.selectedRun;
  let data;
  try {
    data = await guarded("run-detail-error", `read run ${id}`, () => api("GET", path("api", "runs", id)));
  } catch { return; }
  if (state.selectedRun !== id) return;
  const r = data.run;
  setText($("run-detail-title"), r.name || r.id);
  setText($("run-detail-id"), r.id);
  setText($("run-detail-status"), r.status);
  $("run-detail-status").className = "badge " + r.status;
  $("run-detail-dashboard").href = dashboardHref(r.owner);
  $("run-detail-dashboard").hidden = !r.owner;
  fill($("run-detail-meta"), {
    sig: JSON.stringify([r.owner, r.session, r.started_at, r.ended_at, r.seq, r.log_count, (data.events || []).length]),
    build: () => [["Owner", r.owner], ["Session", r.session || "—"], ["Started", formatTime(r.started_at)],
      ["Ended", r.ended_at ? formatTime(r.ended_at) : "—"], ["Duration", formatDuration(r.duration_ms) || "—"],
      ["Events", `${(data.events || []).length} (seq ${r.seq})`], ["Log lines", r.log_count ?? 0]]
      .map(([k, v]) => h("div", null, h("span", { text: k }), String(v))),
  });
  const pct = r.progress?.percent ?? (r.status === "succeeded" ? 100 : 0);
  $("run-detail-bar").style.width = Math.max(0, Math.min(100, Number(pct) || 0)) + "%";
  setText($("run-detail-progress"), r.progress ? `${r.progress.percent}%${r.progress.message ? " · " + r.progress.message : ""}` : "");
  const steps = (r.steps || []).map((s, i) => ({ ...s, k: i }));
  $("run-steps-empty").hidden = steps.length > 0;
  syncTable($("run-steps"), steps, (s) => s.k, [
    { value: (s) => s.name },
    { value: (s) => ({ sig: s.status, build: () => badge(s.status) }) },
    { class: "nowrap", value: (s) => formatTime(s.started_at) },
    { class: "nowrap", value: (s) => formatDuration(s.duration_ms) },
    { value: (s) => s.error ?? "" },
  ], (tr, s) => { tr.dataset.step = s.name; });
  const logs = r.last_logs || [];
  setText($("run-logs-title"), logs.length ? `Last ${logs.length} of ${r.log_count} log lines` : "No log lines.");
  $("run-logs").hidden = logs.length === 0;
  setText($("run-logs"), logs.join("\n"));
}

// MARK: API keys

function buildWebhookEventChoices() {
  $("webhook-events").replaceChildren(...WEBHOOK_EVENTS.map((ev) =>
    h("label", null, h("input", { type: "checkbox", name: "webhook-event", value: ev }), ev === "*" ? "* (every event)" : ev)));
}

async function createWebhook(event) {
  event.preventDefault();
  const body = { url: $("webhook-url").value.trim(), events: [...document.querySelectorAll("#webhook-events input:checked")].map((c) => c.value) };
  const description = $("webhook-description").value.trim();
  if (description) body.description = description;
  if (!body.url) return setText($("webhook-form-error"), "Give the endpoint a URL.");
  if (!body.events.length) return setText($("webhook-form-error"), "Choose at least one event.");
  await createShowingSecret("webhook", "/api/webhooks", body, "secret", "webhooks", "create the endpoint");
}

/** Creates a key or a webhook endpoint from its form (ids `<kind>-create`, `<kind>-form`, `<kind>-form-error`)
 * and shows its secret once in the `new-<kind>` banner, then refreshes `section`. */
async function createShowingSecret(kind, path, body, secretField, section, doing) {
  $(`${kind}-create`).disabled = true;
  try {
    const made = await api("POST", path, body);
    setText($(`${kind}-form-error`), "");
    setText($(`new-${kind}-id`), made.id);
    setText($(`new-${kind}-secret`), made[secretField]);
    $(`new-${kind}`).hidden = false;
    $(`${kind}-form`).reset();
    $(`new-${kind}`).scrollIntoView({ block: "nearest" });
    refresh(section);
  } catch (e) {
    setText($(`${kind}-form-error`), e instanceof ApiError ? explain(e, doing) : String(e));
  } finally {
    $(`${kind}-create`).disabled = false;
  }
}

function buildScopeChoices() {
  $("key-scopes").replaceChildren(...SCOPES.map((s) =>
    h("label", null, h("input", { type: "checkbox", name: "scope", value: s }), s)));
}

async function loadKeys() {
  const data = await guarded("keys-error", "list API keys", () => api("GET", "/api/keys"));
  state.keys = data.keys || [];
  const active = state.keys.filter((k) => k.active).slice(0, 100);
  await Promise.all(active.map(async (k) => {
    try { state.usage.set(k.id, await api("GET", path("api", "keys", k.id, "usage"))); } catch (e) { state.usage.set(k.id, { error: e.message }); }
  }));
  renderKeys();
}

function renderKeys() {
  const list = [...state.keys].sort((a, b) => (a.active === b.active ? 0 : a.active ? -1 : 1) || (b.created_at ?? 0) - (a.created_at ?? 0));
  const active = list.filter((k) => k.active).length;
  setText($("keys-summary"), `${active} active, ${list.length - active} revoked`);
  $("keys-empty").hidden = list.length > 0;
  syncTable($("keys-rows"), list, (k) => k.id, [
    { class: "mono nowrap", value: (k) => k.id },
    { value: (k) => k.name },
    { value: (k) => ({ sig: JSON.stringify([k.scopes, k.runs, k.owners]), build: () => [
      ...(k.scopes || []).map((s) => h("span", { class: "tag", text: s })),
      k.runs ? h("div", { class: "muted", text: "runs: " + k.runs.join(", ") }) : null,
      k.owners ? h("div", { class: "muted", text: "owners: " + k.owners.join(", ") }) : null] }) },
    { value: (k) => usageCell(k) },
    { class: "nowrap", value: (k) => formatTime(k.created_at) },
    { class: "nowrap", value: (k) => ({
      sig: String(k.active),
      build: () => [badge(k.active ? "active" : "revoked"),
        k.revoked_at ? h("div", { class: "muted", text: formatTime(k.revoked_at) }) : null],
    }) },
    { class: "act", value: (k) => ({
      sig: String(k.active),
      build: () => (k.active
        ? h("button", { class: "danger btn-sm revoke", type: "button", onclick: () => revokeKey(k.id, k.name) }, "Revoke")
        : null),
    }) },
  ], (tr, k) => { tr.dataset.keyId = k.id; });
}

function usageCell(k) {
  if (!k.active) return { sig: "revoked", build: () => h("span", { class: "muted", text: "—" }) };
  const u = state.usage.get(k.id);
  if (!u) return { sig: "none", build: () => h("span", { class: "muted", text: "…" }) };
  if (u.error) return { sig: "e" + u.error, build: () => h("span", { class: "error", text: u.error }) };
  const rows = [["minute", u.minute, k.per_minute], ["hour", u.hour, k.per_hour], ["month", u.month, k.per_month]];
  return {
    sig: JSON.stringify(rows),
    build: () => h("div", { class: "usage" }, rows.flatMap(([label, used, limit]) => {
      const meter = h("div", { class: "meter" }, h("div"));
      meter.firstChild.style.width = Math.min(100, limit ? (100 * used) / limit : 0) + "%";
      return [h("span", { text: label }), h("span", null, h("b", { class: "usage-" + label, text: String(used ?? 0) }), ` / ${formatNumber(limit)}`), meter];
    })),
  };
}

async function createKey(event) {
  event.preventDefault();
  const body = { name: $("key-name").value.trim(), scopes: [...document.querySelectorAll('#key-scopes input:checked')].map((c) => c.value) };
  if (!body.name) return setText($("key-form-error"), "Give the key a name.");
  if (!body.scopes.length) return setText($("key-form-error"), "Choose at least one scope.");
  const runs = $("key-runs").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (runs.length) body.runs = runs;
  const owners = $("key-owners").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (owners.length) body.owners = owners;
  for (const [field, id] of [["per_minute", "key-per-minute"], ["per_hour", "key-per-hour"], ["per_month", "key-per-month"]]) {
    if ($(id).value) body[field] = Number($(id).value);
  }
  await createShowingSecret("key", "/api/keys", body, "key", "keys", "create keys");
}

async function copySecret(id = "new-key-secret") {
  const text = $(id).textContent;
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied.");
  } catch {
    // No clipboard access (plain http on another host): select it for Ctrl+C.
    getSelection().selectAllChildren($(id));
    toast("Selected: press Ctrl+C to copy.");
  }
}

async function revokeKey(id, name) {
  if (!confirm(`Revoke key ${id} (${name})? Every request and socket using it is refused at once.`)) return;
  try {
    await api("DELETE", path("api", "keys", id));
    toast(`Key ${id} revoked.`);
  } catch (e) {
    toast(explain(e, `revoke key ${id}`), true);
  }
  refresh("keys");
}

// MARK: Webhooks

async function loadWebhooks() {
  const data = await guarded("webhooks-error", "list webhooks", () => api("GET", "/api/webhooks"));
  state.webhooks = data.webhooks || [];
  // The list leaves out each endpoint's outbox depth (`pending`): only the endpoint's own GET has it.
  await Promise.all([
    ...state.webhooks.map(async (w) => {
      try { w.pending = (await api("GET", path("api", "webhooks", w.id))).pending; } catch { /* left out */ }
    }),
    ...state.webhooks.filter((w) => !state.collapsed.has(w.id)).map((w) => loadDeliveries(w.id)),
  ]);
  renderWebhooks();
}

async function loadDeliveries(id) {
  const q = new URLSearchParams({ limit: String(state.deliveryLimit.get(id) ?? 20) });
  if (state.deliveryFilter.get(id)) q.set("status", state.deliveryFilter.get(id));
  try {
    const data = await api("GET", `${path("api", "webhooks", id, "deliveries")}?${q}`);
    state.deliveries.set(id, { rows: data.deliveries || [], more: data.next != null });
  } catch (e) {
    state.deliveries.set(id, { rows: state.deliveries.get(id)?.rows || [], error: explain(e, "read deliveries") });
  }
}

function renderWebhooks() {
  const list = state.webhooks;
  const disabled = list.filter((w) => !w.active).length;
  setText($("webhooks-summary"), `${list.length} endpoint${list.length === 1 ? "" : "s"}${disabled ? `, ${disabled} disabled` : ""}`);
  $("webhooks-empty").hidden = list.length > 0;
  syncList($("webhooks-list"), list, (w) => w.id, makeWebhookCard, updateWebhookCard);
}

function makeWebhookCard(w) {
  const id = w.id;
  const filter = h("select", { class: "delivery-filter", "aria-label": "Deliveries", onchange: (e) => {
    state.deliveryFilter.set(id, e.target.value); reloadDeliveries(id);
  } }, ["", "pending", "delivered", "failed"].map((s) => h("option", { value: s }, s ? s : "all deliveries")));
  const toggle = h("button", { class: "secondary btn-sm toggle-deliveries", type: "button", onclick: () => {
    if (state.collapsed.has(id)) state.collapsed.delete(id); else state.collapsed.add(id);
    reloadDeliveries(id);
  } });
  const card = h("div", { class: "box wh", dataset: { webhook: id } },
    h("div", { class: "box-head" },
      h("h3", { class: "mono url" }), h("span", { class: "state-badge" }),
      h("span", { class: "spacer" }),
      h("button", { class: "secondary btn-sm send-test", type: "button", onclick: () => sendTest(id) }, "Send test"),
      h("button", { class: "secondary btn-sm activate", type: "button", onclick: () => setActive(id) })),
    h("div", { class: "box-body" }, h("div", { class: "meta" }), h("div", { class: "error problem", style: "margin-top:6px" })),
    h("div", { class: "box-head deliveries-head", style: "border-top:1px solid var(--line)" },
      h("b", { text: "Recent deliveries" }), h("span", { class: "muted delivery-count" }), h("span", { class: "spacer" }), filter, toggle),
    h("div", { class: "error deliveries-error", style: "padding:0 14px" }),
    h("div", { class: "scroll deliveries-body" },
      h("table", { class: "tbl compact deliveries" }, h("thead", null, h("tr", null,
        ["#", "Event", "Webhook-id", "Status", "Tries", "HTTP", "Took", "Last error", "Created", ""].map((t) => h("th", { text: t })))),
      h("tbody")),
      h("p", { class: "empty no-deliveries", text: "No deliveries yet." })),
    h("div", { class: "box-body more-deliveries" }, h("button", { class: "secondary btn-sm", type: "button", onclick: () => {
      state.deliveryLimit.set(id, Math.min(1000, (state.deliveryLimit.get(id) ?? 20) + 50)); reloadDeliveries(id);
    } }, "Show more")));
  return card;
}

function updateWebhookCard(card, w) {
  const q = (sel) => card.querySelector(sel);
  setText(q(".url"), w.url);
  fill(q(".state-badge"), { sig: `${w.active}|${!!w.failing_since}`, build: () => badge(!w.active ? "disabled" : w.failing_since ? "failing" : "active") });
  setText(q(".activate"), w.active ? "Disable" : "Enable");
  fill(q(".meta"), {
    sig: JSON.stringify([w.id, w.events, w.description, w.max_attempts, w.timeout_s, w.created_at, w.failing_since,
      Object.keys(w.headers || {}), w.pending]),
    build: () => [["Id", w.id], ["Events", (w.events || []).join(", ")], ["Description", w.description || "—"],
      ["Pending", w.pending ?? "—"],
      ["Attempts / timeout", `${w.max_attempts} × ${w.timeout_s} s`], ["Created", formatTime(w.created_at)],
      ["Failing since", w.failing_since ? formatTime(w.failing_since) : "—"],
      ["Own headers", Object.keys(w.headers || {}).join(", ") || "—"]]
      .map(([k, v]) => h("div", null, h("span", { text: k }), String(v))),
  });
  setText(q(".problem"), w.disabled_reason ? "Disabled: " + w.disabled_reason : "");
  const collapsed = state.collapsed.has(w.id);
  setText(q(".toggle-deliveries"), collapsed ? "Show" : "Hide");
  q(".deliveries-body").hidden = collapsed;
  q(".delivery-filter").hidden = collapsed;
  const d = state.deliveries.get(w.id) || { rows: [] };
  setText(q(".deliveries-error"), collapsed ? "" : d.error || "");
  setText(q(".delivery-count"), collapsed ? "" : `${d.rows.length} shown`);
  q(".no-deliveries").hidden = d.rows.length > 0;
  q(".more-deliveries").hidden = collapsed || !d.more;
  if (collapsed) return;
  syncTable(q("tbody"), d.rows, (r) => r.id, [
    { class: "num mono", value: (r) => r.id },
    { class: "nowrap", value: (r) => r.event },
    { class: "mono", value: (r) => r.webhook_id },
    { value: (r) => ({ sig: r.status, build: () => badge(r.status) }) },
    { class: "num", value: (r) => r.attempts },
    { class: "num", value: (r) => r.response_status ?? "" },
    { class: "nowrap", value: (r) => (r.duration_ms != null ? `${r.duration_ms} ms` : "") },
    { class: "long last-error", value: (r) => r.last_error ?? "" },
    { class: "nowrap", value: (r) => {
      const then = r.status === "pending" ? (r.next_attempt ? "next try " + formatTime(r.next_attempt) : "")
        : r.delivered_at ? "done " + formatTime(r.delivered_at) : "";
      return { sig: formatTime(r.created_at) + "|" + then, build: () => [formatTime(r.created_at), then ? h("div", { class: "muted", text: then }) : null] };
    } },
    { class: "act", value: (r) => ({ sig: r.status, build: () => h("button", {
      class: "secondary btn-sm redeliver", type: "button", disabled: r.status === "pending",
      title: r.status === "pending" ? "Already queued" : "Send this delivery again (the same webhook-id: receivers deduplicate on it)",
      onclick: () => redeliver(w.id, r.id),
    }, "Redeliver") }) },
  ], (tr, r) => { tr.dataset.delivery = r.id; });
}

async function reloadDeliveries(id) {
  if (!state.collapsed.has(id)) await loadDeliveries(id);
  renderWebhooks();
}

async function redeliver(webhook, delivery) {
  try {
    await api("POST", path("api", "webhooks", webhook, "deliveries", String(delivery), "retry"));
    toast(`Delivery ${delivery} queued again.`);
  } catch (e) {
    toast(explain(e, `redeliver ${delivery}`), true);
  }
  await reloadDeliveries(webhook);
  setTimeout(() => reloadDeliveries(webhook), 1000);
}

async function sendTest(id) {
  try {
    const d = await api("POST", path("api", "webhooks", id, "test"));
    toast(`Test delivery ${d.id} queued.`);
  } catch (e) {
    toast(explain(e, "send a test"), true);
  }
  await reloadDeliveries(id);
  setTimeout(() => reloadDeliveries(id), 1000);
}

async function setActive(id) {
  const w = state.webhooks.find((x) => x.id === id);
  if (!w) return;
  if (w.active && !confirm(`Disable the webhook to ${w.url}? Events committed while it is disabled are not queued for it.`)) return;
  try {
    await api("PATCH", path("api", "webhooks", id), { active: !w.active });
    toast(w.active ? "Webhook disabled." : "Webhook enabled: what was pending is sent now.");
  } catch (e) {
    toast(explain(e, "change the webhook"), true);
  }
  refresh("webhooks");
}

// MARK: Activity

function activityQuery() {
  const q = new URLSearchParams({ limit: "100" });
  const session = $("activity-session").value.trim(), actor = $("activity-actor").value.trim();
  if (session) q.set("session", session);
  if (actor) q.set("actor", actor);
  return q;
}

async function loadActivity() {
  const q = activityQuery();
  const filterKey = q.toString();
  if (filterKey !== state.activityFilterKey) { state.activity.clear(); state.activityNextBefore = undefined; state.activityFilterKey = filterKey; }
  const data = await guarded("activity-error", "read the activity log", () => api("GET", "/api/activity?" + q));
  if (state.activityFilterKey !== filterKey) return;
  for (const a of data.activity || []) state.activity.set(a.id, a);
  if (state.activityNextBefore === undefined) state.activityNextBefore = data.next ?? null;
  renderActivity();
}

async function loadOlderActivity() {
  if (state.activityNextBefore == null) return;
  const q = activityQuery();
  q.set("cursor", String(state.activityNextBefore));
  try {
    const data = await guarded("activity-error", "read the activity log", () => api("GET", "/api/activity?" + q));
    for (const a of data.activity || []) state.activity.set(a.id, a);
    state.activityNextBefore = data.next ?? null;
    renderActivity();
  } catch { /* shown */ }
}

function renderActivity() {
  const action = $("activity-action").value.trim().toLowerCase();
  const list = [...state.activity.values()].sort((a, b) => b.id - a.id)
    .filter((a) => !action || a.action.toLowerCase().includes(action));
  setText($("activity-summary"), `${list.length} entr${list.length === 1 ? "y" : "ies"} loaded`);
  $("activity-empty").hidden = list.length > 0;
  $("activity-foot").hidden = state.activityNextBefore == null;
  syncTable($("activity-rows"), list, (a) => a.id, [
    { class: "nowrap", value: (a) => formatTime(a.ts) },
    { class: "nowrap", value: (a) => a.actor },
    { class: "nowrap", value: (a) => ({ sig: a.action, build: () => h("span", { class: "tag", text: a.action }) }) },
    { class: "mono", value: (a) => a.target ?? "" },
    { class: "mono nowrap", value: (a) => a.session ?? "" },
    { class: "mono nowrap", value: (a) => a.address ?? "" },
    { class: "long", value: (a) => a.details ?? "" },
  ], (tr, a) => { tr.dataset.action = a.action; });
}

// MARK: Metrics

const BLUE = "#4363d8", ORANGE = "#e6862a", GREEN = "#2e9d57", PURPLE = "#8a4bd8";
const CHARTS = [
  { id: "connections", title: "Connections open", kind: "gauge", series: [{ label: "open", metric: "collabhub_connections_open", color: BLUE }] },
  { id: "messages", title: "Messages per second", kind: "rate", series: [
    { label: "in", metric: "collabhub_messages_in_total", color: BLUE }, { label: "out", metric: "collabhub_messages_out_total", color: ORANGE }] },
  { id: "durable", title: "Durable events per second", kind: "rate", series: [{ label: "committed", metric: "collabhub_durable_events_total", color: GREEN }] },
  { id: "commit", title: "Commit latency", kind: "latency", metric: "collabhub_commit_latency_seconds" },
  { id: "delivery", title: "Delivery latency", kind: "latency", metric: "collabhub_delivery_latency_seconds" },
  { id: "loop", title: "Loop iteration", kind: "latency", metric: "collabhub_loop_iteration_seconds" },
  { id: "http", title: "HTTP request duration (all routes)", kind: "latency", metric: "collabhub_http_request_duration_seconds" },
  { id: "webhook", title: "Webhook delivery", kind: "latency", metric: "collabhub_webhook_delivery_seconds" },
];
for (const c of CHARTS) if (c.kind === "latency") c.series = [{ label: "p50", color: BLUE }, { label: "p99", color: PURPLE }];

const COUNTERS = [
  ["Connections accepted", "collabhub_connections_total"], ["WebSocket handshakes", "collabhub_handshakes_total"],
  ["Handshakes refused", "collabhub_handshakes_failed_total"], ["HTTP requests", "collabhub_http_requests_total"],
  ["Durable events", "collabhub_durable_events_total"], ["Store failures", "collabhub_store_failures_total"],
  ["Rate limited", "collabhub_rate_limited_total"], ["Slow consumers cut off", "collabhub_slow_consumer_disconnects_total"],
  ["Ephemeral dropped", "collabhub_ephemeral_dropped_total"], ["Ping timeouts", "collabhub_ping_timeouts_total"],
  ["HTTP errors", "collabhub_http_errors_total"], ["Webhooks delivered", 'collabhub_webhook_deliveries_total{outcome="delivered"}'],
  ["Webhooks failed", 'collabhub_webhook_deliveries_total{outcome="failed"}'], ["Webhooks retried", 'collabhub_webhook_deliveries_total{outcome="retried"}'],
  ["Loop lag", "collabhub_loop_lag_seconds"], ["Threads", "collabhub_threads"],
];

function buildCharts() {
  $("charts").replaceChildren(...CHARTS.map((c) => h("div", {
    class: "chart nodata", id: "chart-" + c.id, dataset: { metric: c.metric || c.series.map((s) => s.metric).join(" ") },
  },
    h("div", { class: "top" }, h("h3", { text: c.title }), h("div", { class: "reading", id: "reading-" + c.id, text: "no data" })),
    h("div", { class: "legend" }, c.series.map((s) => { const i = h("i"); i.style.background = s.color; return [i, s.label]; })),
    h("canvas", { id: "canvas-" + c.id, height: "150" }))));
}

let scraping = false;

/** Set when the key may not read /metrics (403): scraping stops rather than being refused every 2 s. */
let metricsForbidden = false;

async function scrape() {
  if (stopped || scraping || metricsForbidden) return;
  scraping = true;
  try { await scrapeOnce(); } finally { scraping = false; }
}

async function scrapeOnce() {
  let text;
  try {
    const res = await fetch("/metrics", { headers: authHeaders(), cache: "no-store" });
    text = await res.text();
    if (!res.ok) {
      let message = text;
      try { message = JSON.parse(text).error.message; } catch { /* plain text */ }
      const e = new ApiError(res.status, String(res.status), message);
      if (res.status === 401) return expired(e);
      if (res.status === 403) metricsForbidden = true;
      throw e;
    }
  } catch (e) {
    state.lastMetricsError = e instanceof ApiError ? explain(e, "read /metrics") : "The hub cannot be reached: " + e.message;
    if (state.section === "metrics") { setText($("metrics-error"), state.lastMetricsError); setHealth(false, state.lastMetricsError); }
    return;
  }
  state.lastMetricsError = null;
  const samples = parsePrometheus(text);
  const now = Date.now();
  const record = { t: now, samples, values: new Map(), hists: new Map(), points: {} };
  for (const c of CHARTS) {
    if (c.kind === "latency") record.hists.set(c.metric, histogram(samples, c.metric));
    else for (const s of c.series) record.values.set(s.metric, total(samples, s.metric));
  }
  const history = state.scrapes;
  const prev = history[history.length - 1];
  for (const c of CHARTS) {
    if (c.kind === "gauge") record.points[c.id] = c.series.map((s) => record.values.get(s.metric));
    else if (c.kind === "rate") {
      record.points[c.id] = c.series.map((s) => {
        const a = prev?.values.get(s.metric), b = record.values.get(s.metric);
        if (a == null || b == null || b < a) return null;
        return (b - a) / ((now - prev.t) / 1000);
      });
    } else {
      const cur = record.hists.get(c.metric);
      const back = history[Math.max(0, history.length - HISTOGRAM_WINDOW)];
      const delta = back ? histogramDelta(cur, back.hists.get(c.metric)) : null;
      record.points[c.id] = delta && delta.count > 0 ? [quantile(0.5, delta.buckets), quantile(0.99, delta.buckets)] : [null, null];
    }
  }
  history.push(record);
  while (history.length && history[0].t < now - METRICS_WINDOW_MS - 10_000) history.shift();
  if (state.section === "metrics") { setText($("metrics-error"), ""); drawCharts(); setHealth(true); }
}

function drawCharts() {
  const history = state.scrapes;
  const last = history[history.length - 1];
  if (!last) return;
  for (const c of CHARTS) {
    const card = $("chart-" + c.id), reading = $("reading-" + c.id);
    // The reading: text parts, the numbers as {b} (shown bold).
    let present, parts, primary = null;
    if (c.kind === "latency") {
      const hist = last.hists.get(c.metric);
      present = !!hist;
      const [p50, p99] = last.points[c.id];
      if (!hist) parts = ["no data"];
      else if (p50 != null) { parts = ["p50 ", { b: formatSeconds(p50) }, " · p99 ", { b: formatSeconds(p99) }]; primary = p50; }
      else if (hist.count > 0) {
        const a = quantile(0.5, hist.buckets), b = quantile(0.99, hist.buckets);
        parts = [`idle · since start (${formatNumber(hist.count)}): p50 `, { b: formatSeconds(a) }, " · p99 ", { b: formatSeconds(b) }];
        primary = a;
      } else parts = ["no observations yet"];
    } else {
      const values = last.points[c.id];
      present = c.series.some((s) => last.values.get(s.metric) != null);
      if (!present) parts = ["no data"];
      else if (values.every((v) => v == null)) parts = ["measuring…"];
      else {
        parts = c.series.flatMap((s, i) => [i ? " · " : "", c.series.length > 1 ? s.label + " " : "",
          { b: formatNumber(values[i]) + (c.kind === "rate" ? "/s" : "") }]);
        primary = values.find((v) => v != null);
      }
    }
    card.classList.toggle("nodata", !present);
    const text = parts.map((p) => (typeof p === "string" ? p : p.b)).join("");
    if (reading.textContent !== text) reading.replaceChildren(...parts.map((p) => (typeof p === "string" ? p : h("b", { text: p.b }))));
    if (primary != null) reading.dataset.value = String(primary); else delete reading.dataset.value;
    drawChart($("canvas-" + c.id), c, history, present);
  }
  renderCounters(last.samples);
}

function drawChart(canvas, chart, history, present) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 360, ht = canvas.clientHeight || 150;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(ht * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(ht * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, ht);
  const left = 56, right = 8, top = 8, bottom = 20;
  const now = history[history.length - 1].t;
  const x = (t) => left + (w - left - right) * (1 - (now - t) / METRICS_WINDOW_MS);
  const visible = history.filter((r) => now - r.t <= METRICS_WINDOW_MS);
  let max = 0, points = 0;
  for (const r of visible) for (const v of r.points[chart.id] || []) if (v != null && Number.isFinite(v)) { max = Math.max(max, v); points++; }
  canvas.dataset.points = String(points);
  const step = max > 0 ? niceCeil(max / 4) : chart.kind === "latency" ? 0.001 : 1;
  const lines = Math.max(1, Math.ceil(max / step - 1e-9));
  const yMax = step * lines;
  const y = (v) => top + (ht - top - bottom) * (1 - v / yMax);
  const label = (v) => (chart.kind === "latency" ? formatSeconds(v) : formatNumber(v) + (chart.kind === "rate" && v ? "/s" : ""));
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  for (let k = 0; k <= lines; k++) {
    const v = step * k, yy = Math.round(y(v)) + 0.5;
    ctx.strokeStyle = k === 0 ? "#cfd4e0" : "#eceef4";
    ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(w - right, yy); ctx.stroke();
    ctx.fillStyle = "#6b7385"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
    if (present) ctx.fillText(label(v), left - 6, yy);
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (const [secs, text] of [[180, "-3 min"], [120, "-2 min"], [60, "-1 min"], [0, "now"]]) {
    const xx = x(now - secs * 1000);
    ctx.textAlign = secs === 0 ? "right" : secs === 180 ? "left" : "center";
    ctx.fillText(text, secs === 0 ? w - right : xx, ht - bottom + 5);
  }
  if (!present) {
    ctx.fillStyle = "#6b7385"; ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.font = "13px system-ui, sans-serif";
    ctx.fillText("no data: not in this hub's /metrics", left + (w - left - right) / 2, top + (ht - top - bottom) / 2);
    return;
  }
  chart.series.forEach((s, i) => {
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = 1.8; ctx.lineJoin = "round";
    let drawing = false;
    const pts = visible.map((r) => ({ t: r.t, v: (r.points[chart.id] || [])[i] }));
    ctx.beginPath();
    pts.forEach((p, j) => {
      if (p.v == null || !Number.isFinite(p.v)) { drawing = false; return; }
      const px = x(p.t), py = y(p.v);
      if (drawing) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      drawing = true;
      const lone = (j === 0 || pts[j - 1].v == null) && (j === pts.length - 1 || pts[j + 1].v == null);
      if (lone) { ctx.stroke(); ctx.beginPath(); ctx.arc(px, py, 2.2, 0, 2 * Math.PI); ctx.fill(); ctx.beginPath(); ctx.moveTo(px, py); }
    });
    ctx.stroke();
  });
}

function renderCounters(samples) {
  const value = (spec) => {
    const m = /^([^{]+)(?:\{(\w+)="([^"]*)"\})?$/.exec(spec);
    let sum = null;
    for (const s of samples) if (s.name === m[1] && (!m[2] || s.labels[m[2]] === m[3])) sum = (sum ?? 0) + s.value;
    return sum;
  };
  const rows = COUNTERS.map(([label, spec]) => ({ label, spec, v: value(spec) })).filter((r) => r.v != null);
  syncList($("counters"), rows, (r) => r.spec, (r) => h("div", null, h("span", { text: r.label }), h("b")), (el, r) => {
    setText(el.lastChild, r.spec === "collabhub_loop_lag_seconds" ? formatSeconds(r.v) : formatNumber(r.v));
  });
}

const LOADERS = {
  sessions: loadSessions,
  runs: loadRuns,
  keys: loadKeys,
  webhooks: loadWebhooks,
  activity: loadActivity,
  metrics: async () => { if (state.lastMetricsError) setText($("metrics-error"), state.lastMetricsError); drawCharts(); },
};

// MARK: - Wiring

function init() {
  window.adminConsole = { parsePrometheus, histogram, histogramDelta, quantile, total, state };
  $("login-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  for (const a of document.querySelectorAll("#nav a")) a.addEventListener("click", (e) => { e.preventDefault(); show(a.dataset.section); });
  $("sessions-filter").addEventListener("change", renderSessions);
  $("sessions-search").addEventListener("input", renderSessions);
  $("transcript-more").addEventListener("click", loadTranscriptPage);
  $("transcript-reload").addEventListener("click", () => state.transcript && openTranscript(state.transcript.code));
  $("transcript-close").addEventListener("click", closeTranscript);
  $("transcript-live").addEventListener("click", () => state.transcript && setLive(!state.transcript.live));
  $("share-form").addEventListener("submit", createShare);
  $("share-copy").addEventListener("click", () => copySecret("share-url"));
  $("share-done").addEventListener("click", hideShare);
  $("webhook-form").addEventListener("submit", createWebhook);
  $("new-webhook-copy").addEventListener("click", () => copySecret("new-webhook-secret"));
  $("new-webhook-done").addEventListener("click", () => { $("new-webhook").hidden = true; setText($("new-webhook-secret"), ""); setText($("new-webhook-id"), ""); });
  let runFilterTimer;
  $("runs-owner").addEventListener("input", () => { clearTimeout(runFilterTimer); runFilterTimer = setTimeout(() => refresh("runs"), 300); });
  $("runs-status").addEventListener("change", () => refresh("runs"));
  $("runs-more").addEventListener("click", () => { state.runLimit = Math.min(500, state.runLimit + 50); refresh("runs"); });
  $("run-detail-close").addEventListener("click", () => {
    state.selectedRun = null;
    $("run-detail").hidden = true;
    renderRuns(!$("runs-foot").hidden);
  });
  $("key-form").addEventListener("submit", createKey);
  $("new-key-copy").addEventListener("click", () => copySecret("new-key-secret"));
  $("new-key-done").addEventListener("click", () => { $("new-key").hidden = true; setText($("new-key-secret"), ""); setText($("new-key-id"), ""); });
  let activityTimer;
  for (const id of ["activity-session", "activity-actor"]) {
    $(id).addEventListener("input", () => { clearTimeout(activityTimer); activityTimer = setTimeout(() => refresh("activity"), 300); });
  }
  $("activity-action").addEventListener("input", renderActivity);
  $("activity-more").addEventListener("click", loadOlderActivity);

  // A key handed over in the fragment (`/admin#key=...`, like the other pages) is taken and removed from the URL.
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (fragment.get("key")) {
    sessionStorage.setItem(STORAGE_KEY, fragment.get("key"));
    history.replaceState(null, "", location.pathname);
  }
  checkMode();
  const saved = sessionStorage.getItem(STORAGE_KEY);
  if (saved !== null) start(saved); else showLogin();
}

if (typeof document !== "undefined") init();
