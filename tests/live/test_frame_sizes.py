"""Text frames with a 4-byte and a 10-byte length header reach a real client whole from `python -m mysite.serve`.

Those frames are built by BoundedWebSocketProtocol.send_text_frame, not autobahn (tests/unit/test_serve_frames.py
compares the bytes, 2-byte headers included); here a standard client reads them over a socket. A 405 echoes
the action it refused twice, so the size of the action sets the size of the answer.
"""

import json
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.live import register_user, run_servers

pytestmark = [pytest.mark.live, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def test_medium_and_long_text_frames_arrive_whole(django_db_setup: None) -> None:
    with run_servers(1) as (server,):
        user = register_user(server.base_url)
        async with connect(f"{server.ws_url}?token={user.token}", max_size=2**20) as ws:
            for length, request_id in ((10, "medium"), (12_000, "long")):  # answers of ~230 B and ~144 KB
                action = "é" * length
                await ws.send(json.dumps({"action": action, "request_id": request_id}, ensure_ascii=False))  # < 64 KB in
                raw: Any = await ws.recv()
                assert len(raw.encode()) > (125 if length == 10 else 65_535)
                reply = json.loads(raw)
                assert reply["response_status"] == 405 and reply["request_id"] == request_id
                assert reply["action"] == action and action in reply["errors"][0]
