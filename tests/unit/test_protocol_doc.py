"""api_docs/PROTOCOL.md, the client contract in the repository, stays in step with the code and asyncapi.yaml."""

import re

from chat.ws.connection import CLOSE_AUTH_REVOKED
from chat.ws.protocol import CLOSE_INTERNAL_ERROR
from mysite.serve import CLOSE_GOING_AWAY, CLOSE_SLOW_CONSUMER
from tests import ROOT
from tests.contract import request_and_response_messages

PROTOCOL = ROOT / "api_docs/PROTOCOL.md"


def test_every_asyncapi_action_is_in_the_contract() -> None:
    text = PROTOCOL.read_text()
    missing = [action for action in request_and_response_messages() if f"`{action}`" not in text]
    assert not missing, f"actions in asyncapi.yaml but not in api_docs/PROTOCOL.md: {missing}"


def test_every_close_code_the_server_sends_is_documented() -> None:
    table = PROTOCOL.read_text().split("### Close codes", 1)[1].split("###", 1)[0]
    for code in (CLOSE_AUTH_REVOKED, CLOSE_INTERNAL_ERROR, CLOSE_GOING_AWAY, CLOSE_SLOW_CONSUMER):
        assert re.search(rf"^\| {code} ", table, re.MULTILINE), f"close code {code} missing from api_docs/PROTOCOL.md"


def test_references_to_the_contract_name_its_path() -> None:
    """Code and docs outside api_docs/ cite `api_docs/PROTOCOL.md`, a file that exists, not a bare name."""
    bare = re.compile(r"(?<![\w/.])PROTOCOL\.md")
    offenders = []
    for folder in ("chat", "mysite", "api_docs", "tests", "bench", "docs", "scripts"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".py", ".md", ".yaml", ".js", ".html", ".sh"} or "vendor" in path.parts:
                continue
            if path.parent == ROOT / "api_docs" and path.suffix == ".md":
                continue  # documents beside it link to it relatively
            offenders += [f"{path.relative_to(ROOT)}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1) if bare.search(line)]
    assert not offenders, offenders
