// pages.js: what the hub's own pages share (served at /pages.js): notices that stay until the person acts
// on them, copying to the clipboard, reading a token's claims. Not part of the client API (/client.js).

/** An element with a class and text (never markup: what comes from the wire is shown as text). */
export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * Shows a notice in `box` (an element with role="alert") until the person acts on it: `title` (what
 * happened), `said` (the hub's own words), `next` (what to do now), `actions` (`{label, href}` links or
 * `{label, onClick}` buttons) and, when `dismissible`, a Dismiss button. `kind`: "error" or "info".
 * Returns a function that clears it.
 */
export function showNotice(box, { title, said, next, actions = [], dismissible = false, kind = "error" }) {
  const clear = () => { box.replaceChildren(); box.hidden = true; delete box.dataset.kind; };
  const parts = [el("strong", "", title)];
  if (next) parts.push(el("p", "next", next));
  if (said && said !== title) parts.push(el("p", "said", `The hub said: “${said}”`));
  const row = el("div", "actions");
  for (const a of actions) {
    if (a.href) { const link = el("a", "", a.label); link.href = a.href; row.append(link); }
    else { const b = el("button", "secondary", a.label); b.type = "button"; b.onclick = a.onClick; row.append(b); }
  }
  if (dismissible) {
    const b = el("button", "secondary", "Dismiss"); b.type = "button"; b.dataset.action = "dismiss";
    b.onclick = clear; row.append(b);
  }
  if (row.childElementCount) parts.push(row);
  box.replaceChildren(...parts);
  box.className = "notice-box" + (kind === "info" ? " info" : "");
  box.dataset.kind = kind;
  box.hidden = false;
  return clear;
}

/** Copies `text` to the clipboard; false when the browser does not allow it (the caller shows it instead). */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(text); return true; }
  } catch { /* not allowed: fall back */ }
  try {
    const area = el("textarea"); area.value = text; area.setAttribute("readonly", "");
    area.style.position = "fixed"; area.style.opacity = "0";
    document.body.append(area); area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  } catch { return false; }
}

/** The claims of a JWT (not verified: only to decide what the page offers; the hub decides what it allows). */
export function tokenClaims(token) {
  try {
    const part = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch { return null; }
}

/** Whether a watcher token's `channels` (exact names, or prefixes ending in `*`) cover `channel`. */
export function channelsCover(channels, channel) {
  return Array.isArray(channels) && channels.some((c) =>
    typeof c === "string" && (c.endsWith("*") ? channel.startsWith(c.slice(0, -1)) : c === channel));
}
