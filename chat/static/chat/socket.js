"use strict";
/*
 * The pages' connection to the public WebSocket API /ws/chat/room/ (api_docs/PROTOCOL.md §2):
 * a thin adapter over the official client library (clients/js, loaded before this file as
 * chat-client.js, window.ChatRooms), which does the work: the handshake (the browser's
 * session cookie), request/response matching with timeouts, and reconnects with
 * exponential backoff and jitter. `onOpen` runs again after every reconnect so the page can
 * re-join and resume its streams; frames without response_status go to `onPush`.
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
    this.failures = 0; // connections in a row that closed without opening
    this.client = new window.ChatRooms.ChatClient({
      url: this.url(),
      requestTimeoutMs: ChatSocket.REQUEST_TIMEOUT_MS,
      backoff: { initialMs: ChatSocket.MIN_DELAY_MS, maxMs: ChatSocket.MAX_DELAY_MS },
    });
    this.client.on("connecting", () => this.onStatus("connecting"));
    this.client.on("open", ({ reconnect }) => {
      this.failures = 0;
      this.onStatus("open");
      Promise.resolve()
        .then(() => this.onOpen(reconnect))
        .catch((error) => {
          if (!(error instanceof ChatDisconnected)) console.error(error);
        });
    });
    this.client.on("close", () => {
      this.onStatus("closed");
      this.failures += 1;
      if (this.failures >= 3) this.checkSession();
    });
    // Credentials revoked (4401): the page reloads and Django sends it to the login page.
    this.client.on("auth_failed", () => window.location.reload());
    this.client.on("push", (frame) => this.onPush(frame));
    this.client.connect().catch(() => {});
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
    return this.client.connected;
  }

  url() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}/ws/chat/room/`;
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
    this.client.reconnectNow();
  }

  /** Send one request; resolves with its response frame whatever its status. */
  async request(action, params = {}) {
    try {
      return await this.client.requestFrame(action, params);
    } catch (error) {
      if (error instanceof window.ChatRooms.TimeoutError) {
        // Every request gets exactly one response: none means a dead (half-open) connection.
        this.close();
      }
      throw new ChatDisconnected();
    }
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
