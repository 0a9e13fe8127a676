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
  /** The credential had expired (`code === "token_expired"`): mint or fetch a fresh one. False for a wrong one. */
  readonly expired: boolean;
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

/** A read-only playback link (`POST /api/sessions/{code}/share`). */
export interface ShareLink { id: string; url: string; token: string; expires_at: number }
export interface Revoked { id: string; revoked: true }

/** What a webhook endpoint can be told about (`["*"]`: everything). */
export type WebhookEventType =
  | "session.started" | "session.ended" | "member.joined" | "member.left" | "chat.created" | "chat.updated"
  | "chat.deleted" | "event.created" | "run.started" | "run.paused" | "run.resumed" | "run.step_failed"
  | "run.completed" | "*";
/** The settable fields of an endpoint (`POST /api/webhooks` needs `url`). */
export interface WebhookFields {
  url?: string;
  events?: WebhookEventType[];
  description?: string;
  /** Extra headers sent with every delivery. */
  headers?: Record<string, string>;
  timeout_s?: number;
  max_attempts?: number;
  /** `false` disables it (deliveries stop being queued). */
  active?: boolean;
}
export interface Webhook {
  id: string;
  url: string;
  events: string[];
  description?: string;
  headers: Record<string, string>;
  timeout_s: number;
  max_attempts: number;
  active: boolean;
  created_at: number;
  disabled_reason?: string;
  failing_since?: number;
  /** Only when made or rotated: `whsec_...`. */
  secret?: string;
  /** Only from getWebhook: deliveries waiting. */
  pending?: number;
}
export type DeliveryStatus = "pending" | "delivered" | "failed";
export interface Delivery {
  id: number;
  webhook: string;
  webhook_id: string;
  event: string;
  status: DeliveryStatus;
  attempts: number;
  created_at: number;
  response_status?: number;
  duration_ms?: number;
  last_error?: string;
  next_attempt?: number;
  delivered_at?: number;
}

export type Scope =
  | "sessions:create" | "sessions:read" | "sessions:write" | "transcripts:read" | "runs:publish" | "runs:read"
  | "activity:read" | "keys:admin" | "webhooks:admin" | "metrics:read";
export interface KeyFields {
  name: string;
  scopes: Scope[];
  /** Only these runs (a trailing `*` is a prefix). */
  runs?: string[] | null;
  /** Only runs started for these owners. */
  owners?: string[] | null;
  per_minute?: number | null;
  per_hour?: number | null;
  per_month?: number | null;
}
export interface ApiKey {
  id: string;
  name: string;
  scopes: Scope[];
  runs?: string[];
  owners?: string[];
  per_minute: number;
  per_hour: number;
  per_month: number;
  created_at: number;
  revoked_at?: number;
  active: boolean;
}
/** A key as made: `key` (`chk_<id>_<secret>`) is shown this once. */
export interface ApiKeyCreated extends ApiKey { key: string }
export interface KeyUsage { id: string; minute: number; hour: number; month: number }
export interface ActivityEntry {
  id: number; ts: number; actor: string; action: string; target?: string; session?: string; address?: string;
  details?: string;
}
export type RunStatus = "pending" | "running" | "paused" | "succeeded" | "failed" | "cancelled";

/** The id of an API key: `chk_<id>_<secret>` gives `<id>`; an id is itself. */
export declare function keyIdOf(key: string): string;

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
  share(code: string, options?: { ttl_s?: number }, auth?: { hostKey?: string }): Promise<ShareLink>;
  revokeShare(code: string, shareId: string, auth?: { hostKey?: string }): Promise<Revoked>;
  transcript(code: string, options?: { after?: number; limit?: number }): AsyncGenerator<{ seq: number; type: string; ts?: number; [key: string]: unknown }, void, undefined>;
  publishRunEvents(runId: string, events: RunEvent[]): Promise<Published>;
  getRun(runId: string): Promise<{ run: Record<string, unknown>; events: unknown[] }>;
  runs(options?: { owner?: string; status?: RunStatus; limit?: number }): AsyncGenerator<Record<string, unknown>, void, undefined>;
  activity(options?: { session?: string; actor?: string; since?: number; limit?: number }): AsyncGenerator<ActivityEntry, void, undefined>;
  createWebhook(fields: WebhookFields & { url: string }): Promise<Webhook & { secret: string }>;
  webhooks(options?: { limit?: number }): AsyncGenerator<Webhook, void, undefined>;
  getWebhook(id: string): Promise<Webhook>;
  updateWebhook(id: string, changes: WebhookFields): Promise<Webhook>;
  deleteWebhook(id: string): Promise<{ id: string; deleted: true }>;
  rotateWebhookSecret(id: string): Promise<Webhook & { secret: string }>;
  testWebhook(id: string): Promise<Delivery>;
  webhookDeliveries(id: string, options?: { status?: DeliveryStatus; limit?: number }): AsyncGenerator<Delivery, void, undefined>;
  retryDelivery(id: string, deliveryId: number): Promise<Delivery>;
  createKey(fields: KeyFields): Promise<ApiKeyCreated>;
  keys(options?: { limit?: number }): AsyncGenerator<ApiKey, void, undefined>;
  revokeKey(idOrKey: string): Promise<Revoked>;
  keyUsage(idOrKey: string): Promise<KeyUsage>;
  publisher(options?: { maxBatch?: number; flushMs?: number }): RunPublisher;
}

export declare class RunPublisher {
  publish(runId: string, event: RunEvent): Promise<{ seq?: number; duplicate?: boolean }>;
  flush(): Promise<void>;
  close(): Promise<void>;
}
