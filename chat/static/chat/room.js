"use strict";
/*
 * The room page, on the public WebSocket API only:
 *  - find the room by name (`list`), `create` it when absent, `join_room` (presence);
 *  - `list_messages` for the last page, then `subscribe_to_messages_in_room` with after_seq,
 *    so no message falls between the two; older pages with before_seq on scroll-up;
 *  - after a reconnect: re-join and resubscribe with after_seq = the last seq seen, and
 *    resend unacknowledged messages under their client_id (the server drops repeats).
 * Messages are keyed by id, so a message never shows twice. Message text only ever
 * reaches the DOM through textContent.
 * Version 2 (§7): replies (`reply_to`, quoted above the reply), reactions from a small
 * palette (`add_reaction` / `remove_reaction`; changes arrive as `update` pushes), and
 * `search_messages` in this room or in every room.
 */
(() => {
  const ROOM_NAME = JSON.parse(document.getElementById("room-name").textContent);
  const MY_ID = JSON.parse(document.getElementById("my-user-id").textContent);
  const MAX_LENGTH = JSON.parse(document.getElementById("max-length").textContent);
  const PAGE_SIZE = 50;
  const SUBSCRIPTION = "room-messages";
  const TYPING_EVERY_MS = 2000; // at most one `typing` request per this interval
  const TYPING_SHOWN_MS = 4000; // how long a typing push keeps "X is typing…" up
  const REACTION_PALETTE = ["\u{1F44D}", "\u2764\uFE0F", "\u{1F602}", "\u{1F389}", "\u{1F62E}", "\u{1F622}"];
  const QUOTE_LENGTH = 120;
  const SEARCH_PAGE = 20;
  const SEARCH_MAX_LENGTH = 200;

  const el = (id) => document.getElementById(id);
  const scroller = el("message-scroller");
  const list = el("messages");
  const pendingList = el("pending");
  const input = el("message-input");
  const sendButton = el("send");
  const sendError = el("send-error");
  const counter = el("char-count");
  const statusBadge = el("connection-status");
  const roomError = el("room-error");
  const loadOlderButton = el("load-older");
  const historyStart = el("history-start");

  let roomPk = null;
  let ready = false; // joined and subscribed on the current connection
  let historyLoaded = false;
  let lastSeq = 0; // highest seq received: where a resubscription resumes
  let oldestSeq = null; // lowest seq loaded from history: where the next older page ends
  let hasOlder = false;
  let loadingOlder = false;
  let lastTypingSent = 0;
  const messages = new Map(); // id -> {data, node}
  const typists = new Map(); // user id -> {username, until}
  const outbox = []; // sends not acknowledged yet: {clientId, text, replyTo, node, inFlight}
  const deletedIds = new Set(); // messages deleted while this page was open: their replies say so
  let replyTo = null; // the message the next send replies to

  const socket = new ChatSocket({ onOpen: start, onPush: handlePush, onStatus: showStatus });
  window.chatSocket = socket; // lets tests (and curious users) drop the connection

  // --- connection ---------------------------------------------------------------------

  function showStatus(status) {
    if (status !== "open") setReady(false);
    const labels = { connecting: ["Connecting…", "text-bg-secondary"], open: ["Joining…", "text-bg-secondary"], closed: ["Reconnecting…", "text-bg-warning"] };
    const [label, style] = labels[status];
    statusBadge.textContent = label;
    statusBadge.className = `badge ${style}`;
  }

  function setReady(value) {
    ready = value;
    input.disabled = !value;
    sendButton.disabled = !value;
    document.body.dataset.ready = value ? "true" : "false";
    if (value) {
      statusBadge.textContent = "Live";
      statusBadge.className = "badge text-bg-success";
    }
  }

  async function start(isReconnect) {
    try {
      if (roomPk === null) roomPk = await findOrCreateRoom();
      const room = await socket.call("join_room", { pk: roomPk });
      renderPresence(room.current_users);
      if (!historyLoaded) {
        const page = await socket.call("list_messages", { pk: roomPk, limit: PAGE_SIZE });
        page.results.forEach(upsertMessage);
        oldestSeq = page.results.length ? page.results[0].seq : null;
        setHasOlder(page.has_more);
        historyLoaded = true;
        scrollToBottom();
      } else if (isReconnect) {
        await refreshRecent();
      }
      await socket.call("subscribe_to_messages_in_room", { pk: roomPk, request_id: SUBSCRIPTION, after_seq: lastSeq });
      hideRoomError();
      setReady(true);
      // The members panel (members.js) and the page title learn the room's kind and owner.
      document.dispatchEvent(new CustomEvent("chat:room", { detail: room }));
      markReadSoon();
      await flushOutbox();
    } catch (error) {
      if (error instanceof ChatDisconnected) return; // the next connection starts over
      if (error instanceof ChatApiError && error.status === 404) {
        roomPk = null; // deleted meanwhile: the next connection looks it up (and creates it) again
      }
      showRoomError(error.message);
    }
  }

  async function findOrCreateRoom() {
    let lastError = null;
    // Twice: another user may create the same name between our `list` and our `create`.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const found = await socket.call("list", { name: ROOM_NAME, page_size: 1 });
      if (found.results.length) return found.results[0].pk;
      const created = await socket.request("create", { data: { name: ROOM_NAME } });
      if (created.response_status < 300) return created.data.pk;
      lastError = new ChatApiError(created);
      if (created.response_status !== 400) break;
    }
    throw lastError;
  }

  /** After a reconnect: apply edits and deletions of the last page that happened while offline. */
  async function refreshRecent() {
    const knownUpTo = lastSeq;
    const page = await socket.call("list_messages", { pk: roomPk, limit: PAGE_SIZE });
    const fresh = new Map(page.results.map((m) => [m.id, m]));
    const from = page.has_more && page.results.length ? page.results[0].seq : 0;
    for (const { data } of [...messages.values()]) {
      if (data.seq >= from && data.seq <= knownUpTo && !fresh.has(data.id)) removeMessage(data.id);
    }
    // Newer ones come from the resubscription's replay, in order and without a gap.
    page.results.filter((m) => m.seq <= knownUpTo).forEach(upsertMessage);
  }

  // --- read state (api_docs/PROTOCOL.md §6): what this page shows is read ---------------------

  let markedSeq = 0;
  let markTimer = null;

  function markReadSoon() {
    clearTimeout(markTimer);
    markTimer = setTimeout(() => {
      if (!ready || document.visibilityState !== "visible" || lastSeq <= markedSeq) return;
      const seq = lastSeq;
      socket
        .call("mark_read", { pk: roomPk, seq })
        .then(() => {
          markedSeq = Math.max(markedSeq, seq);
        })
        .catch(() => {}); // e.g. not a member (a public room only browsed): nothing to mark
    }, 300);
  }
  document.addEventListener("visibilitychange", markReadSoon);

  function showRoomError(text) {
    roomError.textContent = text;
    roomError.classList.remove("d-none");
  }

  function hideRoomError() {
    roomError.classList.add("d-none");
  }

  // --- pushes -------------------------------------------------------------------------

  function handlePush(frame) {
    if (frame.request_id === SUBSCRIPTION) {
      if (frame.action === "subscription_ended") {
        // Removed, banned, or the room was deleted: nothing more comes, and rejoining would fail.
        setReady(false);
        statusBadge.textContent = "Ended";
        statusBadge.className = "badge text-bg-danger";
        showRoomError(frame.reason === "room_deleted" ? "This room was deleted." : "You no longer have access to this room.");
        return;
      }
      if (frame.action === "create" || frame.action === "update") {
        const nearBottom = isNearBottom();
        upsertMessage(frame.data);
        if (nearBottom) scrollToBottom();
        if (frame.action === "create") markReadSoon();
      } else if (frame.action === "delete") {
        removeMessage(frame.data.id !== undefined ? frame.data.id : frame.pk);
      }
    } else if (frame.action === "presence" && frame.room === roomPk) {
      renderPresence(frame.data.users);
    } else if (frame.action === "typing" && frame.room === roomPk) {
      const user = frame.data.user;
      typists.set(user.id, { username: user.username, until: Date.now() + TYPING_SHOWN_MS });
      renderTyping();
      setTimeout(renderTyping, TYPING_SHOWN_MS + 50);
    }
  }

  function renderPresence(users) {
    const target = el("presence");
    target.replaceChildren();
    users.forEach((user, index) => {
      const span = document.createElement("span");
      span.className = "present-user fw-semibold";
      span.dataset.userId = String(user.id);
      span.textContent = user.username;
      if (index) target.append(", ");
      target.append(span);
    });
  }

  function renderTyping() {
    const now = Date.now();
    for (const [id, typist] of typists) if (typist.until <= now) typists.delete(id);
    const names = [...typists.values()].map((t) => t.username);
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = "Several people are typing…";
    el("typing").textContent = text;
  }

  // --- messages -----------------------------------------------------------------------

  function formatTime(iso) {
    const date = new Date(iso);
    const sameDay = date.toDateString() === new Date().toDateString();
    return sameDay ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  }

  function buildMessageNode(data) {
    const node = document.createElement("div");
    node.className = "message border rounded px-2 py-1";
    const head = document.createElement("div");
    head.className = "d-flex flex-wrap gap-2 align-items-baseline small";
    const author = document.createElement("span");
    author.className = "author fw-semibold";
    const time = document.createElement("time");
    time.className = "time text-body-secondary";
    const edited = document.createElement("span");
    edited.className = "edited text-body-secondary fst-italic";
    head.append(author, time, edited);
    const quote = document.createElement("div");
    quote.className = "reply-quote mb-1 d-none";
    const text = document.createElement("div");
    text.className = "text";
    const reactions = document.createElement("div");
    reactions.className = "reactions d-flex flex-wrap gap-1";
    const palette = document.createElement("div");
    palette.className = "react-palette d-none flex-wrap gap-1 mt-1";
    node.append(head, quote, text, reactions, palette);
    if (data.user.id === MY_ID) node.classList.add("mine");
    if (data.id === undefined) return node; // still sending: nothing to reply or react to yet
    const actions = document.createElement("span");
    actions.className = "actions ms-auto d-flex gap-1";
    actions.append(actionButton("Reply", "reply", () => startReply(Number(node.dataset.id))));
    actions.append(actionButton("React", "react", () => togglePalette(node)));
    if (data.user.id === MY_ID) {
      actions.append(actionButton("Edit", "edit", () => startEdit(node)), actionButton("Delete", "delete", (button) => confirmDelete(node, button)));
    }
    head.append(actions);
    for (const emoji of REACTION_PALETTE) {
      const option = actionButton(emoji, "react-option", () => {
        palette.classList.replace("d-flex", "d-none");
        react(Number(node.dataset.id), emoji, true);
      });
      option.setAttribute("aria-label", `React with ${emoji}`);
      palette.append(option);
    }
    return node;
  }

  function actionButton(label, kind, onClick) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `btn btn-outline-secondary ${kind}`;
    button.textContent = label;
    button.addEventListener("click", () => onClick(button));
    return button;
  }

  function fillMessageNode(node, data) {
    node.dataset.id = String(data.id);
    node.dataset.seq = String(data.seq);
    node.querySelector(".author").textContent = data.user.username;
    const time = node.querySelector(".time");
    time.dateTime = data.created_at;
    time.textContent = formatTime(data.created_at);
    time.title = data.created_at_formatted;
    node.querySelector(".edited").textContent = data.edited_at ? "(edited)" : "";
    if (!node.classList.contains("editing")) node.querySelector(".text").textContent = data.text;
    fillQuote(node.querySelector(".reply-quote"), data.reply_to);
    fillReactions(node.querySelector(".reactions"), data);
  }

  /** The quoted message above a reply: its author and the start of its text, as far as this page knows it. */
  function fillQuote(quote, targetId) {
    quote.classList.toggle("d-none", targetId === null || targetId === undefined);
    if (targetId === null || targetId === undefined) return;
    quote.dataset.replyTo = String(targetId);
    const target = messages.get(targetId);
    quote.replaceChildren();
    if (target) {
      const who = document.createElement("span");
      who.className = "fw-semibold me-1 quote-author";
      who.textContent = target.data.user.username;
      const what = document.createElement("span");
      what.className = "quote-text";
      what.textContent = snippet(target.data.text);
      quote.append(who, what);
    } else {
      quote.textContent = deletedIds.has(targetId) ? "Replying to a deleted message" : "Replying to an earlier message";
    }
  }

  function snippet(text) {
    return text.length > QUOTE_LENGTH ? `${text.slice(0, QUOTE_LENGTH)}…` : text;
  }

  /** Re-quote the replies to this message (it was loaded, edited or deleted). */
  function refreshQuotesOf(id) {
    for (const { data, node } of messages.values()) {
      if (data.reply_to === id) fillQuote(node.querySelector(".reply-quote"), id);
    }
  }

  function fillReactions(box, data) {
    box.replaceChildren();
    for (const reaction of data.reactions || []) {
      const mine = reaction.user_ids.includes(MY_ID);
      const button = document.createElement("button");
      button.type = "button";
      button.className = `btn reaction ${mine ? "btn-primary mine" : "btn-outline-secondary"}`;
      button.dataset.emoji = reaction.emoji;
      button.setAttribute("aria-pressed", mine ? "true" : "false");
      button.title = mine ? "Click to take your reaction back" : "Click to react too";
      button.textContent = `${reaction.emoji} ${reaction.count}`;
      button.addEventListener("click", () => react(data.id, reaction.emoji, !mine));
      box.append(button);
    }
  }

  function togglePalette(node) {
    const palette = node.querySelector(".react-palette");
    const open = palette.classList.contains("d-none");
    palette.classList.toggle("d-none", !open);
    palette.classList.toggle("d-flex", open);
  }

  async function react(id, emoji, add) {
    try {
      const updated = await socket.call(add ? "add_reaction" : "remove_reaction", { pk: id, emoji });
      upsertMessage(updated);
    } catch (error) {
      showSendError(error instanceof ChatDisconnected ? "Not connected: try again in a moment." : error.message);
    }
  }

  // --- replies --------------------------------------------------------------------------

  function startReply(id) {
    const known = messages.get(id);
    if (!known) return;
    replyTo = known.data;
    el("reply-author").textContent = known.data.user.username;
    el("reply-text").textContent = snippet(known.data.text);
    el("reply-bar").classList.replace("d-none", "d-flex");
    input.focus();
  }

  function cancelReply() {
    replyTo = null;
    el("reply-bar").classList.replace("d-flex", "d-none");
  }

  el("reply-cancel").addEventListener("click", cancelReply);

  /** Show a message once, in seq order, whichever way it arrives (history, replay, live, own send). */
  function upsertMessage(data) {
    const known = messages.get(data.id);
    if (known) {
      known.data = data;
      fillMessageNode(known.node, data);
    } else {
      const node = buildMessageNode(data);
      fillMessageNode(node, data);
      messages.set(data.id, { data, node });
      let before = null;
      for (const other of list.children) {
        if (Number(other.dataset.seq) > data.seq) {
          before = other;
          break;
        }
      }
      list.insertBefore(node, before);
    }
    lastSeq = Math.max(lastSeq, data.seq);
    if (data.user.id === MY_ID && data.client_id) dropFromOutbox(data.client_id);
    if (typists.delete(data.user.id)) renderTyping();
    refreshQuotesOf(data.id);
  }

  function removeMessage(id) {
    deletedIds.add(id);
    if (replyTo && replyTo.id === id) cancelReply();
    const known = messages.get(id);
    if (!known) return;
    known.node.remove();
    messages.delete(id);
    refreshQuotesOf(id);
  }

  function isNearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
  }

  // --- older history ------------------------------------------------------------------

  function setHasOlder(value) {
    hasOlder = value;
    loadOlderButton.classList.toggle("d-none", !value);
    historyStart.classList.toggle("d-none", value || messages.size === 0);
  }

  async function loadOlder() {
    if (!hasOlder || loadingOlder || oldestSeq === null || !socket.connected) return;
    loadingOlder = true;
    try {
      const page = await socket.call("list_messages", { pk: roomPk, before_seq: oldestSeq, limit: PAGE_SIZE });
      const heightBefore = scroller.scrollHeight;
      page.results.forEach(upsertMessage);
      if (page.results.length) oldestSeq = page.results[0].seq;
      setHasOlder(page.has_more && page.results.length > 0);
      // Keep the message the reader was looking at in place.
      scroller.scrollTop += scroller.scrollHeight - heightBefore;
    } catch (error) {
      if (!(error instanceof ChatDisconnected)) showRoomError(error.message);
    } finally {
      loadingOlder = false;
    }
  }

  scroller.addEventListener("scroll", () => {
    if (scroller.scrollTop < 60) loadOlder();
  });
  loadOlderButton.addEventListener("click", loadOlder);

  // --- sending ------------------------------------------------------------------------

  function updateCounter() {
    const length = input.value.trim().length;
    counter.textContent = `${length}/${MAX_LENGTH}`;
    counter.classList.toggle("text-danger", length > MAX_LENGTH);
    counter.classList.toggle("fw-semibold", length > MAX_LENGTH);
    counter.classList.toggle("text-body-secondary", length <= MAX_LENGTH);
  }

  function showSendError(text) {
    sendError.textContent = text;
  }

  function describeSendFailure(frame) {
    if (frame.response_status === 429) {
      const wait = frame.data && frame.data.retry_after;
      return wait ? `Too many messages: wait ${wait} s and send again.` : ChatSocket.describeErrors(frame);
    }
    return ChatSocket.describeErrors(frame);
  }

  function submitMessage() {
    const text = input.value;
    if (!text.trim()) {
      showSendError("Type a message first.");
      return;
    }
    if (text.trim().length > MAX_LENGTH) {
      showSendError(`Message too long: ${text.trim().length} characters, the limit is ${MAX_LENGTH}.`);
      return;
    }
    showSendError("");
    const item = { clientId: chatNewClientId(), text, replyTo: replyTo ? replyTo.id : null, node: null, inFlight: false };
    item.node = buildMessageNode({ user: { id: -1 } });
    item.node.classList.add("sending", "mine");
    item.node.querySelector(".author").textContent = "You";
    item.node.querySelector(".time").textContent = "sending…";
    item.node.querySelector(".text").textContent = text;
    fillQuote(item.node.querySelector(".reply-quote"), item.replyTo);
    cancelReply();
    pendingList.append(item.node);
    outbox.push(item);
    input.value = "";
    updateCounter();
    scrollToBottom();
    sendItem(item);
  }

  async function sendItem(item) {
    if (!ready || item.inFlight) return; // sent (again) once the connection is back
    item.inFlight = true;
    let frame;
    try {
      const params = { room: roomPk, message: item.text, client_id: item.clientId };
      if (item.replyTo !== null) params.reply_to = item.replyTo;
      frame = await socket.request("create_message", params);
    } catch (error) {
      item.inFlight = false; // no answer: resent after the reconnect, with the same client_id
      return;
    }
    item.inFlight = false;
    if (frame.response_status < 300) {
      upsertMessage(frame.data);
      scrollToBottom();
      return;
    }
    dropFromOutbox(item.clientId);
    showSendError(describeSendFailure(frame));
    if (!input.value) {
      input.value = item.text; // give the text back so it is not lost
      updateCounter();
    }
  }

  function dropFromOutbox(clientId) {
    const index = outbox.findIndex((item) => item.clientId === clientId);
    if (index < 0) return;
    outbox[index].node.remove();
    outbox.splice(index, 1);
  }

  async function flushOutbox() {
    for (const item of [...outbox]) {
      if (!ready) return;
      await sendItem(item);
    }
  }

  function sendTyping() {
    const now = Date.now();
    if (!ready || now - lastTypingSent < TYPING_EVERY_MS) return;
    lastTypingSent = now;
    socket.request("typing", { pk: roomPk }).catch(() => {});
  }

  el("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submitMessage();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitMessage();
    }
  });
  input.addEventListener("input", () => {
    updateCounter();
    if (sendError.textContent) showSendError("");
    if (input.value.trim()) sendTyping();
  });

  // --- edit and delete of one's own messages -----------------------------------------------

  function startEdit(node) {
    if (node.classList.contains("editing")) return;
    const id = Number(node.dataset.id);
    const known = messages.get(id);
    if (!known) return;
    node.classList.add("editing");
    const textBox = node.querySelector(".text");
    const editor = document.createElement("textarea");
    editor.className = "form-control form-control-sm edit-input";
    editor.rows = 2;
    editor.value = known.data.text;
    const hint = document.createElement("div");
    hint.className = "small text-body-secondary edit-hint";
    hint.textContent = "Enter saves, Escape cancels.";
    textBox.replaceChildren(editor, hint);
    editor.focus();
    const finish = () => {
      node.classList.remove("editing");
      const current = messages.get(id);
      textBox.textContent = current ? current.data.text : "";
    };
    editor.addEventListener("keydown", async (event) => {
      if (event.key === "Escape") {
        finish();
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        try {
          const updated = await socket.call("update_message", { pk: id, message: editor.value });
          finish();
          upsertMessage(updated);
        } catch (error) {
          hint.textContent = error instanceof ChatDisconnected ? "Not connected: try again in a moment." : error.message;
          hint.className = "small text-danger edit-hint";
        }
      }
    });
  }

  function confirmDelete(node, button) {
    // Two clicks instead of a confirm() dialog.
    if (button.dataset.armed !== "true") {
      button.dataset.armed = "true";
      button.textContent = "Delete?";
      button.classList.replace("btn-outline-secondary", "btn-danger");
      setTimeout(() => {
        button.dataset.armed = "false";
        button.textContent = "Delete";
        button.classList.replace("btn-danger", "btn-outline-secondary");
      }, 3000);
      return;
    }
    const id = Number(node.dataset.id);
    socket
      .call("delete_message", { pk: id })
      .then(() => removeMessage(id))
      .catch((error) => showSendError(error instanceof ChatDisconnected ? "Not connected: try again in a moment." : error.message));
  }

  // --- search ---------------------------------------------------------------------------

  const search = { query: "", scope: "room", lastId: null, count: 0 };
  const roomNames = new Map(); // room pk -> name, for "all rooms" results

  function showSearchError(text) {
    el("search-error").textContent = text;
  }

  async function roomName(pk) {
    if (pk === roomPk) return ROOM_NAME;
    if (!roomNames.has(pk)) {
      try {
        roomNames.set(pk, (await socket.call("retrieve", { pk })).name);
      } catch (error) {
        return `room ${pk}`;
      }
    }
    return roomNames.get(pk);
  }

  async function buildSearchResult(data) {
    const item = document.createElement("div");
    item.className = "search-result border rounded px-2 py-1 small";
    item.dataset.id = String(data.id);
    const head = document.createElement("div");
    head.className = "d-flex flex-wrap gap-2 align-items-baseline";
    if (search.scope === "all") {
      const name = await roomName(data.room);
      const link = document.createElement("a");
      link.className = "result-room fw-semibold";
      link.href = `/chat/${encodeURIComponent(name)}/`;
      link.textContent = `#${name}`;
      head.append(link);
    }
    const author = document.createElement("span");
    author.className = "author fw-semibold";
    author.textContent = data.user.username;
    const time = document.createElement("time");
    time.className = "time text-body-secondary";
    time.dateTime = data.created_at;
    time.textContent = formatTime(data.created_at);
    head.append(author, time);
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = data.text;
    item.append(head, text);
    return item;
  }

  async function runSearch(more) {
    const params = { query: search.query, limit: SEARCH_PAGE };
    if (search.scope === "room") params.pk = roomPk;
    if (more && search.lastId !== null) params.before_id = search.lastId;
    let page;
    try {
      page = await socket.call("search_messages", params);
    } catch (error) {
      showSearchError(error instanceof ChatDisconnected ? "Not connected: try again in a moment." : error.message);
      return;
    }
    const results = el("search-results");
    if (!more) results.replaceChildren();
    for (const data of page.results) results.append(await buildSearchResult(data));
    search.count += page.results.length;
    if (page.results.length) search.lastId = page.results[page.results.length - 1].id;
    el("search-more").classList.toggle("d-none", !page.has_more);
    const where = search.scope === "room" ? "in this room" : "in all rooms";
    el("search-summary").textContent = search.count
      ? `${search.count}${page.has_more ? "+" : ""} result${search.count === 1 ? "" : "s"} for “${search.query}” ${where}`
      : `No messages match “${search.query}” ${where}`;
    el("search-panel").classList.remove("d-none");
  }

  el("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = el("search-input").value.trim();
    if (!query) {
      showSearchError("Type something to search for.");
      return;
    }
    if (query.length > SEARCH_MAX_LENGTH) {
      showSearchError(`Too long: at most ${SEARCH_MAX_LENGTH} characters.`);
      return;
    }
    if (roomPk === null) {
      showSearchError("Not connected: try again in a moment.");
      return;
    }
    showSearchError("");
    Object.assign(search, { query, scope: el("search-scope").value, lastId: null, count: 0 });
    runSearch(false);
  });
  el("search-input").addEventListener("input", () => showSearchError(""));
  el("search-more").addEventListener("click", () => runSearch(true));
  el("search-close").addEventListener("click", () => el("search-panel").classList.add("d-none"));

  updateCounter();
})();
