// Types of @collabhub/react (index.js).
import type * as React from "react";
import type { CollabClient, CollabClientOptions, ConnectionState, Member, MessageStore, RunState, RunWatcher,
  ChatBody, StoredMessage, ServerError, PresenceStatus } from "collabhub";

export interface CursorState { id: string; x: number; y: number; el?: string; name?: string; color?: string }

export declare class Room extends EventTarget {
  constructor(client: CollabClient, options?: { watchUrl?: string; watchToken?: string; WebSocket?: CollabClientOptions["WebSocket"] });
  readonly client: CollabClient;
  readonly store: MessageStore;
  readonly cursors: Map<string, CursorState>;
  watcher: RunWatcher | null;
  runWatcher(): RunWatcher;
  connect(): this;
  close(): void;
}

export type RoomProviderProps = CollabClientOptions & {
  children?: React.ReactNode;
  /** A room made by the caller (who connects and closes it). */
  room?: Room;
  /** /watch URL for useRun (default: the hub's /watch). */
  watchUrl?: string;
  /** A watcher token or API key for useRun (default: the member token). */
  watchToken?: string;
};
export declare function RoomProvider(props: RoomProviderProps): React.ReactElement;
export declare function useRoomContext(): Room;

export interface RoomInfo {
  room: Room;
  client: CollabClient;
  session: string;
  state: ConnectionState;
  you: Member | null;
  seq: number;
  error: ServerError | null;
  closeCode?: number;
}
export declare function useRoom(): RoomInfo;
export declare function useOthers(): Member[];

export interface MyPresence { status: PresenceStatus; location?: unknown }
export declare function useMyPresence(): [MyPresence,
  (next: { status?: "active" | "idle" | "away"; location?: unknown } | ((current: MyPresence) => { status?: "active" | "idle" | "away"; location?: unknown })) => void];

export interface Chat {
  messages: readonly StoredMessage[];
  /** Members typing now. */
  typing: Member[];
  /** Returns the message's id. */
  send(body: ChatBody | string): string;
  edit(seq: number, text: string): string;
  remove(seq: number): string;
  redact(seq: number, reason?: string): string;
  setTyping(active: boolean): void;
}
export declare function useChat(): Chat;

export declare function useCursors(): { cursors: CursorState[]; moveCursor(x: number, y: number, el?: string): void };

export declare function useRun(runId: string | null | undefined): {
  run: (Partial<RunState> & { id: string; [key: string]: unknown }) | undefined;
  control(action: "pause" | "resume" | "cancel"): void;
};
