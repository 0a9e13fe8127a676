// Types of the collabhub package (index.js): the browser and Node client, the message store and the run
// watcher. The protocol's message types are generated from Protocol/schemas (protocol.d.ts).
import type {
  ServerAck, ServerChat, ServerChatDelete, ServerChatEdit, ServerCursors, ServerDashboard, ServerError, ServerEvent,
  ServerJoined, ServerMessage, ServerRedact, ServerReset, ServerRun, ServerRunEvent, ServerRunProgress,
  ServerRunSnapshot, ServerRunStatus, ServerSessionEnded, ServerTokenExpiring, ServerTyping, ClientChat,
} from "./protocol.js";

export * from "./protocol.js";

/** A member of a session, as `joined` and `presence` describe it. */
export type Member = ServerJoined["you"];
export type PresenceStatus = "active" | "idle" | "away" | "stale";
export type ConnectionState = "idle" | "connecting" | "open" | "resuming" | "offline" | "closed";
export type ChatBody = Partial<Pick<ClientChat, "kind" | "text" | "file" | "code" | "meta">>;
/** The part of the Web Storage API the outbox uses (`localStorage`, `sessionStorage`, or your own). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
  readonly length?: number;
  key?(index: number): string | null;
}
/** A WebSocket constructor: the browser's, or Node's `ws` package. */
export type WebSocketConstructor = new (url: string, protocol?: string | string[]) => {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => any) | null;
  onmessage: ((ev: any) => any) | null;
  onclose: ((ev: any) => any) | null;
  onerror: ((ev: any) => any) | null;
};
/** A message waiting in the outbox: a chat (no `type`, or `chat`), an edit, deletion, redaction or durable event. */
export type OutboxItem = { type?: string; id: string; [key: string]: unknown };

export interface CollabClientOptions {
  /** The session's code. */
  session: string;
  name?: string;
  /** A member token (JWT). */
  token?: string;
  /** Called before every (re)connect and on `token_expiring`, for a fresh token. */
  getToken?: () => Promise<string>;
  /** A stable id of this browser or device: with its resume secret it is the same member again. */
  clientId?: string;
  resumeSecret?: string;
  hostKey?: string;
  /** `ws(s)://host/ws?session=CODE`; in a browser, derived from the page's location. */
  url?: string;
  /** The hub's HTTP origin (for the transcript API); derived from `url`. */
  httpUrl?: string;
  /** Node: `WebSocket` from the `ws` package. */
  WebSocket?: WebSocketConstructor;
  fetch?: typeof fetch;
  /** Keeps the outbox (and the resume secret) across reloads; default `localStorage`, `null` for none. */
  storage?: StorageLike | null;
  secretStorage?: StorageLike | null;
  /** Recent durable events a first join asks for (default 50, 0 for none). */
  history?: number;
  random?: () => number;
  schedule?: (fn: () => void, ms: number) => unknown;
}

export interface HistoryDetail { from: number; to: number; events: ServerMessage[]; reset: ServerReset }
export interface ClosedDetail { code: number }

export interface CollabClientEventMap {
  state: CustomEvent<ConnectionState>;
  joined: CustomEvent<ServerJoined>;
  presence: CustomEvent<Map<string, Member>>;
  chat: CustomEvent<ServerChat>;
  chat_edit: CustomEvent<ServerChatEdit>;
  chat_delete: CustomEvent<ServerChatDelete>;
  redact: CustomEvent<ServerRedact>;
  ack: CustomEvent<ServerAck>;
  /** This client put a message in its outbox (and sent it, when connected). */
  sent: CustomEvent<OutboxItem>;
  cursors: CustomEvent<ServerCursors["updates"]>;
  typing: CustomEvent<ServerTyping>;
  event: CustomEvent<ServerEvent>;
  run: CustomEvent<ServerRun>;
  error: CustomEvent<ServerError>;
  reset: CustomEvent<ServerReset & { error?: string }>;
  history: CustomEvent<HistoryDetail>;
  ended: CustomEvent<ServerSessionEnded>;
  closed: CustomEvent<ClosedDetail>;
  token_expiring: CustomEvent<ServerTokenExpiring>;
}

type Listener<E> = ((ev: E) => void) | { handleEvent(ev: E): void };

/** A member's connection to one session: reconnects with backoff, resumes from its last seq, and keeps an
 * outbox of unacknowledged chats, edits and durable events across reconnects, offline time and reloads. */
export declare class CollabClient extends EventTarget {
  constructor(options: CollabClientOptions);
  readonly session: string;
  name: string;
  token?: string;
  clientId: string;
  resumeSecret: string | null;
  state: ConnectionState;
  members: Map<string, Member>;
  you: Member | null;
  /** The highest durable seq seen. */
  seq: number;
  /** Unacknowledged messages, by id (kept in `storage`). */
  readonly pending: Outbox;
  typing: Map<string, number>;
  presence: { status: PresenceStatus; location?: unknown };
  closeCode?: number;
  connect(): this;
  close(): void;
  handle(message: ServerMessage): void;
  /** Returns the message's id; it stays in `pending` until acknowledged. */
  sendChat(body: ChatBody | string): string;
  editChat(seq: number, text: string): string;
  deleteChat(seq: number): string;
  redact(seq: number, reason?: string): string;
  setPresence(status?: "active" | "idle" | "away" | null, location?: unknown): void;
  trackActivity(options?: { document?: any; window?: any; idleMs?: number; schedule?: (fn: () => void, ms: number) => any;
    cancel?: (handle: any) => void; now?: () => number }): () => void;
  sendCursor(x: number, y: number, el?: string): void;
  setTyping(active: boolean): void;
  /** A durable event returns its id (kept in the outbox until acknowledged); an ephemeral one undefined. */
  sendEvent(name: string, data?: Record<string, unknown>, options?: { durable?: false }): undefined;
  sendEvent(name: string, data: Record<string, unknown>, options: { durable: true }): string;
  sendEvent(name: string, data?: Record<string, unknown>, options?: { durable?: boolean }): string | undefined;
  remove(memberId: string): void;
  controlRun(run: string, action: "pause" | "resume" | "cancel"): void;
  end(reason?: string): void;
  refresh(token: string): void;
  addEventListener<K extends keyof CollabClientEventMap>(type: K, listener: Listener<CollabClientEventMap[K]> | null,
    options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof CollabClientEventMap>(type: K, listener: Listener<CollabClientEventMap[K]> | null,
    options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions): void;
}

/** A chat message as a MessageStore shows it. */
export interface StoredMessage {
  /** Stable for the message's life: its client id when it is one's own, else `seq:N`. */
  key: string;
  /** Undefined while one's own message waits for its ack. */
  seq?: number;
  id?: string;
  ts?: number;
  from?: { id: string; name: string; color: string; [key: string]: unknown };
  kind: "text" | "file" | "code" | "system";
  text?: string;
  code?: ServerChat["code"];
  file?: ServerChat["file"];
  meta?: Record<string, unknown>;
  /** One's own, not yet acknowledged. */
  pending: boolean;
  /** Sent by this client. */
  own: boolean;
  edited: boolean;
  editedAt?: number;
  deleted: boolean;
  /** With `deleted`: who deleted it (a host deleting someone else's message is `host`), when known. */
  deletedBy?: "author" | "host";
  redacted: boolean;
  /** The hub refused it for good (its error code). */
  failed?: string;
  error?: string;
}

export interface MessageStoreEventMap { change: CustomEvent<MessageStore> }

/** The chat in seq order with edits, deletions, redactions and acks applied (pure logic, no DOM). */
export declare class MessageStore extends EventTarget {
  constructor(options?: { client?: CollabClient; limit?: number });
  readonly messages: readonly StoredMessage[];
  readonly pending: StoredMessage[];
  /** Bumped on every change. */
  readonly version: number;
  limit: number;
  get(seq: number): StoredMessage | undefined;
  attach(client: CollabClient): () => void;
  addPending(message: OutboxItem, from?: Member): void;
  apply(message: ServerMessage | { type: string; [key: string]: unknown }): boolean;
  clear(): void;
  /** The chat as `events` make it, from nothing (own pending messages stay): a transcript, or the frames a
   * replay played up to a seek. One `change` at the end. */
  reset(events?: Iterable<ServerMessage | { type: string; [key: string]: unknown }>): this;
  addEventListener<K extends keyof MessageStoreEventMap>(type: K, listener: Listener<MessageStoreEventMap[K]> | null,
    options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof MessageStoreEventMap>(type: K, listener: Listener<MessageStoreEventMap[K]> | null,
    options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions): void;
}

/** The unacknowledged outbox, a Map that writes itself to storage. */
export declare class Outbox extends Map<string, OutboxItem> {
  constructor(storage: StorageLike | null, key: string);
  static prune(storage: StorageLike | null, maxAge?: number, now?: number): void;
}

/** A run as dashboards and snapshots describe it. */
export type RunState = ServerRunSnapshot["run"];
export type RunSummary = ServerDashboard["runs"][number];

export interface RunWatcherEventMap {
  state: CustomEvent<"open" | "offline">;
  dashboard: CustomEvent<ServerDashboard>;
  run_snapshot: CustomEvent<ServerRunSnapshot>;
  run_event: CustomEvent<ServerRunEvent>;
  run_status: CustomEvent<ServerRunStatus>;
  run_progress: CustomEvent<ServerRunProgress>;
  change: CustomEvent<ServerMessage>;
  error: CustomEvent<ServerError>;
}

/** Follows runs and dashboards over /watch, resuming each run channel from its last seq. */
export declare class RunWatcher extends EventTarget {
  constructor(options?: { url?: string; token?: string; key?: string; getToken?: () => Promise<string>;
    WebSocket?: WebSocketConstructor; schedule?: (fn: () => void, ms: number) => unknown });
  state: string;
  /** channel -> last seq (runs) or 0. */
  channels: Map<string, number>;
  /** run id -> its latest view: the full state (steps, logs) and the summaries merged, newest seq first
   * (see `mergeRun`). */
  runs: Map<string, Partial<RunState> & { id: string; [key: string]: unknown }>;
  connect(): this;
  subscribe(channel: string): void;
  unsubscribe(channel: string): void;
  close(): void;
  handle(message: ServerMessage): void;
  addEventListener<K extends keyof RunWatcherEventMap>(type: K, listener: Listener<RunWatcherEventMap[K]> | null,
    options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
}

/** A run's state after one `run_event` (what RunWatcher keeps in `runs` for `run:ID` channels). */
export declare function applyRunEvent(run: (Partial<RunState> & { id: string }) | undefined, event: ServerRunEvent): Partial<RunState> & { id: string; [key: string]: unknown };
/** A run's summary and its full state merged: the higher seq wins where both say something. */
export declare function mergeRun<T extends { id: string; seq?: number }>(run: (Partial<RunState> & { id: string;
  [key: string]: unknown }) | undefined, update: T): Partial<RunState> & { id: string; [key: string]: unknown };
export declare const OUTBOX_PREFIX: string;
export declare const SECRET_PREFIX: string;
export declare function backoffDelay(attempt: number, base?: number, cap?: number, random?: () => number): number;
export declare function inkOn(color: string): "#fff" | "#111";
export declare function fragmentCredentials(hash?: string): { token?: string; key?: string };
export declare function showModeBanner(element: HTMLElement, fetchImpl?: typeof fetch): Promise<void>;
export declare function placeCursor(surface: HTMLElement, cursors: Map<string, HTMLElement>,
  update: { id: string; x: number; y: number }, who: { name: string; color: string }): void;
