"use strict";
/*
 * The room's members panel (api_docs/PROTOCOL.md §5): who is in the room and their role, and the
 * moderation actions the viewer may use on each (owner: remove, ban, make moderator / member;
 * moderator: remove and ban plain members), plus adding people by username. Uses the room
 * page's connection (window.chatSocket) once room.js says which room this is ("chat:room").
 */
(() => {
  const MY_ID = JSON.parse(document.getElementById("my-user-id").textContent);
  const USER_IDS = JSON.parse(document.getElementById("user-ids").textContent); // username -> id
  const el = (id) => document.getElementById(id);
  const toggle = el("members-toggle");
  const panel = el("members-panel");
  const listNode = el("members");
  const addForm = el("add-member-form");
  const addInput = el("add-member-name");
  const errorNode = el("members-error");
  const kindBadge = el("room-kind");
  const title = el("room-title");

  let room = null;
  let myRole = null;

  document.addEventListener("chat:room", (event) => {
    room = event.detail;
    if (room.kind !== "public") {
      kindBadge.textContent = room.kind;
      kindBadge.classList.remove("d-none");
    }
    if (room.kind === "direct" || !panel.classList.contains("d-none")) load().catch(showError);
  });

  toggle.addEventListener("click", () => {
    const opening = panel.classList.contains("d-none");
    panel.classList.toggle("d-none", !opening);
    toggle.setAttribute("aria-expanded", String(opening));
    if (opening && room) load().catch(showError);
  });

  function showError(failure) {
    errorNode.textContent = failure && failure.message ? failure.message : String(failure);
  }

  function mayModerate(target) {
    if (!room || room.kind === "direct" || target.user.id === MY_ID || target.role === "owner") return false;
    return myRole === "owner" || (myRole === "moderator" && target.role === "member");
  }

  function button(label, className, onClick) {
    const node = document.createElement("button");
    node.type = "button";
    node.className = `btn btn-sm btn-outline-secondary ${className}`;
    node.textContent = label;
    node.addEventListener("click", async () => {
      node.disabled = true;
      errorNode.textContent = "";
      try {
        await onClick();
        await load();
      } catch (failure) {
        showError(failure);
        node.disabled = false;
      }
    });
    return node;
  }

  async function load() {
    const page = await window.chatSocket.call("list_members", { pk: room.pk, page_size: 200 });
    const me = page.results.find((m) => m.user.id === MY_ID);
    myRole = me ? me.role : null;
    if (room.kind === "direct") {
      const other = page.results.find((m) => m.user.id !== MY_ID);
      title.textContent = other ? `${other.user.username} (direct)` : "Notes to self";
    }
    listNode.replaceChildren(
      ...page.results.map((member) => {
        const item = document.createElement("li");
        item.className = "list-group-item d-flex flex-wrap align-items-center gap-2 member-entry";
        item.dataset.userId = String(member.user.id);
        const name = document.createElement("span");
        name.className = "flex-grow-1 text-break member-name";
        name.textContent = member.user.username;
        const role = document.createElement("span");
        role.className = "badge text-bg-light member-role";
        role.textContent = member.role;
        item.append(name, role);
        if (mayModerate(member)) {
          const call = (action, params = {}) => window.chatSocket.call(action, { pk: room.pk, user_id: member.user.id, ...params });
          if (myRole === "owner") {
            const promote = member.role === "member";
            item.append(
              button(promote ? "Make moderator" : "Make member", promote ? "member-promote" : "member-demote", () =>
                call("set_role", { role: promote ? "moderator" : "member" }),
              ),
            );
          }
          item.append(button("Remove", "member-remove", () => call("remove_member")));
          item.append(button("Ban", "member-ban", () => call("ban_member")));
        }
        return item;
      }),
    );
    addForm.classList.toggle("d-none", !(room.kind !== "direct" && (myRole === "owner" || myRole === "moderator")));
  }

  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorNode.textContent = "";
    const username = addInput.value.trim();
    const userId = USER_IDS[username];
    if (!userId) {
      errorNode.textContent = username ? `No user named ${username}.` : "Type a username.";
      return;
    }
    try {
      await window.chatSocket.call("add_member", { pk: room.pk, user_id: userId });
      addInput.value = "";
      await load();
    } catch (failure) {
      showError(failure);
    }
  });
})();
