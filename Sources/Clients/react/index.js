// @collabhub/react: React bindings of the collabhub client. No JSX, no build step (React.createElement);
// React 18 (useSyncExternalStore). Types in index.d.ts.
import React from "react";
import { CollabClient, MessageStore, RunWatcher } from "collabhub";

/**
 * One room: the client, its message store, the cursors of the others (latest per member) and, when a hook
 * asks for a run, a RunWatcher on /watch. Made by RoomProvider; `Room.create` for use outside React.
 */
export class Room extends EventTarget {
  constructor(client, { watchUrl, watchToken, WebSocket } = {}) {
    super();
    this.client = client;
    this.store = new MessageStore({ client });
    /** @type {Map<string, {id: string, x: number, y: number, el?: string, name?: string, color?: string}>} */
    this.cursors = new Map();
    this._watchUrl = watchUrl;
    this._watchToken = watchToken;
    this._WebSocket = WebSocket;
    this.watcher = null;
    client.addEventListener("cursors", (e) => {
      for (const u of e.detail) {
        const who = client.members.get(u.id);
        this.cursors.set(u.id, { id: u.id, x: u.x, y: u.y, ...(u.el ? { el: u.el } : {}),
          ...(who ? { name: who.name, color: who.color } : {}) });
      }
      this._emit("cursors");
    });
    client.addEventListener("presence", () => {
      let gone = false;
      for (const id of [...this.cursors.keys()]) if (!client.members.has(id)) { this.cursors.delete(id); gone = true; }
      if (gone) this._emit("cursors");
    });
  }

  /** The /watch connection for runs (made on first use: `watchUrl`, default the hub's `/watch`). */
  runWatcher() {
    if (!this.watcher) {
      const url = this._watchUrl || this.client.url.replace(/\/ws(\?.*)?$/, "/watch");
      this.watcher = new RunWatcher({ url, token: this._watchToken || this.client.token,
        ...(this._WebSocket ? { WebSocket: this._WebSocket } : {}) });
      this.watcher.connect();
    }
    return this.watcher;
  }

  connect() { this.client.connect(); return this; }
  close() { this.client.close(); if (this.watcher) { this.watcher.close(); this.watcher = null; } }
  _emit(type) { this.dispatchEvent(new CustomEvent(type)); }
}

const RoomContext = React.createContext(/** @type {Room|null} */ (null));

/**
 * Connects to a session for its children: `session`, `name`, `token`, `clientId`, `url`, `WebSocket`,
 * `storage`, ... (CollabClient's options), plus `watchUrl` / `watchToken` for useRun; or a ready `room`.
 * Connects on mount, closes on unmount; a new session (or url, client id, token) makes a new connection.
 */
export function RoomProvider(props) {
  const { children, room: given, watchUrl, watchToken, ...options } = props;
  const room = React.useMemo(
    () => given || new Room(new CollabClient(options), { watchUrl, watchToken, WebSocket: options.WebSocket }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [given, options.session, options.url, options.clientId, options.token, options.name],
  );
  React.useEffect(() => {
    if (given) return undefined;   // the caller's room: the caller connects and closes it
    room.connect();
    return () => room.close();
  }, [room, given]);
  return React.createElement(RoomContext.Provider, { value: room }, children);
}

/** The Room of the nearest RoomProvider (throws outside one). */
export function useRoomContext() {
  const room = React.useContext(RoomContext);
  if (!room) throw new Error("collabhub hooks must be used inside a <RoomProvider>");
  return room;
}

/** Re-renders when one of `events` fires on `target`; returns a number that changes each time. */
function useEvents(target, events) {
  const version = React.useRef(0);
  const key = events.join(",");
  const subscribe = React.useCallback((notify) => {
    if (!target) return () => {};
    const handler = () => { version.current++; notify(); };
    for (const t of events) target.addEventListener(t, handler);
    return () => { for (const t of events) target.removeEventListener(t, handler); };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [target, key]);
  const read = () => version.current;
  return React.useSyncExternalStore(subscribe, read, read);
}

/** The connection: `{room, client, state, you, session, seq, error, closeCode}`. */
export function useRoom() {
  const room = useRoomContext();
  const client = room.client;
  const v = useEvents(client, ["state", "joined", "presence", "error", "closed", "ended"]);
  const error = React.useRef(null);
  React.useEffect(() => {
    const onError = (e) => { error.current = e.detail; };
    client.addEventListener("error", onError);
    return () => client.removeEventListener("error", onError);
  }, [client]);
  return React.useMemo(() => ({ room, client, session: client.session, state: client.state, you: client.you,
    seq: client.seq, error: error.current, closeCode: client.closeCode }),
  // eslint-disable-next-line react-hooks/exhaustive-deps
  [room, client, v]);
}

/** Everyone present but you (each with `status` and `location`). */
export function useOthers() {
  const { client } = useRoomContext();
  const v = useEvents(client, ["presence", "joined"]);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  return React.useMemo(() => [...client.members.values()].filter((m) => !client.you || m.id !== client.you.id), [client, v]);
}

/** `[presence, setPresence]`: your `{status, location}`; `setPresence({status?, location?})` sends a change. */
export function useMyPresence() {
  const { client } = useRoomContext();
  const [presence, setState] = React.useState(() => ({ ...client.presence }));
  const update = React.useCallback((next) => {
    const p = typeof next === "function" ? next({ ...client.presence }) : next;
    client.setPresence(p.status, p.location);
    setState({ ...client.presence });
  }, [client]);
  return [presence, update];
}

/**
 * The chat: `{messages, send, edit, remove, redact, typing, setTyping}`. `messages` are the MessageStore's (seq
 * order, edits applied, own ones `pending` until acknowledged); `typing` lists who types now (members).
 */
export function useChat() {
  const { client, store } = useRoomContext();
  const v = useEvents(store, ["change"]);
  const t = useEvents(client, ["typing", "presence"]);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const messages = React.useMemo(() => store.messages, [store, v]);
  const typing = React.useMemo(() => [...client.typing.keys()].map((id) => client.members.get(id)).filter(Boolean),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [client, t]);
  const actions = React.useMemo(() => ({
    send: (body) => client.sendChat(body),
    edit: (seq, text) => client.editChat(seq, text),
    remove: (seq) => client.deleteChat(seq),
    redact: (seq, reason) => client.redact(seq, reason),
    setTyping: (active) => client.setTyping(active),
  }), [client]);
  return React.useMemo(() => ({ messages, typing, ...actions }), [messages, typing, actions]);
}

/** `{cursors, moveCursor}`: the others' cursors (latest per member, with name and color) and yours to send. */
export function useCursors() {
  const room = useRoomContext();
  const v = useEvents(room, ["cursors"]);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const cursors = React.useMemo(() => [...room.cursors.values()], [room, v]);
  const moveCursor = React.useCallback((x, y, el) => room.client.sendCursor(x, y, el), [room]);
  return React.useMemo(() => ({ cursors, moveCursor }), [cursors, moveCursor]);
}

/**
 * A run followed live over /watch (`run:ID`): its state (`{id, status, steps, progress, ...}`) once the
 * snapshot came, undefined before; `{run, control}` where `control(action)` asks its publisher to pause,
 * resume or cancel (through the room). Null `runId`: nothing followed.
 */
export function useRun(runId) {
  const room = useRoomContext();
  const watcher = React.useMemo(() => (runId ? room.runWatcher() : null), [room, runId]);
  React.useEffect(() => {
    if (!watcher || !runId) return undefined;
    const channel = `run:${runId}`;
    watcher.subscribe(channel);
    return () => watcher.unsubscribe(channel);
  }, [watcher, runId]);
  const v = useEvents(watcher, ["change"]);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const run = React.useMemo(() => (watcher && runId ? watcher.runs.get(runId) : undefined), [watcher, runId, v]);
  const control = React.useCallback((action) => room.client.controlRun(runId, action), [room, runId]);
  return React.useMemo(() => ({ run: run ? { ...run } : undefined, control }), [run, control, v]);
}
