// Generated from clients/js (@chat-rooms/client 0.1.0) by scripts/build-web-client.mjs: do not edit.
(function () {
"use strict";
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
// --- errors ------------------------------------------------------------------------------
/** The server answered with an error status (400, 403, 404, 429...). */
class ChatError extends Error {
    constructor(action, status, errors, data) {
        super(`${action} failed with ${status}: ${JSON.stringify(errors)}`);
        this.action = action;
        this.status = status;
        this.errors = errors;
        this.data = data;
        this.name = "ChatError";
    }
    /** Seconds to wait after a 429, if the server said. */
    get retryAfter() {
        const data = this.data;
        return data?.retry_after;
    }
}
/** The connection closed before the response came: the request may or may not have been carried out. */
class ConnectionLostError extends Error {
    constructor() {
        super(...arguments);
        this.name = "ConnectionLostError";
    }
}
/** No response within the request timeout. */
class TimeoutError extends Error {
    constructor() {
        super(...arguments);
        this.name = "TimeoutError";
    }
}
/** The client was closed, or stopped after close code 4401. */
class ClosedError extends Error {
    constructor() {
        super(...arguments);
        this.name = "ClosedError";
    }
}
const CLOSE_GOING_AWAY = 1001;
const CLOSE_POLICY = 1008;
const CLOSE_AUTH = 4401;
const CLOSE_RATE_LIMITED = 4429;
const OPEN = 1;
// A connection open this long was a success: the backoff starts over after it closes.
const STABLE_MS = 5000;
/** A client-chosen idempotency key for create_message (1-64 characters). */
function newClientId() {
    const cryptoApi = globalThis.crypto;
    if (cryptoApi?.randomUUID)
        return cryptoApi.randomUUID();
    return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}
class ChatClient {
    constructor(options) {
        this.options = options;
        this.socket = null;
        this.urlIndex = 0;
        this.attempt = 0;
        this.openedAt = null;
        this.lastDelay = null;
        this.opens = 0;
        this.stopped = null;
        this.reconnectTimer = null;
        this.nextId = 1;
        this.pending = new Map();
        this.openWaiters = [];
        this.handlers = new Map();
        // What a reconnect restores.
        this.joined = new Set();
        this.messageSubscriptions = new Map();
        this.bySubscriptionId = new Map();
        this.roomSubscriptions = new Set();
        this.onlineUsers = false;
        this.myRooms = false;
        this.urls = Array.isArray(options.url) ? [...options.url] : [options.url];
        if (this.urls.length === 0)
            throw new Error("ChatClient: give at least one url");
        const Socket = options.WebSocket ?? globalThis.WebSocket;
        if (!Socket)
            throw new Error("ChatClient: no WebSocket here; in Node 20 pass `WebSocket` from the ws package");
        this.Socket = Socket;
        this.timeoutMs = options.requestTimeoutMs ?? 10000;
        this.backoff = { initialMs: 500, maxMs: 30000, factor: 2, ...options.backoff };
        this.rateLimitedDelayMs = options.rateLimitedDelayMs ?? 5000;
        this.random = options.random ?? Math.random;
    }
    // --- connection ----------------------------------------------------------------------
    /** Open the connection (and keep it open); resolves once open, rejects only if closed for good first. */
    connect() {
        if (this.stopped)
            return Promise.reject(this.stopped);
        if (!this.socket && !this.reconnectTimer)
            void this.open();
        return this.whenOpen();
    }
    /** Close for good: no reconnect; pending requests fail with ClosedError. */
    close() {
        this.stop(new ClosedError("the client was closed"));
        const socket = this.socket;
        this.socket = null;
        if (socket) {
            socket.onclose = null;
            socket.close(1000);
        }
    }
    get connected() {
        return this.socket?.readyState === OPEN;
    }
    /** Resolves when the connection is open (at once if it is). */
    whenOpen() {
        if (this.stopped)
            return Promise.reject(this.stopped);
        if (this.connected)
            return Promise.resolve();
        return new Promise((resolve, reject) => this.openWaiters.push({ resolve, reject }));
    }
    /** Listen to an event; returns a function that stops listening. */
    on(event, handler) {
        let set = this.handlers.get(event);
        if (!set)
            this.handlers.set(event, (set = new Set()));
        set.add(handler);
        return () => set?.delete(handler);
    }
    emit(event, payload) {
        for (const handler of this.handlers.get(event) ?? []) {
            try {
                handler(payload);
            }
            catch (error) {
                // A failing handler must not break the connection's bookkeeping.
                setTimeout(() => {
                    throw error;
                });
            }
        }
    }
    async open() {
        this.reconnectTimer = null;
        if (this.stopped)
            return;
        const base = this.urls[this.urlIndex % this.urls.length];
        let url = base;
        try {
            const token = typeof this.options.token === "function" ? await this.options.token() : this.options.token;
            if (token)
                url += `${base.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
        }
        catch {
            this.scheduleReconnect(0, "");
            return;
        }
        if (this.stopped)
            return;
        this.emit("connecting", { url: base, attempt: this.attempt });
        const socket = new this.Socket(url);
        this.socket = socket;
        socket.onopen = () => this.onOpen(base);
        socket.onmessage = (event) => this.onFrame(event.data);
        socket.onerror = () => { }; // a close always follows
        socket.onclose = (event) => {
            if (this.socket === socket)
                this.onClose(event.code, event.reason);
        };
    }
    onOpen(url) {
        this.openedAt = Date.now();
        const reconnect = this.opens++ > 0;
        this.emit("open", { url, reconnect });
        if (reconnect)
            this.restore();
        // After the restoring requests, so they reach the server first.
        for (const waiter of this.openWaiters.splice(0))
            waiter.resolve();
    }
    onClose(code, reason) {
        this.socket = null;
        this.failPending(() => new ConnectionLostError(`the connection closed (${code}) before the response`));
        if (this.stopped)
            return;
        if (code === CLOSE_AUTH) {
            this.emit("close", { code, reason, delayMs: null });
            this.emit("auth_failed", { code });
            this.stop(new ClosedError("the server refused the credentials (4401): get a new token"));
            return;
        }
        this.scheduleReconnect(code, reason);
    }
    scheduleReconnect(code, reason) {
        if (this.openedAt !== null && Date.now() - this.openedAt >= STABLE_MS)
            this.attempt = 0;
        this.openedAt = null;
        let delay;
        if (code === CLOSE_GOING_AWAY && this.lastDelay !== 0) {
            delay = 0; // the server is restarting or draining: another one takes us at once (once in a row)
        }
        else {
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
    stop(error) {
        if (this.stopped)
            return;
        this.stopped = error;
        if (this.reconnectTimer)
            clearTimeout(this.reconnectTimer);
        this.reconnectTimer = null;
        this.failPending(() => error);
        for (const waiter of this.openWaiters.splice(0))
            waiter.reject(error);
    }
    failPending(error) {
        const pending = [...this.pending.values()];
        this.pending.clear();
        for (const request of pending) {
            if (request.timer)
                clearTimeout(request.timer);
            request.reject(error());
        }
    }
    /** After a reconnect: join again, resubscribe after the last seq seen, and the other subscriptions. */
    restore() {
        const again = (action, params, requestId) => this.send(action, params, requestId).catch((error) => this.emit("error", { error, action }));
        for (const room of this.joined)
            void again("join_room", { pk: room });
        for (const sub of this.messageSubscriptions.values()) {
            void again("subscribe_to_messages_in_room", { pk: sub.room, after_seq: sub.lastSeq }, sub.requestId);
        }
        for (const room of this.roomSubscriptions)
            void again("subscribe_instance", { pk: room }, `i${room}`);
        if (this.onlineUsers)
            void again("subscribe_to_online_users", {}, "online");
        if (this.myRooms)
            void again("subscribe_to_my_rooms", {}, "inbox");
    }
    // --- frames ----------------------------------------------------------------------------
    /** Send one request now (the connection must be open) and wait for its response's data (raw: the whole frame). */
    send(action, params, requestId, timeoutMs = this.timeoutMs, raw = false) {
        const socket = this.socket;
        if (!socket || socket.readyState !== OPEN)
            return Promise.reject(new ConnectionLostError("not connected"));
        const id = String(requestId ?? `c${this.nextId++}`);
        return new Promise((resolve, reject) => {
            const request = { action, raw, resolve: resolve, reject, timer: null };
            request.timer = setTimeout(() => {
                if (this.pending.get(id) === request)
                    this.pending.delete(id);
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
    requestFrame(action, params = {}, options = {}) {
        const { request_id: requestId, ...rest } = params;
        return this.send(action, rest, requestId, options.timeoutMs ?? this.timeoutMs, true);
    }
    /** Drop the current connection as a network failure would: the client reconnects as usual. */
    reconnectNow() {
        this.socket?.close(4000, "reconnect requested by the client");
    }
    /** Any action: waits for the connection, then resolves with the response's `data` or rejects with ChatError. */
    async request(action, params = {}, options = {}) {
        await this.whenOpen();
        return this.send(action, params, undefined, options.timeoutMs ?? this.timeoutMs);
    }
    onFrame(raw) {
        let frame;
        try {
            frame = JSON.parse(String(raw));
        }
        catch {
            return;
        }
        if ("response_status" in frame) {
            this.onResponse(frame);
            return;
        }
        this.emit("push", frame);
        const action = frame.action;
        const requestId = frame.request_id;
        const data = frame.data;
        switch (action) {
            case "create":
            case "update":
            case "delete": {
                const sub = this.bySubscriptionId.get(requestId);
                if (sub) {
                    this.onMessageEvent(sub, action, data);
                }
                else if (requestId?.startsWith?.("i")) {
                    this.emit("room", { room: frame.pk, action: action, data: data });
                }
                break;
            }
            case "presence":
                this.emit("presence", { room: frame.room, users: data.users });
                break;
            case "typing":
                this.emit("typing", { room: frame.room, user: data.user });
                break;
            case "user_status":
                this.emit("user_status", data);
                break;
            case "room_message":
            case "membership":
            case "read":
                this.emit("inbox", { action, room: frame.room, data });
                break;
        }
    }
    onResponse(frame) {
        const id = String(frame.request_id);
        const request = this.pending.get(id);
        if (!request)
            return; // timed out already, or a frame error without a request_id
        this.pending.delete(id);
        if (request.timer)
            clearTimeout(request.timer);
        const status = frame.response_status;
        if (request.raw)
            request.resolve(frame);
        else if (status >= 200 && status < 300)
            request.resolve(frame.data);
        else
            request.reject(new ChatError(request.action, status, frame.errors ?? [], frame.data));
    }
    onMessageEvent(sub, action, message) {
        if (action === "create") {
            // A replay after a reconnect starts after lastSeq, so this only drops what was already seen.
            if (message.seq <= sub.lastSeq)
                return;
            sub.lastSeq = message.seq;
        }
        this.emit("message", { room: sub.room, action, message });
    }
    // --- rooms -----------------------------------------------------------------------------
    listRooms(params = {}) {
        return this.request("list", params);
    }
    getRoom(pk) {
        return this.request("retrieve", { pk });
    }
    createRoom(name) {
        return this.request("create", { data: { name } });
    }
    renameRoom(pk, name) {
        return this.request("patch", { pk, data: { name } });
    }
    deleteRoom(pk) {
        return this.request("delete", { pk });
    }
    /** Become a member and present on this connection; joined again after every reconnect. */
    async joinRoom(pk) {
        const room = await this.request("join_room", { pk });
        this.joined.add(pk);
        return room;
    }
    async leaveRoom(pk) {
        this.joined.delete(pk);
        await this.request("leave_room", { pk });
    }
    typing(pk) {
        return this.request("typing", { pk });
    }
    /** Follow a room's renames and deletion (the `room` event); resubscribed after reconnects. */
    async subscribeToRoom(pk) {
        await this.whenOpen();
        await this.send("subscribe_instance", { pk }, `i${pk}`);
        this.roomSubscriptions.add(pk);
    }
    async unsubscribeFromRoom(pk) {
        this.roomSubscriptions.delete(pk);
        await this.whenOpen();
        await this.send("unsubscribe_instance", { pk }, `i${pk}`);
    }
    // --- messages --------------------------------------------------------------------------
    /**
     * Post a message. A connection lost (or a timeout) before the response is retried after
     * the reconnect with the same `client_id`, so the message is stored once whatever happens.
     */
    async createMessage(room, text, options = {}) {
        const clientId = options.clientId ?? newClientId();
        for (;;) {
            try {
                return await this.request("create_message", { room, message: text, client_id: clientId });
            }
            catch (error) {
                if (!(error instanceof ConnectionLostError || error instanceof TimeoutError))
                    throw error;
            }
        }
    }
    updateMessage(pk, text) {
        return this.request("update_message", { pk, message: text });
    }
    deleteMessage(pk) {
        return this.request("delete_message", { pk });
    }
    listMessages(pk, params = {}) {
        return this.request("list_messages", { pk, ...params });
    }
    /**
     * Follow a room's messages (the `message` event): stored ones after `afterSeq` first, then
     * live ones. Without `afterSeq`, from the room's newest message on (or from where an
     * earlier subscription to this room stopped). After a reconnect it resumes after the
     * last seq seen: no gap, no duplicate.
     */
    async subscribeToMessages(room, options = {}) {
        let afterSeq = options.afterSeq ?? this.messageSubscriptions.get(room)?.lastSeq;
        if (afterSeq === undefined) {
            // Where the room stands now, read before subscribing: whatever comes after is replayed.
            afterSeq = (await this.getRoom(room)).last_message?.seq ?? 0;
        }
        const sub = { room, requestId: `m${room}`, lastSeq: afterSeq };
        this.messageSubscriptions.set(room, sub);
        this.bySubscriptionId.set(sub.requestId, sub);
        try {
            await this.whenOpen();
            await this.send("subscribe_to_messages_in_room", { pk: room, after_seq: afterSeq }, sub.requestId);
        }
        catch (error) {
            if (!(error instanceof ConnectionLostError)) {
                this.messageSubscriptions.delete(room);
                this.bySubscriptionId.delete(sub.requestId);
                throw error;
            }
            // Lost on the way: the reconnect resubscribes it.
        }
    }
    async unsubscribeFromMessages(room) {
        const sub = this.messageSubscriptions.get(room);
        if (!sub)
            return;
        this.messageSubscriptions.delete(room);
        this.bySubscriptionId.delete(sub.requestId);
        if (this.connected)
            await this.send("unsubscribe_from_messages_in_room", { pk: room }, sub.requestId);
    }
    /** The highest message seq seen in a followed room. */
    lastSeq(room) {
        return this.messageSubscriptions.get(room)?.lastSeq;
    }
    // --- users, inbox and read state (api_docs/PROTOCOL.md §6) ---------------------------------------
    /** Who is online now; then `user_status` events. Resubscribed after reconnects. */
    async subscribeToOnlineUsers() {
        await this.whenOpen();
        const data = await this.send("subscribe_to_online_users", {}, "online");
        this.onlineUsers = true;
        return data.users;
    }
    /** `inbox` events (room_message, membership, read) for all the user's rooms. Resubscribed after reconnects. */
    async subscribeToMyRooms() {
        await this.whenOpen();
        await this.send("subscribe_to_my_rooms", {}, "inbox");
        this.myRooms = true;
    }
    listMyRooms(params = {}) {
        return this.request("list_my_rooms", params);
    }
    markRead(pk, seq) {
        return this.request("mark_read", { pk, seq });
    }
}
window.ChatRooms = { ChatError, ConnectionLostError, TimeoutError, ClosedError, newClientId, ChatClient };
})();
