"use strict";
/*
 * Logging out also revokes any API token this page holds (api_docs/PROTOCOL.md §8): a page
 * that keeps one under localStorage/sessionStorage "chat.apiToken" (an SPA built on this
 * site, a developer's console) calls POST /api/auth/logout/ with it before the session
 * logout, so the token stops working and its WebSockets close with 4401.
 */
(() => {
  const TOKEN_KEY = "chat.apiToken";
  const button = document.getElementById("logout");
  const form = button && button.form;
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    const token = localStorage.getItem(TOKEN_KEY) || sessionStorage.getItem(TOKEN_KEY);
    if (!token) return; // the session logout (the form) is all there is to do
    event.preventDefault();
    try {
      // credentials "omit": authenticate by the token alone, so it is the token that is revoked.
      await fetch("/api/auth/logout/", { method: "POST", headers: { Authorization: `Token ${token}` }, credentials: "omit" });
    } catch (error) {
      // Offline: the token stays valid on the server, but the page forgets it below all the same.
    }
    localStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(TOKEN_KEY);
    form.submit();
  });
})();
