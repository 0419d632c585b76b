// Type declarations of the wsgate Node.js binding (index.js).
/// <reference types="node" />
import { EventEmitter } from 'node:events';

/** A connection id: 64-bit, never reused while its server lives. */
export type ConnId = bigint;

/** A message to send: a string goes as text (UTF-8), bytes as binary. */
export type Payload = string | Buffer | ArrayBufferView | ArrayBuffer;

/** Option values: dotted names ('listen.port'), camelCase ('listenPort'),
 *  nested objects ({ listen: { port: 0 } }) or the short names port, host, path. */
export interface ServerOptions {
  port?: number;
  host?: string;
  path?: string;
  /**
   * Embed each history message's position for the client: a text message of
   * a history topic (cluster.history_topics) that starts with '{' is
   * delivered with `"NAME":"EPOCH-OFFSET",` inserted right after that '{'
   * (`{"pos":"12-3","text":"hi"}` for `historyPosition: 'pos'`), live or
   * replayed alike. Other messages, binary ones and a message without a
   * position yet (published while Redis is down: position 0-0) go as
   * published. NAME: 1..64 printable ASCII characters without '"' or '\'.
   *
   * This is the history hook written in C inside the addon. There is no
   * JavaScript history hook: wsgate calls the hook on its service thread and
   * needs the shaped message before the hook returns, while JavaScript runs
   * on the main thread; a JavaScript hook could only work by blocking the
   * service thread until the event loop ran it, stalling every connection
   * behind a busy event loop.
   */
  historyPosition?: string;
  [name: string]: number | boolean | string | string[] | ServerOptions | undefined;
}

/** What a client should do after a close code. */
export type ReconnectAdvice = 'backoff' | 'no' | 'app';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A snapshot of one connection (wsg_conn_info). */
export interface ConnInfo {
  id: ConnId;
  peerAddr: string;
  peerPort: number;
  path: string;
  query: string;
  origin: string;
  subprotocol: string;
  connectedAtMs: number;
  durationMs: number;
  messagesIn: number;
  bytesIn: number;
  messagesOut: number;
  bytesOut: number;
  rttUs: number;
  tlsSubject: string;
  userId: string;
  claims: string;
  compression: number;
  queuedBytes: number;
  messagesDropped: number;
  queuePolicy: string;
  topics: string[];
}

/** How events reached JavaScript: dispatch turns, events, events lost for want of memory. */
export interface EventStats {
  batches: number;
  events: number;
  lost: number;
}

/** Errors thrown or rejected by the binding. */
export interface WsgateError extends Error {
  /** The status name, e.g. 'WSG_EINVAL', 'WSG_ENOTFOUND', 'WSG_EIO'. */
  code: string;
  /** The status number (statuses[code]). */
  status: number;
}

/** One connection found by topicPresence or userPresence. */
export interface Presence {
  /** The connection; usable on any instance of the cluster as it is. */
  conn: ConnId;
  /** The user id, null when anonymous. */
  userId: string | null;
  /** The node number of the instance holding it (the id's top 16 bits; 0 without a cluster). */
  node: number;
  /** Unix ms: the subscription (topicPresence) or the upgrade (userPresence). */
  sinceMs: number;
}

/** A message's place in a topic's history: epoch and offset (64-bit, exact as
 *  bigints) and their text "EPOCH-OFFSET" (what a client keeps and sends back). */
export interface Position {
  epoch: bigint;
  offset: bigint;
  text: string;
}

/** A position to start from: its text, or its two numbers (bigints, or safe non-negative integers). */
export type PositionLike = string | { epoch: bigint | number; offset: bigint | number };

/** A presence call's rejection when Redis failed (code 'WSG_ECLUSTER'). */
export interface PresenceError extends WsgateError {
  /** This instance's own entries. */
  entries?: Presence[];
}

export interface ServerEvents {
  open: [conn: ConnId];
  message: [conn: ConnId, data: string | Buffer, isBinary: boolean];
  close: [conn: ConnId, code: number, reason: string, cause: string, advice: ReconnectAdvice];
  drain: [conn: ConnId, queuedBytes: number];
  log: [level: LogLevel, event: string, record: Record<string, unknown>];
}

export declare class Server extends EventEmitter {
  constructor(options?: ServerOptions);

  on<E extends keyof ServerEvents>(event: E, listener: (...args: ServerEvents[E]) => void): this;
  once<E extends keyof ServerEvents>(event: E, listener: (...args: ServerEvents[E]) => void): this;
  off<E extends keyof ServerEvents>(event: E, listener: (...args: ServerEvents[E]) => void): this;
  emit<E extends keyof ServerEvents>(event: E, ...args: ServerEvents[E]): boolean;

  /** Bind and serve; resolves with the bound port. */
  listen(): Promise<number>;
  /** Stop gracefully; every 'close' is emitted before it resolves. */
  close(): Promise<void>;
  /** Close one connection (code 1000 and reason '' by default). */
  close(conn: ConnId, code?: number, reason?: string): void;
  stop(): Promise<void>;
  /** Close every connection with 1012 spread over `ms`, then stop. */
  drain(ms: number): Promise<void>;

  /** Every connection subscribed to `topic` on every instance (rejects with a PresenceError). */
  topicPresence(topic: string): Promise<Presence[]>;
  /** Every open connection of `userId` on every instance (rejects with a PresenceError). */
  userPresence(userId: string): Promise<Presence[]>;
  /** Store `value` under `key` for `ttlMs` (0: cluster.session_ttl_ms), shared by every instance. */
  sessionSet(key: string, value: Payload, ttlMs?: number): Promise<void>;
  /** The value under `key`; null when absent or expired. */
  sessionGet(key: string): Promise<Buffer | null>;
  /** Remove `key` (resolves also when it was absent). */
  sessionDelete(key: string): Promise<void>;
  /**
   * Subscribe `conn` to a history topic (cluster.history_topics) and give it
   * every message after `from` ('0-0': the whole history; omitted or null:
   * nothing from the past), then the live ones, with no gap and no
   * duplicate. The subscription happens at once whatever the outcome.
   * Resolves with the position reached (the last message replayed, or the
   * topic's current one). Rejects with code 'WSG_EGONE' when `from` is older
   * than the history keeps, of another epoch or ahead of it (nothing
   * replayed: resync the client your way), 'WSG_ECLUSTER' (Redis down: live
   * messages only), 'WSG_ENOTFOUND' (the connection is gone), 'WSG_EINVAL'
   * (bad topic, a topic without history, a `from` that is no position).
   */
  subscribeFrom(conn: ConnId, topic: string, from?: PositionLike | null): Promise<Position>;

  send(conn: ConnId, data: Payload): void;
  broadcast(data: Payload, except?: ConnId): void;
  subscribe(conn: ConnId, topic: string): void;
  unsubscribe(conn: ConnId, topic: string): void;
  publish(topic: string, data: Payload): void;
  userSend(userId: string, data: Payload): void;
  userClose(userId: string, code?: number, reason?: string): void;
  info(conn: ConnId): ConnInfo;
  connections(): ConnId[];
  /** Prometheus text (wsg_server_metrics). */
  metrics(): string;
  eventStats(): EventStats;
  readonly ready: boolean;
  /** The bound port, or null when not listening. */
  readonly port: number | null;
}

export interface OptionRow {
  name: string;
  type: 'int' | 'bool' | 'string' | 'enum';
  default: string;
  range: string;
  doc: string;
}

/** A position's text "EPOCH-OFFSET" (wsg_position_format). */
export declare function formatPosition(pos: { epoch: bigint | number; offset: bigint | number }): string;
/** Parse "EPOCH-OFFSET" (e.g. from a client's query); throws an error with code 'WSG_EINVAL' for anything else. */
export declare function parsePosition(text: string): Position;

/** The loaded libwsgate's version string. */
export declare const version: string;
/** Every status name and number: { WSG_OK: 0, WSG_EINVAL: 1, ... }. */
export declare const statuses: Readonly<Record<string, number>>;
/** The option table. */
export declare const options: ReadonlyArray<Readonly<OptionRow>>;
