// The client against two live server processes, one SIGKILLed mid-stream (run by
// tests/live/test_js_client.py, which starts the servers and passes CHAT_URLS, CHAT_TOKEN,
// CHAT_WRITER_TOKEN, CHAT_ROOM and CHAT_KILL_PGID). The reader's view must end gap-free and
// free of duplicates, and its own posts, retried across the crash, stored exactly once.
import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import WebSocket from "ws";
import { ChatClient } from "@chat-rooms/client";

const [firstUrl, secondUrl] = process.env.CHAT_URLS.split(",");
const room = Number(process.env.CHAT_ROOM);
const WRITER_POSTS = 60;
const READER_POSTS = 20;
const KILL_AFTER = 20;

// Each client's frames, both ways, go to CHAT_FRAME_LOG for the suite to check against asyncapi.yaml.
function loggingSocket(who) {
  const log = (direction, data) => fs.appendFileSync(process.env.CHAT_FRAME_LOG, `${who} ${direction} ${data}\n`);
  return class extends WebSocket {
    constructor(...args) {
      super(...args);
      this.on("message", (data) => log("<", data));
    }
    send(data, ...rest) {
      log(">", data);
      return super.send(data, ...rest);
    }
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(predicate, what, timeoutMs = 30000) {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test("a server killed mid-stream: the view stays gap-free and duplicate-free, posts land once", async () => {
  const options = { backoff: { initialMs: 100, maxMs: 1000 }, requestTimeoutMs: 5000 };
  const reader = new ChatClient({
    ...options,
    url: [firstUrl, secondUrl],
    token: process.env.CHAT_TOKEN,
    WebSocket: loggingSocket("reader"),
  });
  const writer = new ChatClient({ ...options, url: secondUrl, token: process.env.CHAT_WRITER_TOKEN, WebSocket: loggingSocket("writer") });
  const seen = [];
  const opens = [];
  reader.on("message", (event) => event.action === "create" && seen.push(event.message));
  reader.on("open", (event) => opens.push(event));
  try {
    await Promise.all([reader.connect(), writer.connect()]);
    assert.equal(opens[0].url, firstUrl);
    await reader.joinRoom(room);
    await reader.subscribeToMessages(room, { afterSeq: 0 });

    let killed = false;
    const writing = (async () => {
      const posted = [];
      for (let i = 0; i < WRITER_POSTS; i++) {
        posted.push(await writer.createMessage(room, `w${i}`));
        if (i + 1 === KILL_AFTER) {
          process.kill(-Number(process.env.CHAT_KILL_PGID), "SIGKILL");
          killed = true;
        }
        await sleep(15);
      }
      return posted;
    })();
    // The reader posts too, before, during and after the crash: retried with the same client_id.
    const reading = (async () => {
      const posted = [];
      for (let i = 0; i < READER_POSTS; i++) {
        posted.push(await reader.createMessage(room, `r${i}`));
        await sleep(40);
      }
      return posted;
    })();
    const [written, read] = await Promise.all([writing, reading]);
    assert.ok(killed);

    const lastSeq = Math.max(...written.map((m) => m.seq), ...read.map((m) => m.seq));
    assert.equal(lastSeq, WRITER_POSTS + READER_POSTS, "every post stored once");
    await until(() => reader.lastSeq(room) === lastSeq, `the reader to see seq ${lastSeq}`);
    const seqs = seen.map((m) => m.seq);
    assert.deepEqual(seqs, Array.from({ length: lastSeq }, (_, i) => i + 1), "gap-free, duplicate-free, in order");
    const texts = seen.map((m) => m.text).sort();
    const expected = [...Array.from({ length: WRITER_POSTS }, (_, i) => `w${i}`), ...Array.from({ length: READER_POSTS }, (_, i) => `r${i}`)];
    assert.deepEqual(texts, expected.sort());
    assert.ok(opens.some((event) => event.reconnect && event.url === secondUrl), "reconnected to the surviving server");

    // The stored history agrees: each post once.
    const history = await writer.listMessages(room, { after_seq: 0, limit: 200 });
    assert.equal(history.results.length, lastSeq);
    assert.equal(new Set(history.results.map((m) => m.text)).size, lastSeq);
  } finally {
    reader.close();
    writer.close();
  }
});
