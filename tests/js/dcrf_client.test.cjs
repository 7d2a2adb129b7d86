// DCRF's own JavaScript client, dcrf-client 0.3.0 from npm, unmodified, against a live server
// (api_docs/PROTOCOL.md §8). Run by tests/live/test_dcrf_client.py, which starts the server and passes
// CHAT_WS_URL and CHAT_TOKEN (a registered user's API token) in the environment.
"use strict";
const assert = require("node:assert/strict");
const { test, after } = require("node:test");
const WebSocket = require("ws");
const dcrf = require("dcrf-client").default;

const fs = require("node:fs");

const url = `${process.env.CHAT_WS_URL}?token=${encodeURIComponent(process.env.CHAT_TOKEN)}`;

// Every frame both ways goes to CHAT_FRAME_LOG, for the suite to check against asyncapi.yaml.
class LoggingWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.on("message", (data) => fs.appendFileSync(process.env.CHAT_FRAME_LOG, `< ${data}\n`));
  }
  send(data, ...rest) {
    fs.appendFileSync(process.env.CHAT_FRAME_LOG, `> ${data}\n`);
    return super.send(data, ...rest);
  }
}

// Node 20 has no global WebSocket: reconnecting-websocket takes the constructor as an option.
const client = dcrf.connect(url, { websocket: { WebSocket: LoggingWebSocket, maxRetries: 3 } });
after(() => client.close());

const ROOMS = "rooms"; // any stream name: the server answers in the stream it was asked in
const unique = (prefix) => `${prefix}-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`;

function eventually(predicate, what, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      if (predicate()) return resolve();
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(poll, 20);
    };
    poll();
  });
}

test("create, list with a filter, retrieve, update, patch and delete a room", async () => {
  const name = unique("dcrf");
  const room = await client.create(ROOMS, { name });
  assert.equal(room.name, name);
  assert.ok(Number.isInteger(room.pk));

  const page = await client.list(ROOMS, { name });
  assert.deepEqual(page.results.map((r) => r.pk), [room.pk]);
  assert.equal(page.count, 1);

  assert.equal((await client.retrieve(ROOMS, room.pk)).name, name);
  assert.equal((await client.update(ROOMS, room.pk, { name: `${name}-u` })).name, `${name}-u`);
  assert.equal((await client.patch(ROOMS, room.pk, { name: `${name}-p` })).name, `${name}-p`);

  assert.equal(await client.delete(ROOMS, room.pk), null);
  await assert.rejects(client.retrieve(ROOMS, room.pk), (response) => response.response_status === 404);
});

test("errors reject with the response", async () => {
  const name = unique("dup");
  await client.create(ROOMS, { name });
  await assert.rejects(client.create(ROOMS, { name }), (response) => {
    assert.equal(response.response_status, 400);
    assert.ok(response.errors.length > 0);
    return true;
  });
  await assert.rejects(client.update(ROOMS, 1e9, { name: unique("x") }), (r) => r.response_status === 404);
});

test("custom actions through request: join, post, history", async () => {
  const room = await client.create(ROOMS, { name: unique("custom") });
  const joined = await client.request(ROOMS, { action: "join_room", pk: room.pk });
  assert.equal(joined.pk, room.pk);
  const message = await client.request("messages", { action: "create_message", room: room.pk, message: "hello", client_id: unique("c") });
  assert.equal(message.text, "hello");
  assert.equal(message.seq, 1);
  const history = await client.request("messages", { action: "list_messages", pk: room.pk });
  assert.deepEqual(history.results.map((m) => m.text), ["hello"]);
});

test("subscribe to a room instance: update and delete reach the callback", async () => {
  const room = await client.create(ROOMS, { name: unique("sub") });
  const events = [];
  await client.subscribe(ROOMS, room.pk, (data, action) => events.push([action, data]));
  await client.patch(ROOMS, room.pk, { name: `${room.name}-renamed` });
  await eventually(() => events.length === 1, "the update push");
  assert.equal(events[0][0], "update");
  assert.equal(events[0][1].name, `${room.name}-renamed`);
  await client.delete(ROOMS, room.pk);
  await eventually(() => events.length === 2, "the delete push");
  assert.equal(events[1][0], "delete");
  assert.equal(events[1][1].pk, room.pk);
});

test("a message stream through the client's dispatcher", async () => {
  const room = await client.create(ROOMS, { name: unique("stream") });
  const requestId = unique("msgs");
  const seen = [];
  // dcrf-client has no message-stream helper; its dispatcher routes any stream's pushes.
  client.dispatcher.listen({ stream: "messages", payload: { action: "create", request_id: requestId } }, (frame) =>
    seen.push(frame.payload.data.text),
  );
  await client.request("messages", { action: "subscribe_to_messages_in_room", pk: room.pk }, requestId);
  await client.request(ROOMS, { action: "join_room", pk: room.pk });
  for (const text of ["one", "two"]) {
    await client.request("messages", { action: "create_message", room: room.pk, message: text });
  }
  await eventually(() => seen.length === 2, "two create pushes");
  assert.deepEqual(seen, ["one", "two"]);
});
