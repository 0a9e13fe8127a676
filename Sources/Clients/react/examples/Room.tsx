// A consumer of @collabhub/react, type-checked with `tsc --noEmit --strict` (Tests/client/types.test.mjs).
import * as React from "react";
import { RoomProvider, useChat, useCursors, useMyPresence, useOthers, useRoom, useRun } from "@collabhub/react";

function People(): React.ReactElement {
  const others = useOthers();
  const [me, setMe] = useMyPresence();
  return (
    <ul onMouseEnter={() => setMe({ status: "active" })}>
      <li>me: {me.status}</li>
      {others.map((m) => <li key={m.id} style={{ color: m.color }}>{m.name} ({m.status ?? "active"})</li>)}
    </ul>
  );
}

function Chat(): React.ReactElement {
  const { messages, send, edit, remove, typing } = useChat();
  const [text, setText] = React.useState("");
  return (
    <div>
      {messages.map((m) => (
        <p key={m.key} className={m.pending ? "pending" : ""}>
          <b>{m.from?.name}</b> {m.deleted ? "(deleted)" : m.redacted ? "(redacted)" : m.text}
          {m.own && m.seq !== undefined && <button onClick={() => edit(m.seq!, m.text + "!")}>edit</button>}
          {m.seq !== undefined && <button onClick={() => remove(m.seq!)}>delete</button>}
        </p>
      ))}
      {typing.length > 0 && <i>{typing.map((m) => m.name).join(", ")} typing</i>}
      <form onSubmit={(e) => { e.preventDefault(); send(text); setText(""); }}>
        <input value={text} onChange={(e) => setText(e.target.value)} />
      </form>
    </div>
  );
}

function Pointers(): React.ReactElement {
  const { cursors, moveCursor } = useCursors();
  return (
    <div onMouseMove={(e) => moveCursor(e.clientX, e.clientY)}>
      {cursors.map((c) => <span key={c.id} style={{ left: c.x, top: c.y, color: c.color }}>{c.name}</span>)}
    </div>
  );
}

function Deploy({ id }: { id: string }): React.ReactElement {
  const { run, control } = useRun(id);
  return <p>{run ? `${run.name ?? run.id}: ${run.status}` : "waiting"} <button onClick={() => control("cancel")}>cancel</button></p>;
}

function Status(): React.ReactElement {
  const { state, you } = useRoom();
  return <header>{state} {you ? `as ${you.name} (${you.role})` : ""}</header>;
}

export function App({ code, token }: { code: string; token: string }): React.ReactElement {
  return (
    <RoomProvider session={code} token={token} name="Ann" clientId="device-1">
      <Status />
      <People />
      <Chat />
      <Pointers />
      <Deploy id="deploy-41" />
    </RoomProvider>
  );
}
