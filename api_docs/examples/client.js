// A minimal browser client of the chat WebSocket API (no library needed).
//
//   const chat = new ChatClient({ baseUrl: "https://chat.example.com", token });
//   chat.onMessage = (message) => console.log(message.user.username, message.text);
//   chat.onPresence = (roomPk, users) => ...;
//   chat.onTyping = (roomPk, user) => ...;
//   await chat.open();
//   await chat.watchRoom(7);                 // join + subscribe, resuming after the last seq seen
//   await chat.send(7, "hello");             // safe to retry: same client_id, no duplicate
//
// The token comes from POST /api/auth/token/ {username, password}. Browsers cannot set
// headers on a WebSocket handshake, so it travels as ?token=<key>. (Pages served by the
// chat site itself may instead rely on the session cookie: then omit the token.)

class ChatClient {
  constructor({ baseUrl, token }) {
    this.url = baseUrl.replace(/^http/, "ws").replace(/\/$/, "") + "/ws/chat/room/" +
      (token ? "?token=" + encodeURIComponent(token) : "");
    this.nextId = 1;
    this.pending = new Map();   // request_id -> {resolve, reject}
    this.lastSeq = new Map();   // room pk -> highest seq seen: the resume point after a reconnect
    this.rooms = new Set();     // rooms to re-join and re-subscribe after a reconnect
    this.retryDelay = 500;
    this.onMessage = () => {};
    this.onMessageChanged = () => {};
    this.onPresence = () => {};
    this.onTyping = () => {};
    this.onClosedForGood = () => {};
  }

  open() {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      this.socket = socket;
      socket.onopen = () => {
        this.retryDelay = 500;
        resolve();
        // After a reconnect: presence is per connection, and after_seq fills the gap.
        for (const pk of this.rooms) this.watchRoom(pk).catch(console.error);
      };
      socket.onmessage = (event) => this.dispatch(JSON.parse(event.data));
      socket.onclose = (event) => {
        for (const { reject: fail } of this.pending.values()) fail(new Error("connection closed"));
        this.pending.clear();
        if (event.code === 4401) {          // token revoked or user deactivated: do not retry
          this.onClosedForGood(event.code);
          return;
        }
        // 1001 server restart, 4008 too slow, 1006 network: reconnect with backoff, then resume.
        setTimeout(() => this.open().catch(() => {}), this.retryDelay);
        this.retryDelay = Math.min(this.retryDelay * 2, 30000);
        reject(new Error("closed with code " + event.code));
      };
    });
  }

  // Send one request; resolves with `data` of its response, rejects with its errors.
  request(action, params = {}) {
    const request_id = params.request_id ?? this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(request_id, { resolve, reject });
      this.socket.send(JSON.stringify({ ...params, action, request_id }));
    });
  }

  dispatch(frame) {
    if ("response_status" in frame) {       // a response: exactly one per request
      const waiter = this.pending.get(frame.request_id);
      if (!waiter) return;
      this.pending.delete(frame.request_id);
      if (frame.response_status < 400) waiter.resolve(frame.data);
      else {
        const error = new Error(frame.action + " failed: " + frame.response_status + " " + JSON.stringify(frame.errors));
        error.status = frame.response_status;
        error.retryAfter = frame.data && frame.data.retry_after;   // set on 429
        waiter.reject(error);
      }
      return;
    }
    switch (frame.action) {                 // a push: no response_status
      case "create":
      case "update":
      case "delete":
        if (String(frame.request_id).startsWith("messages-")) {
          const message = frame.data;
          if (frame.action === "create") {
            this.lastSeq.set(message.room, Math.max(this.lastSeq.get(message.room) ?? 0, message.seq));
            this.onMessage(message);
          } else {
            this.onMessageChanged(frame.action, message);
          }
        }
        break;
      case "presence":
        this.onPresence(frame.room, frame.data.users);
        break;
      case "typing":
        this.onTyping(frame.room, frame.data.user);
        break;
    }
  }

  // Join a room and stream its messages, replaying every one after the last seq seen.
  async watchRoom(pk) {
    this.rooms.add(pk);
    const room = await this.request("join_room", { pk });
    if (!this.lastSeq.has(pk)) this.lastSeq.set(pk, room.last_message ? room.last_message.seq - 1 : 0);
    await this.request("subscribe_to_messages_in_room", {
      pk, request_id: "messages-" + pk, after_seq: this.lastSeq.get(pk),
    });
    return room;
  }

  // Post a message; retries after a lost connection reuse the client_id, so nothing is stored twice.
  async send(pk, text, clientId = crypto.randomUUID()) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.request("create_message", { room: pk, message: text, client_id: clientId });
      } catch (error) {
        if (error.status === 429) await new Promise((r) => setTimeout(r, error.retryAfter * 1000));
        else if (error.status || attempt >= 5) throw error;
        else await new Promise((r) => setTimeout(r, 1000));   // connection lost: wait for the reconnect
      }
    }
  }

  typing(pk) {
    return this.request("typing", { pk });
  }
}

if (typeof module !== "undefined") module.exports = { ChatClient };
