// @collabhub/react against a live hub (run by test_js_sdk.py): a component using every hook is rendered with
// Debian's react-test-renderer; a second client (Bob, plain collabhub over ws) joins, moves, chats and sets
// his presence, a backend publishes a run: the rendered output follows each.
import assert from "node:assert/strict";
import React from "react";
import TestRenderer from "react-test-renderer";
import WebSocket from "ws";
import { CollabClient } from "collabhub";
import { CollabHub, memberToken, watcherToken } from "collabhub/server";
import { RoomProvider, useChat, useCursors, useMyPresence, useOthers, useRoom, useRun } from "@collabhub/react";

globalThis.IS_REACT_ACT_ENVIRONMENT = true;
const { act } = TestRenderer;
const h = React.createElement;
const { HUB, ADMIN, SECRET } = process.env;
const WS = HUB.replace(/^http/, "ws");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const hub = new CollabHub({ url: HUB, apiKey: ADMIN });
const { code } = await hub.createSession({ title: "react" });
const token = (sub, role) => memberToken({ secret: SECRET, sub, session: code, role, name: sub === "u-ann" ? "Ann" : "Bob" });
const RUN = "react-run-1";

let chat = null;      // the hook's last value, to act through it
let presence = null;
let cursorsApi = null;
function Status() {
  const { state, you } = useRoom();
  return h("p", { id: "status" }, `state:${state} you:${you ? you.name : "-"}`);
}
function Others() {
  const others = useOthers();
  return h("ul", { id: "others" }, others.map((m) => h("li", { key: m.id }, `${m.name}/${m.status ?? "active"}`)));
}
function Me() {
  const [me, setMe] = useMyPresence();
  presence = setMe;
  return h("p", { id: "me" }, `me:${me.status}`);
}
function Chat() {
  chat = useChat();
  return h("div", null,
    h("ol", { id: "chat" }, chat.messages.map((m) =>
      h("li", { key: m.key }, `${m.from ? m.from.name : "?"}:${m.deleted ? "(deleted)" : m.text}${m.pending ? " (sending)" : ""}${m.edited ? " (edited)" : ""}`))),
    h("p", { id: "typing" }, chat.typing.map((m) => m.name).join(",")));
}
function Cursors() {
  cursorsApi = useCursors();
  return h("div", { id: "cursors" }, cursorsApi.cursors.map((c) => h("span", { key: c.id }, `${c.name}@${c.x},${c.y}`)));
}
function Run() {
  const { run } = useRun(RUN);
  return h("p", { id: "run" }, run ? `run:${run.status}:${run.percent ?? 0}` : "run:none");
}
const App = () => h(RoomProvider, {
  session: code, token: token("u-ann", "editor"), clientId: "ann-device", url: `${WS}/ws?session=${code}`, WebSocket,
  storage: null, watchUrl: `${WS}/watch`, watchToken: watcherToken({ secret: SECRET, sub: "ann", channels: [`run:${RUN}`] }),
}, h(Status), h(Others), h(Me), h(Chat), h(Cursors), h(Run));

let renderer;
await act(async () => { renderer = TestRenderer.create(h(App)); });
const text = (id) => {
  const node = renderer.root.find((n) => n.props && n.props.id === id);
  const flat = (c) => (typeof c === "string" ? c : Array.isArray(c) ? c.map(flat).join("|") : c && c.children ? flat(c.children) : "");
  return flat(node.children);
};
async function until(what, fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    let ok = false;
    try { ok = fn(); } catch { ok = false; }
    if (ok) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(renderer.toJSON())}`);
    await act(async () => { await sleep(25); });
  }
}

await until("ann connected", () => text("status") === "state:open you:Ann");
assert.equal(text("others"), "");
assert.match(text("run"), /^run:(none|pending:0)$/);   // an unknown run: no snapshot yet, or a pending one

// Bob arrives: useOthers shows him.
const bob = new CollabClient({ session: code, token: token("u-bob", "editor"), url: `${WS}/ws?session=${code}`, WebSocket, storage: null });
bob.connect();
await until("bob in others", () => text("others") === "Bob/active");

// Bob chats and types; Ann sends: own message pending, then confirmed, in seq order.
await act(async () => { bob.setTyping(true); });
await until("bob typing", () => text("typing") === "Bob");
await act(async () => { bob.sendChat("hi from bob"); });
await until("bob's chat rendered", () => text("chat").includes("Bob:hi from bob"));
await act(async () => { chat.send("hi from ann"); });
assert.match(text("chat"), /Ann:hi from ann( \(sending\))?/);
await until("ann's chat confirmed", () => text("chat") === "Bob:hi from bob|Ann:hi from ann");
await until("bob stopped typing", () => text("typing") === "");

// Bob edits his message; Ann's list shows the edit.
const bobSeq = chat.messages[0].seq;
await act(async () => { bob.editChat(bobSeq, "hi from bob, edited"); });
await until("the edit", () => text("chat").startsWith("Bob:hi from bob, edited (edited)"));

// Presence: Bob goes away; Ann's own presence changes through the hook.
await act(async () => { bob.setPresence("away"); });
await until("bob away", () => text("others") === "Bob/away");
await act(async () => { presence({ status: "idle" }); });
await until("ann idle", () => text("me") === "me:idle");
let seenByBob = null;
await sleep(100);
seenByBob = [...bob.members.values()].find((m) => m.name === "Ann");
assert.equal(seenByBob.status, "idle");

// Cursors: Bob moves, Ann sees him where he is; Ann's moves reach Bob.
await act(async () => { bob.sendCursor(120, 45); });
await until("bob's cursor", () => text("cursors") === "Bob@120,45");
let bobSaw = null;
bob.addEventListener("cursors", (e) => { bobSaw = e.detail.at(-1); });
await act(async () => { cursorsApi.moveCursor(7, 8); });
await until("ann's cursor at bob", () => bobSaw && bobSaw.x === 7 && bobSaw.y === 8);

// A run published by a backend appears and follows its events.
await act(async () => { await hub.publishRunEvents(RUN, [{ type: "started", owner: "team-a", name: "React run" }]); });
await until("the run running", () => text("run") === "run:running:0");
await act(async () => { await hub.publishRunEvents(RUN, [{ type: "progress", percent: 40 }, { type: "completed", outcome: "succeeded" }]); });
await until("the run done", () => text("run") === "run:succeeded:40");

// Bob leaves: gone from others, and his cursor with him.
await act(async () => { bob.close(); });
await until("bob gone", () => text("others") === "" && text("cursors") === "", 20000);

await act(async () => { renderer.unmount(); });
console.log("OK react");
