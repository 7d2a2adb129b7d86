"use strict";
// The rooms index: the room box (public or private), and the inbox of the user's rooms with unread
// badges and previews, kept live by subscribe_to_my_rooms (api_docs/PROTOCOL.md §6).
(() => {
  const form = document.getElementById("room-form");
  const input = document.getElementById("room-name");
  const error = document.getElementById("room-name-error");
  const privateBox = document.getElementById("room-private");
  const inboxNode = document.getElementById("inbox");
  const emptyNode = document.getElementById("no-inbox");
  const statusBadge = document.getElementById("connection-status");
  const ME = JSON.parse(document.getElementById("my-user-id").textContent);
  const INBOX = "inbox";

  const entries = new Map(); // room pk -> inbox entry {room, role, last_read_seq, unread_count}
  const directNames = new Map(); // direct room pk -> the other member's username
  let refreshTimer = null;

  function showError(text) {
    error.textContent = text;
    input.classList.add("is-invalid");
    input.focus();
  }

  form.addEventListener("submit", async (event) => {
    const name = input.value.trim();
    if (!name) {
      event.preventDefault();
      showError("Type a room name.");
      return;
    }
    if (!privateBox.checked) return; // the server redirects ?name=... to the room's page
    event.preventDefault();
    try {
      const room = await socket.call("create", { data: { name, kind: "private" } });
      window.location.href = roomUrl(room);
    } catch (failure) {
      showError(failure.message);
    }
  });
  input.addEventListener("input", () => input.classList.remove("is-invalid"));

  function roomUrl(room) {
    return `/chat/${encodeURIComponent(room.name)}/`;
  }

  function otherMemberId(room) {
    const [low, high] = room.name.slice("direct:".length).split(":").map(Number);
    return low === ME ? high : low;
  }

  async function directName(room) {
    if (!directNames.has(room.pk)) {
      const page = await socket.call("list_members", { pk: room.pk });
      const other = page.results.find((m) => m.user.id === otherMemberId(room)) || page.results[0];
      directNames.set(room.pk, other ? other.user.username : room.name);
    }
    return directNames.get(room.pk);
  }

  function sortedEntries() {
    const at = (entry) => (entry.room.last_message ? entry.room.last_message.created_at : "");
    return [...entries.values()].sort((a, b) => {
      if (at(a) !== at(b)) return at(a) < at(b) ? 1 : -1;
      if (!at(a) && a.room.created_at !== b.room.created_at) return a.room.created_at < b.room.created_at ? 1 : -1;
      return b.room.pk - a.room.pk;
    });
  }

  function render() {
    const nodes = sortedEntries().map((entry) => {
      const { room } = entry;
      const link = document.createElement("a");
      link.className = "list-group-item list-group-item-action inbox-entry";
      link.href = roomUrl(room);
      link.dataset.room = String(room.pk);
      link.dataset.kind = room.kind;
      const top = document.createElement("div");
      top.className = "d-flex w-100 justify-content-between align-items-center gap-2";
      const name = document.createElement("span");
      name.className = "fw-semibold text-break room-name";
      name.textContent = room.kind === "direct" ? directNames.get(room.pk) || "…" : room.name;
      const right = document.createElement("span");
      right.className = "d-flex align-items-center gap-1 text-nowrap";
      if (room.kind !== "public") {
        const kind = document.createElement("span");
        kind.className = "badge text-bg-light room-kind";
        kind.textContent = room.kind === "direct" ? "direct" : "private";
        right.append(kind);
      }
      const badge = document.createElement("span");
      badge.className = `badge rounded-pill text-bg-primary unread-badge${entry.unread_count ? "" : " d-none"}`;
      badge.textContent = String(entry.unread_count);
      badge.setAttribute("aria-label", `${entry.unread_count} unread`);
      right.append(badge);
      top.append(name, right);
      const preview = document.createElement("div");
      preview.className = "small text-truncate last-message";
      if (room.last_message) {
        const who = document.createElement("span");
        who.className = "fw-semibold";
        who.textContent = `${room.last_message.user.username}: `;
        preview.append(who, document.createTextNode(room.last_message.text));
      } else {
        preview.classList.add("text-body-secondary");
        preview.textContent = "No messages yet";
      }
      link.append(top, preview);
      return link;
    });
    inboxNode.replaceChildren(...nodes);
    emptyNode.classList.toggle("d-none", entries.size > 0);
  }

  async function refresh() {
    const page = await socket.call("list_my_rooms", { page_size: 200 });
    entries.clear();
    page.results.forEach((entry) => entries.set(entry.room.pk, entry));
    render();
    // Direct rooms show the other member: look each up once, then render again.
    const directs = page.results.filter((e) => e.room.kind === "direct" && !directNames.has(e.room.pk));
    if (directs.length) {
      await Promise.all(directs.map((e) => directName(e.room)));
      render();
    }
  }

  function refreshSoon() {
    // Membership and read pushes change counts the page cannot work out alone: read them afresh.
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => refresh().catch(() => {}), 100);
  }

  function onPush(frame) {
    if (frame.request_id !== INBOX) return;
    if (frame.action === "room_message") {
      const entry = entries.get(frame.room);
      if (!entry) {
        refreshSoon();
        return;
      }
      entry.room.last_message = frame.data;
      if (frame.data.user.id === ME) {
        entry.last_read_seq = frame.data.seq; // posting reads up to your own message
        entry.unread_count = 0;
      } else if (frame.data.seq > entry.last_read_seq) {
        entry.unread_count += 1;
      }
      render();
    } else if (frame.action === "membership" || frame.action === "read") {
      refreshSoon();
    }
  }

  const socket = new ChatSocket({
    onStatus: (status) => {
      statusBadge.textContent = status === "closed" ? "Reconnecting…" : "Connecting…";
      statusBadge.className = `badge ${status === "closed" ? "text-bg-warning" : "text-bg-secondary"}`;
    },
    onOpen: async () => {
      await socket.call("subscribe_to_my_rooms", { request_id: INBOX });
      await refresh();
      statusBadge.textContent = "Live";
      statusBadge.className = "badge text-bg-success";
      document.body.dataset.ready = "true";
    },
    onPush,
  });
  window.chatSocket = socket;
})();
