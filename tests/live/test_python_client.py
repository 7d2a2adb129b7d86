"""The official Python client (clients/python): pip-installable, close codes and backoff against a scripted server,
and two live servers with one SIGKILLed mid-stream (gap-free, duplicate-free view; posts stored once)."""

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import requests
from chat_rooms_client import ChatClient, ChatError, Closed
from websockets.asyncio.server import ServerConnection, serve

from tests.contract import FrameChecker
from tests.live import ROOT, create_room, register_user, run_servers

CLIENT = ROOT / "clients" / "python"


def test_the_client_is_pip_installable(tmp_path: Path) -> None:
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target)]
    result = subprocess.run([*install, str(CLIENT)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    probe = "import chat_rooms_client, sys; print(chat_rooms_client.__file__)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={"PYTHONPATH": str(target)}, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith(str(target)), result.stderr
    assert (target / "chat_rooms_client" / "py.typed").exists()


# --- close codes, against a scripted server -----------------------------------------------


class Script:
    """A WebSocket server whose n-th connection is closed with the n-th code (None: kept open)."""

    def __init__(self, codes: list[int | None]) -> None:
        self.codes = codes
        self.connected_at: list[float] = []

    async def handler(self, connection: ServerConnection) -> None:
        self.connected_at.append(time.monotonic())
        code = self.codes[len(self.connected_at) - 1] if len(self.connected_at) <= len(self.codes) else None
        if code is None:
            await connection.wait_closed()
        else:
            await connection.close(code, "scripted")


@pytest_asyncio.fixture
async def scripted() -> AsyncIterator[Callable[[list[int | None]], Any]]:
    servers = []

    async def start(codes: list[int | None]) -> tuple[Script, str]:
        script = Script(codes)
        server = await serve(script.handler, "127.0.0.1", 0)
        servers.append(server)
        port = next(iter(server.sockets)).getsockname()[1]
        return script, f"ws://127.0.0.1:{port}/ws/chat/room/"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def client(url: str, closes: list[dict[str, Any]]) -> ChatClient:
    chat = ChatClient(url, "token", backoff_initial=0.05, backoff_max=0.5, rate_limited_delay=0.3, request_timeout=2)
    chat.on("close", closes.append)
    return chat


@pytest.mark.asyncio
async def test_4401_never_retries(scripted: Any) -> None:
    script, url = await scripted([4401])
    closes: list[dict[str, Any]] = []
    chat = client(url, closes)
    auth_failed: list[Any] = []
    chat.on("auth_failed", auth_failed.append)
    await chat.connect()
    await asyncio.sleep(0.5)
    assert len(script.connected_at) == 1 and auth_failed == [{"code": 4401}]
    assert closes == [{"code": 4401, "reason": "scripted", "delay": None}]
    with pytest.raises(Closed):
        await chat.request("list")
    await chat.close()


@pytest.mark.asyncio
async def test_1001_reconnects_at_once_4429_and_1008_back_off(scripted: Any) -> None:
    script, url = await scripted([1001, 4429, 1008, None])
    closes: list[dict[str, Any]] = []
    chat = client(url, closes)
    await chat.connect()
    deadline = time.monotonic() + 5
    while len(script.connected_at) < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await chat.close()
    assert [c["code"] for c in closes] == [1001, 4429, 1008]
    assert closes[0]["delay"] == 0 and all(c["delay"] >= 0.3 for c in closes[1:])
    gaps = [b - a for a, b in zip(script.connected_at, script.connected_at[1:], strict=False)]
    assert gaps[0] < 0.2 and gaps[1] >= 0.3 and gaps[2] >= 0.3, gaps


@pytest.mark.asyncio
async def test_other_closes_back_off_with_growing_jittered_delays(scripted: Any) -> None:
    script, url = await scripted([1011, 1011, 1011, 1011, None])
    closes: list[dict[str, Any]] = []
    chat = client(url, closes)
    await chat.connect()
    deadline = time.monotonic() + 5
    while len(script.connected_at) < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await chat.close()
    delays = [c["delay"] for c in closes]
    ceilings = [min(0.5, 0.05 * 2**attempt) for attempt in range(len(delays))]
    assert len(delays) == 4 and all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays


# --- two live servers, one killed --------------------------------------------------------


@pytest.mark.live
@pytest.mark.asyncio
async def test_the_client_rides_out_a_server_killed_mid_stream(transactional_db: None) -> None:
    writer_posts, reader_posts, kill_after = 60, 20, 20
    with run_servers(2) as (first, second):
        reader_user, writer_user = register_user(first.base_url), register_user(second.base_url)
        room = create_room(second.base_url, writer_user)["pk"]
        joined = requests.post(f"{second.base_url}/api/rooms/{room}/join/", headers=reader_user.headers, timeout=10)
        assert joined.status_code in (200, 201), joined.text
        options: dict[str, Any] = {"backoff_initial": 0.1, "backoff_max": 1.0, "request_timeout": 5}
        frames: dict[str, list[tuple[str, Any]]] = {"reader": [], "writer": []}
        reader = ChatClient([first.ws_url, second.ws_url], reader_user.token, trace=lambda d, f: frames["reader"].append((d, f)), **options)
        writer = ChatClient(second.ws_url, writer_user.token, trace=lambda d, f: frames["writer"].append((d, f)), **options)
        seen: list[dict[str, Any]] = []
        opens: list[dict[str, Any]] = []
        reader.on("message", lambda event: seen.append(event["message"]) if event["action"] == "create" else None)
        reader.on("open", opens.append)
        try:
            await reader.connect()
            await writer.connect()
            assert opens[0]["url"] == first.ws_url
            await reader.join_room(room)
            await reader.subscribe_to_messages(room, after_seq=0)

            async def write() -> list[Any]:
                posted = []
                for i in range(writer_posts):
                    posted.append(await writer.create_message(room, f"w{i}"))
                    if i + 1 == kill_after:
                        await asyncio.to_thread(first.kill)
                    await asyncio.sleep(0.015)
                return posted

            async def read() -> list[Any]:
                posted = []
                for i in range(reader_posts):
                    posted.append(await reader.create_message(room, f"r{i}"))
                    await asyncio.sleep(0.04)
                return posted

            written, read_posts = await asyncio.gather(write(), read())
            last_seq = max(m["seq"] for m in [*written, *read_posts])
            assert last_seq == writer_posts + reader_posts, "every post stored once"
            deadline = time.monotonic() + 30
            while reader.last_seq(room) != last_seq and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert [m["seq"] for m in seen] == list(range(1, last_seq + 1)), "gap-free, duplicate-free, in order"
            expected = sorted([f"w{i}" for i in range(writer_posts)] + [f"r{i}" for i in range(reader_posts)])
            assert sorted(m["text"] for m in seen) == expected
            assert any(event["reconnect"] and event["url"] == second.ws_url for event in opens)
            history = await writer.list_messages(room, after_seq=0, limit=200)
            assert len({m["text"] for m in history["results"]}) == len(history["results"]) == last_seq
            with pytest.raises(ChatError) as missing:
                await writer.get_room(10**9)
            assert missing.value.status == 404
        finally:
            await reader.close()
            await writer.close()
        assert not first.alive() and second.alive()
    # Every frame either client sent or received is in the AsyncAPI contract.
    for transcript in frames.values():
        checker = FrameChecker()
        for direction, frame in transcript:
            if direction == ">":
                checker.sent(frame)
            else:
                checker.received(frame)
