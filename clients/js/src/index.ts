/**
 * The official client of the chat rooms WebSocket API (api_docs/PROTOCOL.md, api_docs/asyncapi.yaml).
 *
 * One connection for any number of rooms: request/response promises with timeouts, typed
 * pushes, automatic reconnect with backoff and jitter (rotating over several URLs), and
 * after a reconnect everything restored: rooms re-joined, message streams resubscribed
 * with `after_seq` = the last seq seen (nothing missed, nothing twice), and
 * `createMessage` retried with the same `client_id` (stored once). No runtime dependency:
 * browsers use their WebSocket; in Node 20 pass `WebSocket` from the `ws` package.
 */

// --- the objects of api_docs/PROTOCOL.md §1 --------------------------------------------------------

export interface User {
  id: number;
  username: string;
}

export interface Message {
  id: number;
  room: number;
  seq: number;
  user: User;
  text: string;
  client_id: string | null;
  created_at: string;
  created_at_formatted: string;
  edited_at: string | null;
  /** Fields of later protocol versions (replies, reactions...). */
  [field: string]: unknown;
}

export interface Room {
  pk: number;
  name: string;
  host: User;
  current_users: User[];
  last_message: Message | null;
  created_at: string;
  [field: string]: unknown;
}

export interface Page<T> {
  results: T[];
  count: number;
}

export interface InboxEntry {
  room: Room;
  role: string;
  last_read_seq: number;
  unread_count: number;
}

export type RequestId = string | number;

/** A response frame as the server sent it (api_docs/PROTOCOL.md §2). */
export interface ResponseFrame<T = unknown> {
  action: string | null;
  request_id: RequestId | null;
  response_status: number;
  errors: unknown[];
  data: T;
}

// --- pushes ------------------------------------------------------------------------------

/** Events a ChatClient emits, by name, with what the handler receives. */
export interface ChatEvents {
  /** A connection attempt starts. */
  connecting: { url: string; attempt: number };
  /** The connection opened; `reconnect` is false the first time. */
  open: { url: string; reconnect: boolean };
  /** The connection closed; `delayMs` is when the next attempt starts (null: no more attempts). */
  close: { code: number; reason: string; delayMs: number | null };
  /** A message-stream event of a room subscribed with subscribeToMessages: each `create` once, in seq order. */
  message: { room: number; action: "create" | "update" | "delete"; message: Message };
  /** A room renamed or deleted (subscribeToRoom). */
  room: { room: number; action: "update" | "delete"; data: Room };
  /** Who is present in a room joined (or whose messages are followed) on this connection. */
  presence: { room: number; users: User[] };
  /** Someone else is typing in a room. */
  typing: { room: number; user: User };
  /** A user came online or went offline (subscribeToOnlineUsers). */
  user_status: { user: User; online: boolean };
  /** Inbox pushes (subscribeToMyRooms): `room_message`, `membership`, `read`. */
  inbox: { action: string; room: number; data: unknown };
  /** The server refused the credentials (close code 4401): the client stops; get a new token. */
  auth_failed: { code: number };
  /** Restoring state after a reconnect failed for one request (e.g. a room deleted meanwhile). */
  error: { error: unknown; action: string };
  /** Every push, as received (for actions this client does not know yet). */
  push: Record<string, unknown>;
}

// --- errors ------------------------------------------------------------------------------

/** The server answered with an error status (400, 403, 404, 429...). */
export class ChatError extends Error {
  constructor(
    readonly action: string,
    readonly status: number,
    readonly errors: unknown[],
    readonly data: unknown,
  ) {
    super(`${action} failed with ${status}: ${JSON.stringify(errors)}`);
    this.name = "ChatError";
  }

  /** Seconds to wait after a 429, if the server said. */
  get retryAfter(): number | undefined {
    const data = this.data as { retry_after?: number } | null;
    return data?.retry_after;
  }
}

/** The connection closed before the response came: the request may or may not have been carried out. */
export class ConnectionLostError extends Error {
  name = "ConnectionLostError";
}

/** No response within the request timeout. */
export class TimeoutError extends Error {
  name = "TimeoutError";
}

/** The client was closed, or stopped after close code 4401. */
export class ClosedError extends Error {
  name = "ClosedError";
}

// --- options -----------------------------------------------------------------------------

/** The part of the WebSocket interface this client uses (browsers' and the `ws` package's). */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type SocketConstructor = new (url: string) => SocketLike;

export interface Backoff {
  /** First reconnect delay (ms); default 500. */
  initialMs?: number;
  /** Largest delay (ms); default 30000. */
  maxMs?: number;
  /** Growth per failed attempt; default 2. */
  factor?: number;
}

export interface ChatClientOptions {
  /** `wss://host/ws/chat/room/`, or several: reconnects move on to the next one. */
  url: string | string[];
  /** An API token (POST /api/auth/token/), or a function giving one at each connection. */
  token?: string | (() => string | Promise<string>);
  /** The WebSocket constructor; default globalThis.WebSocket (Node 20: `import WebSocket from "ws"`). */
  WebSocket?: SocketConstructor;
  /** Per-request timeout (ms); default 10000. */
  requestTimeoutMs?: number;
  backoff?: Backoff;
  /** Least delay after close code 4429 or 1008 (too many connections or requests); default 5000. */
  rateLimitedDelayMs?: number;
  /** Random source in [0, 1) for the jitter; default Math.random. */
  random?: () => number;
}

const CLOSE_GOING_AWAY = 1001;
const CLOSE_POLICY = 1008;
const CLOSE_AUTH = 4401;
const CLOSE_RATE_LIMITED = 4429;
const OPEN = 1;
// A connection open this long was a success: the backoff starts over after it closes.
const STABLE_MS = 5_000;

type Handler<T> = (payload: T) => void;

interface Pending {
  action: string;
  /** Resolve with the whole response frame, whatever its status. */
  raw: boolean;
  resolve: (data: unknown) => void;
  reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout> | null;
}

interface MessageSubscription {
  room: number;
  requestId: string;
  lastSeq: number;
}

type Frame = Record<string, unknown>;

/** A client-chosen idempotency key for create_message (1-64 characters). */
export function newClientId(): string {
  const cryptoApi = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (cryptoApi?.randomUUID) return cryptoApi.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

export class ChatClient {
  private readonly urls: string[];
  private readonly Socket: SocketConstructor;
  private readonly timeoutMs: number;
  private readonly backoff: Required<Backoff>;
  private readonly rateLimitedDelayMs: number;
  private readonly random: () => number;

  private socket: SocketLike | null = null;
  private urlIndex = 0;
  private attempt = 0;
  private openedAt: number | null = null;
  private lastDelay: number | null = null;
  private opens = 0;
  private stopped: Error | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private openWaiters: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  private readonly handlers = new Map<keyof ChatEvents, Set<Handler<never>>>();

  // What a reconnect restores.
  private readonly joined = new Set<number>();
  private readonly messageSubscriptions = new Map<number, MessageSubscription>();
  private readonly bySubscriptionId = new Map<string, MessageSubscription>();
  private readonly roomSubscriptions = new Set<number>();
  private onlineUsers = false;
  private myRooms = false;

  constructor(private readonly options: ChatClientOptions) {
    this.urls = Array.isArray(options.url) ? [...options.url] : [options.url];
    if (this.urls.length === 0) throw new Error("ChatClient: give at least one url");
    const Socket = options.WebSocket ?? (globalThis as { WebSocket?: SocketConstructor }).WebSocket;
    if (!Socket) throw new Error("ChatClient: no WebSocket here; in Node 20 pass `WebSocket` from the ws package");
    this.Socket = Socket;
    this.timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.backoff = { initialMs: 500, maxMs: 30_000, factor: 2, ...options.backoff };
    this.rateLimitedDelayMs = options.rateLimitedDelayMs ?? 5_000;
    this.random = options.random ?? Math.random;
  }

  // --- connection ----------------------------------------------------------------------

  /** Open the connection (and keep it open); resolves once open, rejects only if closed for good first. */
  connect(): Promise<void> {
    if (this.stopped) return Promise.reject(this.stopped);
    if (!this.socket && !this.reconnectTimer) void this.open();
    return this.whenOpen();
  }

  /** Close for good: no reconnect; pending requests fail with ClosedError. */
  close(): void {
    this.stop(new ClosedError("the client was closed"));
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close(1000);
    }
  }

  get connected(): boolean {
    return this.socket?.readyState === OPEN;
  }

  /** Resolves when the connection is open (at once if it is). */
  whenOpen(): Promise<void> {
    if (this.stopped) return Promise.reject(this.stopped);
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => this.openWaiters.push({ resolve, reject }));
  }

  /** Listen to an event; returns a function that stops listening. */
  on<K extends keyof ChatEvents>(event: K, handler: Handler<ChatEvents[K]>): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler as Handler<never>);
    return () => set?.delete(handler as Handler<never>);
  }

  private emit<K extends keyof ChatEvents>(event: K, payload: ChatEvents[K]): void {
    for (const handler of this.handlers.get(event) ?? []) {
      try {
        (handler as Handler<ChatEvents[K]>)(payload);
      } catch (error) {
        // A failing handler must not break the connection's bookkeeping.
        setTimeout(() => {
          throw error;
        });
      }
    }
  }

  private async open(): Promise<void> {
    this.reconnectTimer = null;
    if (this.stopped) return;
    const base = this.urls[this.urlIndex % this.urls.length];
    let url = base;
    try {
      const token = typeof this.options.token === "function" ? await this.options.token() : this.options.token;
      if (token) url += `${base.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
    } catch {
      this.scheduleReconnect(0, "");
      return;
    }
    if (this.stopped) return;
    this.emit("connecting", { url: base, attempt: this.attempt });
    const socket = new this.Socket(url);
    this.socket = socket;
    socket.onopen = () => this.onOpen(base);
    socket.onmessage = (event) => this.onFrame(event.data);
    socket.onerror = () => {}; // a close always follows
    socket.onclose = (event) => {
      if (this.socket === socket) this.onClose(event.code, event.reason);
    };
  }

  private onOpen(url: string): void {
    this.openedAt = Date.now();
    const reconnect = this.opens++ > 0;
    this.emit("open", { url, reconnect });
    if (reconnect) this.restore();
    // After the restoring requests, so they reach the server first.
    for (const waiter of this.openWaiters.splice(0)) waiter.resolve();
  }

  private onClose(code: number, reason: string): void {
    this.socket = null;
    this.failPending(() => new ConnectionLostError(`the connection closed (${code}) before the response`));
    if (this.stopped) return;
    if (code === CLOSE_AUTH) {
      this.emit("close", { code, reason, delayMs: null });
      this.emit("auth_failed", { code });
      this.stop(new ClosedError("the server refused the credentials (4401): get a new token"));
      return;
    }
    this.scheduleReconnect(code, reason);
  }

  private scheduleReconnect(code: number, reason: string): void {
    if (this.openedAt !== null && Date.now() - this.openedAt >= STABLE_MS) this.attempt = 0;
    this.openedAt = null;
    let delay: number;
    if (code === CLOSE_GOING_AWAY && this.lastDelay !== 0) {
      delay = 0; // the server is restarting or draining: another one takes us at once (once in a row)
    } else {
      const { initialMs, maxMs, factor } = this.backoff;
      const ceiling = Math.min(maxMs, initialMs * factor ** this.attempt);
      delay = ceiling / 2 + (this.random() * ceiling) / 2; // jitter: clients do not come back in step
      if (code === CLOSE_RATE_LIMITED || code === CLOSE_POLICY) {
        delay = Math.max(delay, this.rateLimitedDelayMs * (1 + this.random() / 2));
      }
    }
    this.attempt++;
    this.lastDelay = delay;
    this.urlIndex++;
    this.emit("close", { code, reason, delayMs: delay });
    this.reconnectTimer = setTimeout(() => void this.open(), delay);
  }

  private stop(error: Error): void {
    if (this.stopped) return;
    this.stopped = error;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.failPending(() => error);
    for (const waiter of this.openWaiters.splice(0)) waiter.reject(error);
  }

  private failPending(error: () => Error): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const request of pending) {
      if (request.timer) clearTimeout(request.timer);
      request.reject(error());
    }
  }

  /** After a reconnect: join again, resubscribe after the last seq seen, and the other subscriptions. */
  private restore(): void {
    const again = (action: string, params: Frame, requestId?: string) =>
      this.send(action, params, requestId).catch((error) => this.emit("error", { error, action }));
    for (const room of this.joined) void again("join_room", { pk: room });
    for (const sub of this.messageSubscriptions.values()) {
      void again("subscribe_to_messages_in_room", { pk: sub.room, after_seq: sub.lastSeq }, sub.requestId);
    }
    for (const room of this.roomSubscriptions) void again("subscribe_instance", { pk: room }, `i${room}`);
    if (this.onlineUsers) void again("subscribe_to_online_users", {}, "online");
    if (this.myRooms) void again("subscribe_to_my_rooms", {}, "inbox");
  }

  // --- frames ----------------------------------------------------------------------------

  /** Send one request now (the connection must be open) and wait for its response's data (raw: the whole frame). */
  private send<T>(action: string, params: Frame, requestId?: RequestId, timeoutMs = this.timeoutMs, raw = false): Promise<T> {
    const socket = this.socket;
    if (!socket || socket.readyState !== OPEN) return Promise.reject(new ConnectionLostError("not connected"));
    const id = String(requestId ?? `c${this.nextId++}`);
    return new Promise<T>((resolve, reject) => {
      const request: Pending = { action, raw, resolve: resolve as (data: unknown) => void, reject, timer: null };
      request.timer = setTimeout(() => {
        if (this.pending.get(id) === request) this.pending.delete(id);
        reject(new TimeoutError(`${action}: no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, request);
      socket.send(JSON.stringify({ ...params, action, request_id: requestId ?? id }));
    });
  }

  /**
   * Send a request now and resolve with its whole response frame, whatever its status (a
   * `request_id` in params is used as is). Rejects with ConnectionLostError at once when not
   * connected: for callers that keep their own queue.
   */
  requestFrame<T = unknown>(action: string, params: Frame = {}, options: { timeoutMs?: number } = {}): Promise<ResponseFrame<T>> {
    const { request_id: requestId, ...rest } = params;
    return this.send(action, rest, requestId as RequestId | undefined, options.timeoutMs ?? this.timeoutMs, true);
  }

  /** Drop the current connection as a network failure would: the client reconnects as usual. */
  reconnectNow(): void {
    this.socket?.close(4000, "reconnect requested by the client");
  }

  /** Any action: waits for the connection, then resolves with the response's `data` or rejects with ChatError. */
  async request<T = unknown>(action: string, params: Frame = {}, options: { timeoutMs?: number } = {}): Promise<T> {
    await this.whenOpen();
    return this.send<T>(action, params, undefined, options.timeoutMs ?? this.timeoutMs);
  }

  private onFrame(raw: unknown): void {
    let frame: Frame;
    try {
      frame = JSON.parse(String(raw)) as Frame;
    } catch {
      return;
    }
    if ("response_status" in frame) {
      this.onResponse(frame);
      return;
    }
    this.emit("push", frame);
    const action = frame.action as string;
    const requestId = frame.request_id as string;
    const data = frame.data as Record<string, unknown>;
    switch (action) {
      case "create":
      case "update":
      case "delete": {
        const sub = this.bySubscriptionId.get(requestId);
        if (sub) {
          this.onMessageEvent(sub, action, data as Message);
        } else if (requestId?.startsWith?.("i")) {
          this.emit("room", { room: frame.pk as number, action: action as "update" | "delete", data: data as Room });
        }
        break;
      }
      case "presence":
        this.emit("presence", { room: frame.room as number, users: (data as { users: User[] }).users });
        break;
      case "typing":
        this.emit("typing", { room: frame.room as number, user: (data as { user: User }).user });
        break;
      case "user_status":
        this.emit("user_status", data as ChatEvents["user_status"]);
        break;
      case "room_message":
      case "membership":
      case "read":
        this.emit("inbox", { action, room: frame.room as number, data });
        break;
    }
  }

  private onResponse(frame: Frame): void {
    const id = String(frame.request_id);
    const request = this.pending.get(id);
    if (!request) return; // timed out already, or a frame error without a request_id
    this.pending.delete(id);
    if (request.timer) clearTimeout(request.timer);
    const status = frame.response_status as number;
    if (request.raw) request.resolve(frame);
    else if (status >= 200 && status < 300) request.resolve(frame.data);
    else request.reject(new ChatError(request.action, status, (frame.errors as unknown[]) ?? [], frame.data));
  }

  private onMessageEvent(sub: MessageSubscription, action: "create" | "update" | "delete", message: Message): void {
    if (action === "create") {
      // A replay after a reconnect starts after lastSeq, so this only drops what was already seen.
      if (message.seq <= sub.lastSeq) return;
      sub.lastSeq = message.seq;
    }
    this.emit("message", { room: sub.room, action, message });
  }

  // --- rooms -----------------------------------------------------------------------------

  listRooms(params: { name?: string; page?: number; page_size?: number } = {}): Promise<Page<Room>> {
    return this.request("list", params);
  }

  getRoom(pk: number): Promise<Room> {
    return this.request("retrieve", { pk });
  }

  createRoom(name: string): Promise<Room> {
    return this.request("create", { data: { name } });
  }

  renameRoom(pk: number, name: string): Promise<Room> {
    return this.request("patch", { pk, data: { name } });
  }

  deleteRoom(pk: number): Promise<null> {
    return this.request("delete", { pk });
  }

  /** Become a member and present on this connection; joined again after every reconnect. */
  async joinRoom(pk: number): Promise<Room> {
    const room = await this.request<Room>("join_room", { pk });
    this.joined.add(pk);
    return room;
  }

  async leaveRoom(pk: number): Promise<void> {
    this.joined.delete(pk);
    await this.request("leave_room", { pk });
  }

  typing(pk: number): Promise<null> {
    return this.request("typing", { pk });
  }

  /** Follow a room's renames and deletion (the `room` event); resubscribed after reconnects. */
  async subscribeToRoom(pk: number): Promise<void> {
    await this.whenOpen();
    await this.send("subscribe_instance", { pk }, `i${pk}`);
    this.roomSubscriptions.add(pk);
  }

  async unsubscribeFromRoom(pk: number): Promise<void> {
    this.roomSubscriptions.delete(pk);
    await this.whenOpen();
    await this.send("unsubscribe_instance", { pk }, `i${pk}`);
  }

  // --- messages --------------------------------------------------------------------------

  /**
   * Post a message. A connection lost (or a timeout) before the response is retried after
   * the reconnect with the same `client_id`, so the message is stored once whatever happens.
   */
  async createMessage(room: number, text: string, options: { clientId?: string } = {}): Promise<Message> {
    const clientId = options.clientId ?? newClientId();
    for (;;) {
      try {
        return await this.request<Message>("create_message", { room, message: text, client_id: clientId });
      } catch (error) {
        if (!(error instanceof ConnectionLostError || error instanceof TimeoutError)) throw error;
      }
    }
  }

  updateMessage(pk: number, text: string): Promise<Message> {
    return this.request("update_message", { pk, message: text });
  }

  deleteMessage(pk: number): Promise<null> {
    return this.request("delete_message", { pk });
  }

  listMessages(
    pk: number,
    params: { after_seq?: number; before_seq?: number; limit?: number } = {},
  ): Promise<{ results: Message[]; has_more: boolean }> {
    return this.request("list_messages", { pk, ...params });
  }

  /**
   * Follow a room's messages (the `message` event): stored ones after `afterSeq` first, then
   * live ones. Without `afterSeq`, from the room's newest message on (or from where an
   * earlier subscription to this room stopped). After a reconnect it resumes after the
   * last seq seen: no gap, no duplicate.
   */
  async subscribeToMessages(room: number, options: { afterSeq?: number } = {}): Promise<void> {
    let afterSeq = options.afterSeq ?? this.messageSubscriptions.get(room)?.lastSeq;
    if (afterSeq === undefined) {
      // Where the room stands now, read before subscribing: whatever comes after is replayed.
      afterSeq = (await this.getRoom(room)).last_message?.seq ?? 0;
    }
    const sub: MessageSubscription = { room, requestId: `m${room}`, lastSeq: afterSeq };
    this.messageSubscriptions.set(room, sub);
    this.bySubscriptionId.set(sub.requestId, sub);
    try {
      await this.whenOpen();
      await this.send("subscribe_to_messages_in_room", { pk: room, after_seq: afterSeq }, sub.requestId);
    } catch (error) {
      if (!(error instanceof ConnectionLostError)) {
        this.messageSubscriptions.delete(room);
        this.bySubscriptionId.delete(sub.requestId);
        throw error;
      }
      // Lost on the way: the reconnect resubscribes it.
    }
  }

  async unsubscribeFromMessages(room: number): Promise<void> {
    const sub = this.messageSubscriptions.get(room);
    if (!sub) return;
    this.messageSubscriptions.delete(room);
    this.bySubscriptionId.delete(sub.requestId);
    if (this.connected) await this.send("unsubscribe_from_messages_in_room", { pk: room }, sub.requestId);
  }

  /** The highest message seq seen in a followed room. */
  lastSeq(room: number): number | undefined {
    return this.messageSubscriptions.get(room)?.lastSeq;
  }

  // --- users, inbox and read state (api_docs/PROTOCOL.md §6) ---------------------------------------

  /** Who is online now; then `user_status` events. Resubscribed after reconnects. */
  async subscribeToOnlineUsers(): Promise<User[]> {
    await this.whenOpen();
    const data = await this.send<{ users: User[] }>("subscribe_to_online_users", {}, "online");
    this.onlineUsers = true;
    return data.users;
  }

  /** `inbox` events (room_message, membership, read) for all the user's rooms. Resubscribed after reconnects. */
  async subscribeToMyRooms(): Promise<void> {
    await this.whenOpen();
    await this.send("subscribe_to_my_rooms", {}, "inbox");
    this.myRooms = true;
  }

  listMyRooms(params: { page?: number; page_size?: number } = {}): Promise<Page<InboxEntry>> {
    return this.request("list_my_rooms", params);
  }

  markRead(pk: number, seq: number): Promise<{ last_read_seq: number; unread_count: number }> {
    return this.request("mark_read", { pk, seq });
  }
}
