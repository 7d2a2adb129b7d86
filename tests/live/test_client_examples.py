"""The client examples of api_docs/ work against a real server, and every frame they exchange matches the contract."""

import json
import shutil
import subprocess
import sys
import uuid
from typing import Any

import pytest

from api_docs.capture_transcript import capture, render
from tests import ROOT
from tests.contract import FrameChecker
from tests.live import run_servers

pytestmark = pytest.mark.live

EXAMPLES = ROOT / "api_docs" / "examples"


def run_python_example(server: str, *args: str) -> tuple[list[dict[str, Any]], list[tuple[str, Any]]]:
    """Run client.py with --trace; return the messages it printed and the frames it traced."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "client.py"), "--server", server, "--trace", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    frames = [(line[0], json.loads(line[2:])) for line in result.stderr.splitlines() if line[:2] in ("> ", "< ")]
    return [json.loads(line) for line in result.stdout.splitlines()], frames


def check_frames(frames: list[tuple[str, Any]]) -> None:
    checker = FrameChecker()
    for direction, frame in frames:
        if direction == ">":
            checker.sent(frame)
        else:
            checker.received(frame)


def test_python_example_posts_and_resumes_against_a_live_server(transactional_db: None) -> None:
    credentials = ["--username", f"example-{uuid.uuid4().hex[:6]}", "--password", "a long enough pass phrase"]
    with run_servers(1) as (server,):
        first, frames = run_python_example(server.base_url, *credentials, "--register", "--room", "examples", "--message", "one")
        assert [m["text"] for m in first] == ["one"], first
        check_frames(frames)
        # Resuming from seq 0 replays the first message before the new one: nothing missed, no duplicate.
        second, frames = run_python_example(server.base_url, *credentials, "--room", "examples", "--message", "two", "--after-seq", "0")
        assert [(m["text"], m["seq"]) for m in second] == [("one", 1), ("two", 2)], second
        check_frames(frames)
        # Without --after-seq only new messages arrive.
        third, _ = run_python_example(server.base_url, *credentials, "--room", "examples", "--message", "three")
        assert [(m["text"], m["seq"]) for m in third] == [("three", 3)], third


def test_javascript_example_is_valid_javascript() -> None:
    node = shutil.which("node")
    assert node, "node is needed to check api_docs/examples/client.js"
    result = subprocess.run([node, "--check", str(EXAMPLES / "client.js")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.mark.asyncio
async def test_transcript_capture_runs_and_every_frame_matches_the_contract(transactional_db: None) -> None:
    with run_servers(1) as (server,):
        log = await capture(server.base_url)
    checkers: dict[str, FrameChecker] = {}
    deliberately_invalid = 0
    for _, who, direction, frame in log:
        checker = checkers.setdefault(who, FrameChecker())
        if direction == ">":
            invalid = isinstance(frame, str) or frame.get("action") == "fly"
            deliberately_invalid += invalid
            checker.sent(frame, check=not invalid)
        else:
            checker.received(frame)
    assert deliberately_invalid == 2
    received = {frame["action"] for _, _, direction, frame in log if direction == "<" and "response_status" not in frame}
    assert {"create", "update", "delete", "presence", "typing", "user_status"} <= received, received
    markdown = render(log, server.base_url)
    assert "Token " not in markdown.replace("Token <key>", "")
