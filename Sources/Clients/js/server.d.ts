// Types of collabhub/server (server.js): CollabHub for Node backends.
import type { HttpRunEvent } from "./protocol.js";

/** Every failure: the hub's error or a local one. */
export declare class CollabHubError extends Error {
  constructor(code: string, message: string, options?: { status?: number; field?: string; retryAfter?: number; retryable?: boolean });
  readonly name: "CollabHubError";
  /** The hub's error code (`invalid_field`, `unauthorized`, `token_expired`, `forbidden`, `busy`, ...), or a local
   * one: `invalid_field` (a bad argument), `network`, `timeout`, `invalid_signature`, `closed`, `http_<status>`. */
  code: string;
  /** HTTP status (0 when no answer came). */
  status: number;
  /** The field at fault, when the hub (or the argument check) named one. */
  field?: string;
  /** Seconds the hub asked to wait (`Retry-After` / `retry_after`). */
  retryAfter?: number;
  /** Sending the same request again later may succeed. */
  retryable: boolean;
}

export type Role = "host" | "editor" | "viewer";
interface TimeOptions {
  /** Seconds the token is valid (default 3600). */
  ttl?: number;
  /** Now, in seconds since the epoch (default: the clock). */
  now?: number;
  notBefore?: number;
  /** The hub's `--jwt-audience`, when it has one. */
  audience?: string;
  /** The hub's `--jwt-issuer`, when it has one. */
  issuer?: string;
  /** The key id, when the hub's secret is given as `KID=SECRET`. */
  kid?: string;
}
export interface MemberTokenOptions extends TimeOptions {
  /** The hub's `--jwt-secret` (at least 16 bytes). */
  secret: string | Uint8Array;
  /** Your user's stable id (1-128 characters). */
  sub: string;
  /** A session code, or `*` for any session. */
  session: string;
  /** Default `viewer`. */
  role?: Role;
  name?: string;
}
export interface WatcherTokenOptions extends TimeOptions {
  secret: string | Uint8Array;
  sub: string;
  /** `run:ID`, `dashboard:OWNER`, a trailing `*` for a prefix; 1-100 of them. */
  channels: string[];
}
export declare function memberToken(options: MemberTokenOptions): string;
export declare function watcherToken(options: WatcherTokenOptions): string;
export declare function signToken(claims: Record<string, unknown>, secret: string | Uint8Array, options?: { kid?: string }): string;

/** A webhook's payload (`type` such as `chat.created`, `run.completed`, `session.ended`, ...). */
export interface WebhookPayload { type: string; timestamp?: string; data?: Record<string, unknown>; [key: string]: unknown }
export declare function verifyWebhook(options: {
  /** The endpoint's `whsec_...` secret. */
  secret: string;
  headers: Record<string, string | string[] | undefined> | { get(name: string): string | null };
  /** The raw body as received. */
  body: string | Uint8Array;
  /** Seconds the timestamp may be off (default 300). */
  tolerance?: number;
  now?: number;
}): WebhookPayload;

export interface CollabHubOptions {
  /** The hub's HTTP origin, `http://127.0.0.1:8080`. */
  url: string;
  /** An API key or the admin key (`X-API-Key`). */
  apiKey?: string;
  /** Or a token (`Authorization: Bearer`). */
  token?: string;
  fetch?: typeof fetch;
  /** Retries of a failure worth retrying (default 4). */
  retries?: number;
  backoffMs?: number;
  maxBackoffMs?: number;
  timeoutMs?: number;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface SessionCreated {
  code: string;
  host_key: string;
  url: string;
  title?: string;
  max_participants?: number;
  [key: string]: unknown;
}
export interface Committed { seq: number; ts: number; duplicate?: boolean }
export type SystemMessage = { kind: "system"; text: string };
export type EventMessage = { type: "event"; name: string; data?: Record<string, unknown>; durable?: boolean };
export type RunEvent = Extract<HttpRunEvent, { type: string }>;
export interface Published { run: string; seq?: number; events: Array<{ seq: number; duplicate?: boolean }> }

export declare class CollabHub {
  constructor(options: CollabHubOptions);
  readonly url: string;
  request<T = any>(method: string, path: string, options?: { body?: unknown; headers?: Record<string, string>; idempotent?: boolean }): Promise<T>;
  createSession(options?: { title?: string; max_participants?: number; guest_policy?: string; events?: unknown; [key: string]: unknown }): Promise<SessionCreated>;
  getSession(code: string): Promise<Record<string, unknown>>;
  updateSession(code: string, changes: Record<string, unknown>, options?: { hostKey?: string }): Promise<Record<string, unknown>>;
  endSession(code: string, options?: { reason?: string; hostKey?: string }): Promise<Record<string, unknown> | null>;
  sessions(options?: { limit?: number }): AsyncGenerator<Record<string, unknown>, void, undefined>;
  members(code: string): Promise<{ session: string; seq: number; members: Array<Record<string, unknown>> }>;
  removeMember(code: string, memberId: string): Promise<unknown>;
  postMessage(code: string, message: SystemMessage | EventMessage, options?: { idempotencyKey?: string }): Promise<Committed>;
  share(code: string, options?: Record<string, unknown>): Promise<{ url: string; token: string; id?: string; [key: string]: unknown }>;
  transcript(code: string, options?: { after?: number; limit?: number }): AsyncGenerator<{ seq: number; type: string; ts?: number; [key: string]: unknown }, void, undefined>;
  publishRunEvents(runId: string, events: RunEvent[]): Promise<Published>;
  getRun(runId: string): Promise<{ run: Record<string, unknown>; events: unknown[] }>;
  publisher(options?: { maxBatch?: number; flushMs?: number }): RunPublisher;
}

export declare class RunPublisher {
  publish(runId: string, event: RunEvent): Promise<{ seq?: number; duplicate?: boolean }>;
  flush(): Promise<void>;
  close(): Promise<void>;
}
