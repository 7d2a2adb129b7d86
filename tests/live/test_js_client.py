"""The official JS/TS client (clients/js): compiled with tsc, unit-tested, and run against two live servers, one SIGKILLed."""

import json
import subprocess
from pathlib import Path

import pytest
import requests

from tests.contract import FrameChecker
from tests.js_tools import ROOT, node_tools
from tests.live import create_room, register_user, run_servers

CLIENT = ROOT / "clients" / "js"


def build() -> None:
    """Compile clients/js/src with the pinned TypeScript (type errors fail the build)."""
    tools = node_tools()
    result = subprocess.run([tools.bin("tsc"), "-p", str(CLIENT / "tsconfig.json")], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr


def run_node_tests(path: str, **env: str) -> str:
    tools = node_tools()
    result = subprocess.run(
        [tools.node, "--test", "--test-reporter=tap", path],
        cwd=CLIENT,
        env=tools.env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    assert "# fail 0" in result.stdout, result.stdout
    return result.stdout


def test_the_client_builds_and_its_unit_tests_pass() -> None:
    build()
    out = run_node_tests("test/unit.test.mjs")
    assert "# pass 9" in out, out
    declarations = (CLIENT / "dist" / "index.d.ts").read_text()
    assert "export declare class ChatClient" in declarations and "interface ChatEvents" in declarations


def test_the_web_pages_run_the_library_build(tmp_path: Path) -> None:
    """chat/static/chat/chat-client.js is the library's build (scripts/build-web-client.mjs): one client, not two."""
    build()
    fresh = tmp_path / "chat-client.js"
    tools = node_tools()
    result = subprocess.run([tools.node, str(ROOT / "scripts" / "build-web-client.mjs"), str(fresh)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    committed = ROOT / "chat" / "static" / "chat" / "chat-client.js"
    assert committed.read_text() == fresh.read_text(), "rebuild it: npx tsc -p clients/js && node scripts/build-web-client.mjs"
    assert "new window.ChatRooms.ChatClient" in (ROOT / "chat" / "static" / "chat" / "socket.js").read_text()


@pytest.mark.live
def test_the_client_rides_out_a_server_killed_mid_stream(transactional_db: None, tmp_path: Path) -> None:
    build()
    frame_log = tmp_path / "frames.log"
    with run_servers(2) as (first, second):
        reader, writer = register_user(first.base_url), register_user(second.base_url)
        room = create_room(second.base_url, writer)
        joined = requests.post(f"{second.base_url}/api/rooms/{room['pk']}/join/", headers=reader.headers, timeout=10)
        assert joined.status_code in (200, 201), joined.text
        out = run_node_tests(
            "test/live.test.mjs",
            CHAT_URLS=f"{first.ws_url},{second.ws_url}",
            CHAT_TOKEN=reader.token,
            CHAT_WRITER_TOKEN=writer.token,
            CHAT_ROOM=str(room["pk"]),
            CHAT_KILL_PGID=str(first.pid),
            CHAT_FRAME_LOG=str(frame_log),
        )
        assert "# pass 1" in out, out
        assert not first.alive(), "the first server should have been killed mid-stream"
        assert second.alive(), second.output()
    # Every frame either client sent or received is in the AsyncAPI contract.
    checkers = {"reader": FrameChecker(), "writer": FrameChecker()}
    for line in frame_log.read_text().splitlines():
        who, direction, raw = line.split(" ", 2)
        frame = json.loads(raw)
        if direction == ">":
            checkers[who].sent(frame)
        else:
            checkers[who].received(frame)
    assert all(len(checker.frames) > 50 for checker in checkers.values())
