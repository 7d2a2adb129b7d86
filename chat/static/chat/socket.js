"use strict";
/*
 * A client for the public WebSocket API /ws/chat/room/ (api_docs/PROTOCOL.md §2), as any SPA would
 * write it: the browser's session cookie authenticates the handshake, requests carry a
 * request_id and get exactly one response, frames without response_status are pushes.
 * A dropped connection is reopened with exponential backoff and jitter, and `onOpen`
 * runs again so the page can re-join and resume its streams.
 */

/** A request could not complete because the connection closed (it may or may not have run). */
class ChatDisconnected extends Error {
  constructor() {
    super("Disconnected");
    this.name = "ChatDisconnected";
  }
}

/** A response with a 4xx/5xx status. */
class ChatApiError extends Error {
  constructor(frame) {
    super(ChatSocket.describeErrors(frame));
    this.name = "ChatApiError";
    this.status = frame.response_status;
    this.frame = frame;
  }
}

class ChatSocket {
  /**
   * @param {{onOpen?: function(boolean): (void|Promise<void>), onPush?: function(object): void,
   *          onStatus?: function(string): void}} handlers
   */
  constructor(handlers) {
    this.onOpen = handlers.onOpen || (() => {});
    this.onPush = handlers.onPush || (() => {});
    this.onStatus = handlers.onStatus || (() => {});
    this.pending = new Map();
    this.nextRequest = 1;
    this.failures = 0; // consecutive connections that closed before or soon after opening
    this.opens = 0;
    this.ws = null;
    this.retryTimer = null;
    this.connect();
  }

  static get MIN_DELAY_MS() { return 500; }
  static get MAX_DELAY_MS() { return 15000; }
  static get REQUEST_TIMEOUT_MS() { return 20000; }

  /** The human-readable text of a response's `errors` (strings, or objects of field -> messages). */
  static describeErrors(frame) {
    const parts = [];
    for (const error of frame.errors || []) {
      if (typeof error === "string") {
        parts.push(error);
      } else if (error && typeof error === "object") {
        for (const [field, messages] of Object.entries(error)) {
          const text = [].concat(messages).join(" ");
          parts.push(field === "message" || field === "non_field_errors" ? text : `${field}: ${text}`);
        }
      }
    }
    return parts.join(" ") || `Request failed (${frame.response_status}).`;
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  url() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}/ws/chat/room/`;
  }

  connect() {
    this.retryTimer = null;
    this.onStatus("connecting");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    let openedAt = null;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      openedAt = Date.now();
      const reconnect = this.opens > 0;
      this.opens += 1;
      this.onStatus("open");
      Promise.resolve()
        .then(() => this.onOpen(reconnect))
        .catch((error) => {
          if (!(error instanceof ChatDisconnected)) console.error(error);
        });
    });
    ws.addEventListener("message", (event) => {
      if (this.ws === ws) this.handleFrame(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      for (const { reject, timer } of this.pending.values()) {
        clearTimeout(timer);
        reject(new ChatDisconnected());
      }
      this.pending.clear();
      // A connection that lived a while resets the backoff; one that never opened grows it.
      this.failures = openedAt !== null && Date.now() - openedAt > 5000 ? 0 : this.failures + 1;
      this.onStatus("closed");
      if (event.code === 4401) {
        // Credentials revoked: the page reloads and Django sends it to the login page.
        window.location.reload();
        return;
      }
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    const ceiling = Math.min(ChatSocket.MAX_DELAY_MS, ChatSocket.MIN_DELAY_MS * 2 ** Math.max(0, this.failures - 1));
    // Jitter spreads the reconnects of many clients after a server restart.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.retryTimer = setTimeout(() => this.connect(), delay);
    if (this.failures >= 3) this.checkSession();
  }

  /** After repeated refusals, find out whether the session ended (then the login page is the way back). */
  checkSession() {
    fetch("/api/users/me/", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => {
        if (response.status === 401 || response.status === 403) window.location.reload();
      })
      .catch(() => {});
  }

  /** Drop the current connection as a network failure would (the page reconnects as usual). */
  close() {
    if (this.ws) this.ws.close(4000, "closed by the page");
  }

  handleFrame(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch (error) {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    if ("response_status" in frame) {
      const waiter = this.pending.get(frame.request_id);
      if (waiter) {
        this.pending.delete(frame.request_id);
        clearTimeout(waiter.timer);
        waiter.resolve(frame);
      }
      return;
    }
    this.onPush(frame);
  }

  /** Send one request; resolves with its response frame whatever its status. */
  request(action, params = {}) {
    return new Promise((resolve, reject) => {
      if (!this.connected) {
        reject(new ChatDisconnected());
        return;
      }
      const requestId = params.request_id !== undefined ? params.request_id : `r${this.nextRequest++}`;
      const timer = setTimeout(() => {
        // Every request gets exactly one response: none means a dead (half-open) connection.
        this.pending.delete(requestId);
        reject(new ChatDisconnected());
        this.close();
      }, ChatSocket.REQUEST_TIMEOUT_MS);
      this.pending.set(requestId, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...params, action, request_id: requestId }));
    });
  }

  /** Send one request; resolves with its `data` on 2xx, rejects with ChatApiError otherwise. */
  async call(action, params = {}) {
    const frame = await this.request(action, params);
    if (frame.response_status >= 400) throw new ChatApiError(frame);
    return frame.data;
  }
}

/** A random id for create_message's client_id, also outside secure contexts (no randomUUID there). */
function chatNewClientId() {
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
