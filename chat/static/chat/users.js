"use strict";
// The users page: subscribe_to_online_users gives who is online now, user_status pushes flip them.
(() => {
  const SUBSCRIPTION = "online-users";
  const listNode = document.getElementById("users");
  const statusBadge = document.getElementById("connection-status");

  function entryFor(user) {
    let entry = listNode.querySelector(`.user-entry[data-user-id="${Number(user.id)}"]`);
    if (!entry) {
      // Signed up after this page was rendered.
      entry = document.createElement("li");
      entry.className = "list-group-item d-flex justify-content-between align-items-center user-entry";
      entry.dataset.userId = String(user.id);
      const name = document.createElement("span");
      name.className = "text-break username";
      name.textContent = user.username;
      const badge = document.createElement("span");
      badge.className = "badge rounded-pill user-status";
      entry.append(name, badge);
      listNode.append(entry);
    }
    return entry;
  }

  // Start (or reopen) the direct room with a user, then go to it.
  listNode.addEventListener("click", async (event) => {
    const button = event.target.closest(".dm-button");
    if (!button) return;
    button.disabled = true;
    try {
      const room = await socket.call("open_direct", { user_id: Number(button.dataset.userId) });
      window.location.href = `/chat/${encodeURIComponent(room.name)}/`;
    } catch (failure) {
      const error = document.getElementById("users-error");
      error.textContent = failure.message;
      error.classList.remove("d-none");
      button.disabled = false;
    }
  });

  function setOnline(entry, online) {
    const badge = entry.querySelector(".user-status");
    badge.dataset.online = online ? "true" : "false";
    badge.textContent = online ? "online" : "offline";
    badge.className = `badge rounded-pill user-status ${online ? "text-bg-success" : "text-bg-secondary"}`;
    entry.dataset.online = badge.dataset.online;
  }

  const socket = new ChatSocket({
    onStatus: (status) => {
      statusBadge.textContent = status === "closed" ? "Reconnecting…" : "Connecting…";
      statusBadge.className = `badge ${status === "closed" ? "text-bg-warning" : "text-bg-secondary"}`;
    },
    onOpen: async () => {
      const { users } = await socket.call("subscribe_to_online_users", { request_id: SUBSCRIPTION });
      const online = new Set(users.map((u) => u.id));
      users.forEach(entryFor);
      for (const entry of listNode.querySelectorAll(".user-entry")) setOnline(entry, online.has(Number(entry.dataset.userId)));
      statusBadge.textContent = "Live";
      statusBadge.className = "badge text-bg-success";
      document.body.dataset.ready = "true";
    },
    onPush: (frame) => {
      if (frame.action === "user_status" && frame.request_id === SUBSCRIPTION) setOnline(entryFor(frame.data.user), frame.data.online);
    },
  });
  window.chatSocket = socket;
})();
