"""A subscriber that stops reading is cut off (close 4008) before it costs memory or delays the others."""

import asyncio
import json
import socket
import time
from typing import Any

import pytest
import requests
from websockets.asyncio.client import connect

from tests.contract import contract_connect
from tests.live import create_room, register_user, run_servers

pytestmark = [pytest.mark.live, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

MESSAGES = 200
SLOW_COPIES = 60  # subscriptions on the slow connection, so it falls behind fast
BACKLOG_LIMIT = 256 * 1024


def rss_bytes(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def slow_consumers_closed(base_url: str) -> float:
    for line in requests.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith("chat_slow_consumer_disconnects_total"):
            return float(line.split()[1])
    return 0.0


async def test_a_stalled_reader_is_closed_and_the_others_keep_their_pace(django_db_setup: None) -> None:
    with run_servers(1, {"WS_MAX_BACKLOG_BYTES": str(BACKLOG_LIMIT)}) as (server,):
        alice, stalled = register_user(server.base_url), register_user(server.base_url)
        room = create_room(server.base_url, alice)
        # A tiny receive buffer and no reads: the server's socket buffer fills, then its backlog grows.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        async with connect(f"{server.ws_url}?token={stalled.token}", sock=sock, max_queue=1, ping_interval=None) as slow:
            for copy in range(SLOW_COPIES):
                await slow.send(json.dumps({"action": "subscribe_to_messages_in_room", "request_id": copy, "pk": room["pk"]}))
            async with (
                contract_connect(f"{server.ws_url}?token={alice.token}") as poster,
                contract_connect(f"{server.ws_url}?token={alice.token}") as reader,
            ):
                await reader.request("subscribe_to_messages_in_room", request_id="reader", pk=room["pk"])
                await poster.request("join_room", request_id="join", pk=room["pk"])
                rss_before = rss_bytes(server.pid)
                latencies: list[float] = []
                seqs: list[int] = []

                async def read() -> None:
                    while len(seqs) < MESSAGES:
                        frame: Any = await reader.receive_json_from(timeout=20)
                        if frame.get("action") == "create":
                            seqs.append(frame["data"]["seq"])
                            latencies.append(time.time() - float(frame["data"]["text"].split()[0]))

                reading = asyncio.create_task(read())
                for i in range(MESSAGES):  # one at a time, as a chatty client would
                    response = await poster.request("create_message", request_id=f"m{i}", message=f"{time.time()} " + "x" * 400)
                    assert response["response_status"] == 201
                await asyncio.wait_for(reading, 20)
                assert seqs == list(range(1, MESSAGES + 1))
                growth = rss_bytes(server.pid) - rss_before
        assert slow_consumers_closed(server.base_url) == 1
        assert slow.close_code in (4008, 1006), slow.close_code  # 1006: aborted while the close frame waited
        # Without the bound the server would hold every unsent frame: about MESSAGES × SLOW_COPIES × 0.5 KB.
        assert growth < MESSAGES * SLOW_COPIES * 500 / 2, growth
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(
            f"\nslow consumer: closed with {slow.close_code}; server RSS grew {growth / 1e6:.1f} MB "
            f"(unbounded: ~{MESSAGES * SLOW_COPIES * 650 / 1e6:.0f} MB of frames); other subscriber p99 {p99 * 1000:.0f} ms"
        )
        assert p99 < 2.0, latencies[-5:]
