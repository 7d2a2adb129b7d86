// Parse and validate an AsyncAPI document with the official parser (@asyncapi/parser, pinned
// in package-lock.json), as `asyncapi validate` does; print its diagnostics as JSON, one per line.
// Usage: node asyncapi_validate.cjs <file>. Exit 1 if the document has errors or could not be parsed.
"use strict";
const fs = require("node:fs");
const { Parser, DiagnosticSeverity } = require("@asyncapi/parser");

async function main(path) {
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(fs.readFileSync(path, "utf8"), { source: path });
  for (const d of diagnostics) {
    const severity = Object.keys(DiagnosticSeverity).find((k) => DiagnosticSeverity[k] === d.severity);
    console.log(JSON.stringify({ severity, code: d.code, message: d.message, path: d.path.join(".") }));
  }
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  if (!document || errors.length) process.exit(1);
  console.log(JSON.stringify({ parsed: true, version: document.version(), operations: document.operations().length }));
}

main(process.argv[2]).catch((err) => {
  console.error(err);
  process.exit(2);
});
