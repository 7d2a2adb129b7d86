"""DCRF's own JavaScript client (npm `dcrf-client`, pinned, unmodified) against a live server (api_docs/PROTOCOL.md §8)."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.contract import FrameChecker
from tests.js_tools import node_tools
from tests.live import register_user, run_servers

pytestmark = pytest.mark.live

SCRIPT = Path(__file__).resolve().parent.parent / "js" / "dcrf_client.test.cjs"


def test_dcrf_client_does_crud_custom_actions_and_instance_subscriptions(transactional_db: None, tmp_path: Path) -> None:
    tools = node_tools()
    frame_log = tmp_path / "frames.log"
    with run_servers(1) as (server,):
        user = register_user(server.base_url)
        result = subprocess.run(
            [tools.node, "--test", "--test-reporter=tap", str(SCRIPT)],
            env=tools.env(CHAT_WS_URL=server.ws_url, CHAT_TOKEN=user.token, CHAT_FRAME_LOG=str(frame_log)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{server.output()}"
    assert "# pass 5" in result.stdout and "# fail 0" in result.stdout, result.stdout
    # Every frame dcrf-client sent and got, stream envelopes included, is in the AsyncAPI contract.
    checker, pushes = FrameChecker(), set()
    for line in frame_log.read_text().splitlines():
        direction, frame = line[:1], json.loads(line[2:])
        if direction == ">":
            checker.sent(frame)
            continue
        checker.received(frame)
        if "stream" in frame and "response_status" not in frame["payload"]:
            pushes.add(frame["payload"]["action"])
    assert pushes >= {"update", "delete", "create"}, pushes
