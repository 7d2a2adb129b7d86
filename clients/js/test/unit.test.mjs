// The client's connection logic against a scripted socket (no server): close codes, backoff,
// timeouts, resubscription after the last seq seen, create_message retried with its client_id.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ChatClient, ClosedError, TimeoutError } from "../dist/index.js";

class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.onopen = this.onclose = this.onmessage = this.onerror = null;
    FakeSocket.all.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000) {
    this.readyState = 3;
  }
  // The server's side:
  accept() {
    this.readyState = 1;
    this.onopen?.({});
  }
  drop(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  frame(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  answer(request, data = null, status = 200, errors = []) {
    this.frame({ action: request.action, request_id: request.request_id, response_status: status, errors, data });
  }
}

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));
const last = () => FakeSocket.all[FakeSocket.all.length - 1];

async function until(predicate, what, timeoutMs = 2000) {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await tick(2);
  }
}

function client(options = {}) {
  FakeSocket.all = [];
  const chat = new ChatClient({
    url: ["ws://a/ws/chat/room/", "ws://b/ws/chat/room/"],
    token: "tok",
    WebSocket: FakeSocket,
    backoff: { initialMs: 20, maxMs: 200 },
    rateLimitedDelayMs: 150,
    random: () => 0.5,
    ...options,
  });
  const closes = [];
  chat.on("close", (event) => closes.push(event));
  return { chat, closes };
}

async function opened(chat) {
  const connecting = chat.connect();
  await until(() => FakeSocket.all.length > 0, "a socket");
  last().accept();
  await connecting;
  return last();
}

test("connects with the token in the query string and resolves requests by request_id", async () => {
  const { chat } = client();
  const socket = await opened(chat);
  assert.equal(socket.url, "ws://a/ws/chat/room/?token=tok");
  const first = chat.getRoom(1);
  const second = chat.getRoom(2);
  await tick();
  const [r1, r2] = socket.sent;
  socket.answer(r2, { pk: 2 });
  socket.answer(r1, { pk: 1 });
  assert.deepEqual([await first, await second], [{ pk: 1 }, { pk: 2 }]);
  const failing = chat.getRoom(3);
  await tick();
  socket.answer(socket.sent[2], null, 404, ["Not found."]);
  await assert.rejects(failing, (error) => error.status === 404 && error.action === "retrieve");
  chat.close();
});

test("a request without a response times out", async () => {
  const { chat } = client({ requestTimeoutMs: 30 });
  await opened(chat);
  await assert.rejects(chat.getRoom(1), TimeoutError);
  chat.close();
});

test("4401 never retries: the client stops and says why", async () => {
  const { chat, closes } = client();
  const socket = await opened(chat);
  let authFailed = 0;
  chat.on("auth_failed", () => authFailed++);
  const pending = chat.getRoom(1);
  await tick();
  socket.drop(4401);
  await assert.rejects(pending);
  await tick(100);
  assert.equal(FakeSocket.all.length, 1, "no new connection");
  assert.equal(authFailed, 1);
  assert.deepEqual(closes.map((c) => [c.code, c.delayMs]), [[4401, null]]);
  await assert.rejects(chat.connect(), ClosedError);
  await assert.rejects(chat.getRoom(1), ClosedError);
});

test("1001 reconnects at once, to the next server", async () => {
  const { chat, closes } = client();
  const socket = await opened(chat);
  socket.drop(1001);
  await until(() => FakeSocket.all.length === 2, "the reconnect");
  assert.equal(closes[0].delayMs, 0);
  assert.equal(last().url, "ws://b/ws/chat/room/?token=tok");
  // Still failing: now it backs off.
  last().drop(1001);
  assert.ok(closes[1].delayMs > 0);
  chat.close();
});

test("4429 and 1008 back off at least the rate-limited delay; other closes grow with jitter", async () => {
  for (const code of [4429, 1008]) {
    const { chat, closes } = client();
    const socket = await opened(chat);
    socket.drop(code);
    assert.ok(closes[0].delayMs >= 150, `${code}: ${closes[0].delayMs}`);
    chat.close();
  }
  const { chat, closes } = client({ random: () => 0.999 });
  const socket = await opened(chat);
  socket.drop(1006);
  for (let attempt = 1; attempt < 5; attempt++) {
    await until(() => FakeSocket.all.length === attempt + 1, `attempt ${attempt}`);
    last().drop(1006);
  }
  const delays = closes.map((c) => c.delayMs);
  assert.ok(delays[0] >= 10 && delays[0] <= 20, String(delays));
  for (let i = 1; i < delays.length; i++) assert.ok(delays[i] >= delays[i - 1], String(delays));
  assert.ok(delays[delays.length - 1] <= 200, String(delays));
  // Jitter: another random draw gives another delay for the same attempt.
  const jittered = client({ random: () => 0 });
  (await opened(jittered.chat)).drop(1006);
  assert.notEqual(jittered.closes[0].delayMs, delays[0]);
  chat.close();
  jittered.chat.close();
});

test("after a reconnect: rejoined, resubscribed after the last seq seen, duplicates dropped", async () => {
  const { chat } = client();
  const socket = await opened(chat);
  const seen = [];
  chat.on("message", (event) => seen.push([event.room, event.action, event.message.seq]));
  const joining = chat.joinRoom(5);
  await tick();
  socket.answer(socket.sent[0], { pk: 5 });
  await joining;
  const subscribing = chat.subscribeToMessages(5, { afterSeq: 0 });
  await tick();
  const subscribe = socket.sent[1];
  assert.equal(subscribe.after_seq, 0);
  socket.answer(subscribe);
  await subscribing;
  const push = (sock, seq, action = "create") =>
    sock.frame({ action, request_id: subscribe.request_id, pk: seq * 10, data: { id: seq * 10, room: 5, seq, text: `m${seq}` } });
  push(socket, 1);
  push(socket, 2);
  socket.drop(1006);
  await until(() => FakeSocket.all.length === 2, "the reconnect");
  const again = last();
  again.accept();
  await tick();
  const resent = again.sent.map((f) => [f.action, f.pk, f.after_seq]);
  assert.deepEqual(resent, [
    ["join_room", 5, undefined],
    ["subscribe_to_messages_in_room", 5, 2],
  ]);
  push(again, 2); // a duplicate (the server would not send it; the client drops it anyway)
  push(again, 3);
  push(again, 3, "update");
  assert.deepEqual(seen, [
    [5, "create", 1],
    [5, "create", 2],
    [5, "create", 3],
    [5, "update", 3],
  ]);
  assert.equal(chat.lastSeq(5), 3);
  chat.close();
});

test("create_message is retried with the same client_id after a reconnect", async () => {
  const { chat } = client();
  const socket = await opened(chat);
  const posting = chat.createMessage(5, "hello");
  await tick();
  const first = socket.sent[0];
  assert.equal(first.action, "create_message");
  assert.ok(first.client_id.length >= 1 && first.client_id.length <= 64);
  socket.drop(1006); // the response is lost with the connection
  await until(() => FakeSocket.all.length === 2, "the reconnect");
  last().accept();
  await until(() => last().sent.length === 1, "the retry");
  const retry = last().sent[0];
  assert.equal(retry.client_id, first.client_id);
  assert.equal(retry.message, "hello");
  last().answer(retry, { id: 1, seq: 1, text: "hello", client_id: first.client_id }, 200);
  assert.equal((await posting).client_id, first.client_id);
  chat.close();
});

test("pushes are typed events: presence, typing, room, user_status, inbox", async () => {
  const { chat } = client();
  const socket = await opened(chat);
  const got = {};
  for (const name of ["presence", "typing", "room", "user_status", "inbox"]) chat.on(name, (e) => (got[name] = e));
  const subscribing = chat.subscribeToRoom(7);
  await tick();
  socket.answer(socket.sent[0]);
  await subscribing;
  socket.frame({ action: "presence", room: 7, data: { users: [{ id: 1, username: "a" }] } });
  socket.frame({ action: "typing", room: 7, data: { user: { id: 2, username: "b" } } });
  socket.frame({ action: "update", request_id: socket.sent[0].request_id, pk: 7, data: { pk: 7, name: "x" } });
  socket.frame({ action: "user_status", request_id: "online", data: { user: { id: 2, username: "b" }, online: true } });
  socket.frame({ action: "read", request_id: "inbox", room: 7, data: { last_read_seq: 3 } });
  assert.deepEqual(got.presence, { room: 7, users: [{ id: 1, username: "a" }] });
  assert.equal(got.typing.user.username, "b");
  assert.deepEqual(got.room, { room: 7, action: "update", data: { pk: 7, name: "x" } });
  assert.equal(got.user_status.online, true);
  assert.deepEqual(got.inbox, { action: "read", room: 7, data: { last_read_seq: 3 } });
  chat.close();
});

test("requestFrame gives the whole response whatever its status; reconnectNow drops and reconnects", async () => {
  const { chat, closes } = client();
  const socket = await opened(chat);
  const answered = chat.requestFrame("create", { data: { name: "x" }, request_id: "mine" });
  await tick();
  assert.equal(socket.sent[0].request_id, "mine");
  socket.answer(socket.sent[0], null, 400, [{ name: ["taken"] }]);
  const frame = await answered;
  assert.equal(frame.response_status, 400);
  assert.deepEqual(frame.errors, [{ name: ["taken"] }]);
  chat.reconnectNow();
  socket.drop(4000);
  await until(() => FakeSocket.all.length === 2, "the reconnect");
  assert.equal(closes[0].code, 4000);
  chat.close();
});
