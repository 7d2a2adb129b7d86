"""§7/§8 across real server processes: reactions and replies reach another process's subscribers; logout closes sockets everywhere."""

import asyncio
from typing import Any

import pytest
import requests
from websockets.exceptions import ConnectionClosed

from tests.contract import ContractWebSocket
from tests.live import LiveServer, create_room, register_user, ws

pytestmark = [pytest.mark.live, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

THUMBS = "\U0001f44d"


async def push(client: ContractWebSocket, action: str, timeout: float = 5) -> dict[str, Any]:
    """The next push with this action (pushes buffered by a request first), skipping others."""
    buffered = getattr(client, "pushes", [])
    while buffered:
        frame = buffered.pop(0)
        if frame.get("action") == action:
            return frame
    while True:
        frame = await client.receive_json_from(timeout=timeout)
        if frame.get("action") == action and "response_status" not in frame:
            return frame


async def test_reply_and_reactions_fan_out_across_processes(pair: list[LiveServer]) -> None:
    a, b = pair
    alice, bob = register_user(a.base_url), register_user(b.base_url)
    room = create_room(a.base_url, alice)
    assert requests.post(f"{b.base_url}/api/rooms/{room['pk']}/join/", headers=bob.headers, timeout=10).status_code == 200
    async with ws(a, alice) as on_a, ws(b, bob) as on_b:
        subscribed = await on_b.request("subscribe_to_messages_in_room", request_id="s", pk=room["pk"])
        assert subscribed["response_status"] == 200
        posted = await on_a.request("create_message", request_id=1, room=room["pk"], message="question")
        assert (await push(on_b, "create"))["data"] == posted["data"]
        reply = await on_a.request("create_message", request_id=2, room=room["pk"], message="answer", reply_to=posted["data"]["id"])
        assert (await push(on_b, "create"))["data"]["reply_to"] == posted["data"]["id"] == reply["data"]["reply_to"]

        # A reaction over HTTP on process B, one over WebSocket on A: both arrive on B as `update`.
        url = f"{b.base_url}/api/messages/{posted['data']['id']}/reactions/"
        assert requests.post(url, json={"emoji": THUMBS}, headers=bob.headers, timeout=10).status_code == 201
        event = await push(on_b, "update")
        assert event["data"]["reactions"] == [{"emoji": THUMBS, "count": 1, "user_ids": [bob.id]}]
        added = await on_a.request("add_reaction", request_id=3, pk=posted["data"]["id"], emoji=THUMBS)
        assert added["response_status"] == 201
        event = await push(on_b, "update")
        assert event["data"] == added["data"] and event["data"]["edited_at"] is None
        assert event["data"]["reactions"] == [{"emoji": THUMBS, "count": 2, "user_ids": [bob.id, alice.id]}]


async def test_logout_on_one_process_closes_the_tokens_sockets_on_every_process_with_4401(pair: list[LiveServer]) -> None:
    a, b = pair
    carol = register_user(a.base_url)
    async with ws(a, carol) as on_a, ws(b, carol) as on_b:
        assert requests.post(f"{b.base_url}/api/auth/logout/", headers=carol.headers, timeout=10).status_code == 204
        for client in (on_a, on_b):
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.receive_json_from(timeout=5), 6)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert requests.get(f"{a.base_url}/api/users/me/", headers=carol.headers, timeout=10).status_code == 401
