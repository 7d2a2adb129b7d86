"use strict";
// The room box: an empty name is refused inline, before any request (the server checks too).
(() => {
  const form = document.getElementById("room-form");
  const input = document.getElementById("room-name");
  const error = document.getElementById("room-name-error");

  form.addEventListener("submit", (event) => {
    const name = input.value.trim();
    if (name) {
      return; // the server redirects ?name=... to the room's page
    }
    event.preventDefault();
    error.textContent = "Type a room name.";
    input.classList.add("is-invalid");
    input.focus();
  });
  input.addEventListener("input", () => input.classList.remove("is-invalid"));
})();
