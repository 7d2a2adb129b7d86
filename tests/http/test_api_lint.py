"""The API documents checked by their ecosystems' own tools (pinned npm packages): redocly for OpenAPI, @asyncapi/parser for AsyncAPI."""

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from django.core.management import call_command

from tests.contract import ASYNCAPI_PATH, asyncapi_document
from tests.js_tools import ROOT, node_tools

VALIDATE_ASYNCAPI = Path(__file__).resolve().parent.parent / "js" / "asyncapi_validate.cjs"


def redocly_lint(schema: Path) -> dict[str, Any]:
    """`redocly lint` with the committed redocly.yaml (recommended rules); its JSON report."""
    tools = node_tools()
    result = subprocess.run(
        [tools.bin("redocly"), "lint", str(schema), "--config", str(ROOT / "redocly.yaml"), "--format=json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=tools.env(REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true"),
    )
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert (result.returncode == 0) == (report["totals"]["errors"] == 0), result.stderr
    return report


def parse_asyncapi(path: Path) -> tuple[int, list[dict[str, Any]]]:
    """Exit code and diagnostics of the official AsyncAPI parser on a document."""
    tools = node_tools()
    result = subprocess.run([tools.node, str(VALIDATE_ASYNCAPI), str(path)], capture_output=True, text=True, timeout=120, env=tools.env())
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_openapi_schema_is_lint_clean_under_redocly(tmp_path: Path) -> None:
    schema = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(schema))
    report = redocly_lint(schema)
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, json.dumps(report["problems"], indent=1)[:4000]
    schemas = yaml.safe_load(schema.read_text())["components"]["schemas"]
    assert "client_id" in schemas["Message"]["required"]  # always present, null when not given
    assert schemas["Room"]["properties"]["last_message"]["type"] == "object"


def test_redocly_catches_a_lint_error(tmp_path: Path) -> None:
    schema = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(schema))
    document = yaml.safe_load(schema.read_text())
    del document["paths"]["/api/auth/token/"]["post"]["security"]
    schema.write_text(yaml.safe_dump(document))
    rules = {problem["ruleId"] for problem in redocly_lint(schema)["problems"]}
    assert "security-defined" in rules


def test_asyncapi_document_passes_the_official_parser() -> None:
    code, diagnostics = parse_asyncapi(ASYNCAPI_PATH)
    problems = [d for d in diagnostics if d.get("severity") in ("Error", "Warning")]
    assert code == 0 and not problems, diagnostics
    assert diagnostics[-1]["parsed"] is True


def test_the_official_parser_catches_a_broken_document(tmp_path: Path) -> None:
    document = asyncapi_document()
    broken = {**document, "operations": {**document["operations"], "list": {**document["operations"]["list"], "action": "shout"}}}
    path = tmp_path / "asyncapi.yaml"
    path.write_text(yaml.safe_dump(broken))
    code, diagnostics = parse_asyncapi(path)
    assert code == 1 and any(d.get("severity") == "Error" for d in diagnostics), diagnostics


def test_every_asyncapi_message_has_an_example() -> None:
    """Generic: messages added later are held to it too (their examples are validated in test_api_docs.py)."""
    messages = asyncapi_document()["components"]["messages"]
    missing = sorted(name for name, message in messages.items() if not message.get("examples"))
    assert not missing, f"messages without an example: {missing}"
    assert all(example.get("payload") is not None for message in messages.values() for example in message["examples"])
