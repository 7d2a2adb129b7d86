"""Two real server processes: access changes end subscriptions on every process, and the inbox spans processes (§5-§6)."""

import itertools
import time
from typing import Any

import pytest
import requests

from tests.contract import ContractWebSocket
from tests.live import LiveServer, LiveUser, call, explain, next_push, register_user, unique_name, ws

pytestmark = [pytest.mark.live, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

_ids = itertools.count(1)


async def nothing_of(client: ContractWebSocket, actions: set[str], wait: float = 1.0) -> None:
    frames = list(getattr(client, "pushes", []))
    client.pushes = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            frames.append(await client.receive_json_from(timeout=max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            break
    assert not [f for f in frames if f.get("action") in actions and "response_status" not in f], frames


def http(server: LiveServer, user: LiveUser, method: str, path: str, status: int, body: Any = None) -> Any:
    response = requests.request(method, f"{server.base_url}{path}", json=body, headers=user.headers, timeout=10)
    assert response.status_code == status, explain(response)
    return response.json() if response.content else None


async def test_removal_ends_the_users_subscriptions_on_every_process(pair: list[LiveServer]) -> None:
    a, b = pair
    alice, bob = register_user(a.base_url), register_user(b.base_url)
    room = http(a, alice, "post", "/api/rooms/", 201, {"name": unique_name("private"), "kind": "private"})
    http(a, alice, "post", f"/api/rooms/{room['pk']}/members/", 201, {"user_id": bob.id})
    async with ws(a, alice) as on_a, ws(a, bob) as bob_a, ws(b, bob) as bob_b:
        await call(bob_a, "subscribe_to_messages_in_room", pk=room["pk"], request_id="on-a")
        await call(bob_b, "subscribe_to_messages_in_room", pk=room["pk"], request_id="on-b")
        await call(bob_b, "subscribe_instance", pk=room["pk"], request_id="inst-b")
        await call(bob_b, "subscribe_to_my_rooms", request_id="inbox-b")
        await call(bob_b, "join_room", pk=room["pk"])
        await call(on_a, "create_message", room=room["pk"], message="before")
        assert (await next_push(bob_a, "create"))["data"]["text"] == "before"
        assert (await next_push(bob_b, "room_message"))["data"]["text"] == "before"
        started = time.monotonic()
        http(b, alice, "delete", f"/api/rooms/{room['pk']}/members/{bob.id}/", 204)  # through the other process
        ended_a = await next_push(bob_a, "subscription_ended")
        assert ended_a == {"action": "subscription_ended", "request_id": "on-a", "room": room["pk"], "reason": "removed"}
        ended_b = {(await next_push(bob_b, "subscription_ended"))["request_id"] for _ in range(2)}
        assert ended_b == {"on-b", "inst-b"}
        assert (await next_push(bob_b, "membership"))["data"] == {"room": None, "role": None}
        assert time.monotonic() - started < 3
        await call(on_a, "create_message", room=room["pk"], message="after")
        await nothing_of(bob_a, {"create", "room_message", "presence", "typing"})
        await nothing_of(bob_b, {"create", "room_message", "presence", "typing"})
        http(a, bob, "get", f"/api/rooms/{room['pk']}/", 404)


async def test_inbox_follows_an_add_made_on_another_process_and_deletion_ends_streams(pair: list[LiveServer]) -> None:
    a, b = pair
    alice, carol = register_user(a.base_url), register_user(b.base_url)
    async with ws(a, alice) as on_a, ws(b, carol) as carol_b:
        await call(carol_b, "subscribe_to_my_rooms", request_id="inbox")
        room = (await call(on_a, "create", data={"name": unique_name("team"), "kind": "private"}))["data"]
        await call(on_a, "add_member", pk=room["pk"], user_id=carol.id)
        added = await next_push(carol_b, "membership")
        assert added["room"] == room["pk"] and added["data"]["role"] == "member"
        await call(carol_b, "subscribe_to_messages_in_room", pk=room["pk"], request_id="stream")
        await call(on_a, "create_message", room=room["pk"], message="welcome")
        assert (await next_push(carol_b, "room_message"))["data"]["text"] == "welcome"
        await call(on_a, "delete", pk=room["pk"])
        ended = await next_push(carol_b, "subscription_ended")
        assert ended["request_id"] == "stream" and ended["reason"] == "room_deleted"
        assert (await next_push(carol_b, "membership"))["data"]["role"] is None
