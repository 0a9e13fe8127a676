// A consumer of the collabhub package, type-checked with `tsc --noEmit --strict` (Tests/client/types.test.mjs).
import { CollabClient, MessageStore, RunWatcher } from "collabhub";
import type { Member, StoredMessage, ServerChat, ClientMessage } from "collabhub";

const room = new CollabClient({ session: "K7QX3M9A", name: "Ann", clientId: "device-1", url: "ws://127.0.0.1:8080/ws?session=K7QX3M9A" });
const store = new MessageStore({ client: room });

room.addEventListener("state", (e) => console.log("state", e.detail.toUpperCase()));
room.addEventListener("presence", (e) => {
  const people: Member[] = [...e.detail.values()];
  console.log(people.map((m) => `${m.name} (${m.role}, ${m.status ?? "active"})`).join(", "));
});
room.addEventListener("chat", (e) => {
  const m: ServerChat = e.detail;
  console.log(m.seq, m.from?.name, m.text ?? m.code?.source ?? m.file?.name);
});
store.addEventListener("change", (e) => {
  const lines: readonly StoredMessage[] = e.detail.messages;
  for (const m of lines) console.log(m.key, m.pending ? "(sending)" : m.seq, m.deleted ? "deleted" : m.text);
});
room.connect();

const id: string = room.sendChat("hello");
room.sendChat({ kind: "code", code: { language: "js", source: "1 + 1" } });
const eventId: string = room.sendEvent("deploy", { env: "staging" }, { durable: true });
room.setPresence("away", { label: "reading" });
console.log(id, eventId);

const hello: ClientMessage = { type: "chat", id: "x1", kind: "text", text: "typed" };
console.log(hello.type);

const runs = new RunWatcher({ url: "ws://127.0.0.1:8080/watch", token: "..." }).connect();
runs.subscribe("dashboard:team-a");
runs.addEventListener("run_status", (e) => console.log(e.detail.run.id, e.detail.run.status));
