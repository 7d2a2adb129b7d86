// Turn the compiled client library (clients/js/dist/index.js, ESM) into the classic script the
// built-in pages load (chat/static/chat/chat-client.js, exposing window.ChatRooms), so the web
// client runs the very same code. Run after `tsc -p clients/js`:
//   node scripts/build-web-client.mjs [output]
// tests/live/test_js_client.py checks that the committed file is what this produces.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const source = fs.readFileSync(path.join(root, "clients/js/dist/index.js"), "utf8");
const names = [];
const body = source.replace(/^export (class|function) (\w+)/gm, (_, kind, name) => {
  names.push(name);
  return `${kind} ${name}`;
});
if (/^\s*(export|import)\b/m.test(body)) throw new Error("unexpected export/import left in the compiled library");
const version = JSON.parse(fs.readFileSync(path.join(root, "clients/js/package.json"), "utf8")).version;
const output = `// Generated from clients/js (@chat-rooms/client ${version}) by scripts/build-web-client.mjs: do not edit.
(function () {
"use strict";
${body.trimEnd()}
window.ChatRooms = { ${names.join(", ")} };
})();
`;
fs.writeFileSync(process.argv[2] ?? path.join(root, "chat/static/chat/chat-client.js"), output);
