"""Two real server processes on one PostgreSQL and one Redis, with clients over real WebSockets.

api_docs/PROTOCOL.md §3: fan-out across processes (WebSocket and HTTP writes), presence that
spans processes, flood limits and safe retries shared by all processes, presence of a
crashed (SIGKILLed) process expiring, graceful SIGTERM, and idle/mass-disconnect hygiene.
"""

import asyncio
import concurrent.futures
import itertools
import socket
import time
from contextlib import AsyncExitStack

import pytest
import requests
from websockets.exceptions import ConnectionClosed

from chat.models import Connection, Message, Presence
from tests.contract import ContractWebSocket, contract_connect
from tests.db import database_sync_to_async
from tests.live import LiveServer, call, create_room, next_push, register_user, run_servers, ws

pytestmark = [pytest.mark.live, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

_ids = itertools.count(1)
count_connections = database_sync_to_async(lambda: Connection.objects.count())
count_presences = database_sync_to_async(lambda: Presence.objects.count())


async def presence_until(client: ContractWebSocket, usernames: set[str], timeout: float = 6) -> float:
    """Wait for a presence push listing exactly these users; returns when it came (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        push = await next_push(client, "presence", timeout=max(0.01, deadline - time.monotonic()))
        if {user["username"] for user in push["data"]["users"]} == usernames:
            return time.monotonic()


async def test_messages_fan_out_across_processes_from_websocket_and_http(pair: list[LiveServer]) -> None:
    a, b = pair
    alice, bob = register_user(a.base_url), register_user(b.base_url)
    room = create_room(a.base_url, alice)
    async with ws(a, alice) as on_a, ws(b, bob) as on_b:
        await call(on_b, "subscribe_to_messages_in_room", pk=room["pk"], request_id="bob-stream")
        await call(on_a, "join_room", pk=room["pk"])
        sent = (await call(on_a, "create_message", message="over ws on A"))["data"]
        event = await next_push(on_b, "create")
        assert event["request_id"] == "bob-stream" and event["data"] == sent
        response = requests.post(
            f"{a.base_url}/api/rooms/{room['pk']}/messages/", json={"text": "over http on A"}, headers=alice.headers, timeout=10
        )
        assert response.status_code == 201
        event = await next_push(on_b, "create")
        assert event["data"] == response.json() and event["data"]["seq"] == 2


async def test_each_process_joins_a_room_group_once_and_delivers_to_all_its_sockets(pair: list[LiveServer]) -> None:
    """Local fan-out (chat/events/fanout.py): 3 + 2 subscribers on two processes are 2 Redis subscriptions, not 5 (or 10)."""
    import redis.asyncio as redis
    from django.conf import settings

    a, b = pair
    users = [register_user(a.base_url) for _ in range(5)]
    room = create_room(a.base_url, users[0])
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(ws(server, user)) for server, user in zip([a, a, a, b, b], users, strict=True)]
        for client in clients:
            await call(client, "subscribe_to_messages_in_room", pk=room["pk"], request_id="stream")
        layer_group = f"{settings.REDIS_PREFIX}:layer__group__chat.room.{room['pk']}"
        connection = redis.from_url(settings.REDIS_URL)
        try:
            assert await connection.pubsub_numsub(layer_group) == [(layer_group.encode(), 2)]
            # And no layer channel per connection: one fan-out channel per process.
            own_channels = [c for c in await connection.pubsub_channels(f"{settings.REDIS_PREFIX}:layer*") if b"__group__" not in c]
            assert len(own_channels) == 2 and all(b"fanout." in c for c in own_channels), own_channels
        finally:
            await connection.aclose()
        await call(clients[0], "create_message", room=room["pk"], message="to all five")
        for client in clients:
            assert (await next_push(client, "create"))["data"]["text"] == "to all five"


async def test_presence_spans_processes(pair: list[LiveServer]) -> None:
    a, b = pair
    alice, bob = register_user(a.base_url), register_user(b.base_url)
    room = create_room(a.base_url, alice)
    async with ws(a, alice) as on_a:
        await call(on_a, "join_room", pk=room["pk"])
        async with ws(b, bob) as on_b:
            joined = await call(on_b, "join_room", pk=room["pk"])
            assert {u["username"] for u in joined["data"]["current_users"]} == {alice.username, bob.username}
            await presence_until(on_a, {alice.username, bob.username})
            await presence_until(on_b, {alice.username, bob.username})
            listed = requests.get(f"{a.base_url}/api/rooms/{room['pk']}/", headers=alice.headers, timeout=10).json()
            assert {u["username"] for u in listed["current_users"]} == {alice.username, bob.username}
        closed_at = time.monotonic()
        assert await presence_until(on_a, {alice.username}) - closed_at < 5


async def test_flood_limit_and_safe_retries_are_shared_by_processes(django_db_setup: None) -> None:
    with run_servers(2, {"CHAT_MESSAGE_RATE_LIMIT": "4", "CHAT_MESSAGE_RATE_PERIOD": "60"}) as (a, b):
        alice = register_user(a.base_url)
        room = create_room(a.base_url, alice)

        def post(server: LiveServer, client_id: str) -> requests.Response:
            return requests.post(
                f"{server.base_url}/api/rooms/{room['pk']}/messages/",
                json={"text": f"hello {client_id}", "client_id": client_id},
                headers=alice.headers,
                timeout=10,
            )

        # The same client_id sent to both processes at once: stored once, answered twice.
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda args: post(*args), [(a, "x1"), (b, "x1"), (a, "x2"), (b, "x2")]))
        assert sorted(r.status_code for r in results) == [200, 200, 201, 201]
        assert results[0].json() == results[1].json() and results[2].json() == results[3].json()
        assert await database_sync_to_async(Message.objects.count)() == 2
        assert post(b, "x3").status_code == 201
        assert post(a, "x4").status_code == 201
        limited = post(b, "x5")  # the fifth new message in the window, on either process
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        async with ws(a, alice) as on_a:
            await call(on_a, "join_room", pk=room["pk"])
            response = await on_a.request("create_message", request_id="flood", message="one more")
            assert response["response_status"] == 429 and response["data"]["retry_after"] >= 1
        assert await database_sync_to_async(Message.objects.count)() == 4


async def test_presence_of_a_killed_process_expires_and_is_not_resurrected(django_db_setup: None) -> None:
    expiry = 4
    with run_servers(2, {"CHAT_PRESENCE_EXPIRY": str(expiry)}) as (a, b):
        alice, bob = register_user(a.base_url), register_user(b.base_url)
        room = create_room(a.base_url, alice)
        async with ws(a, alice) as on_a, ws(b, bob) as on_b:
            await call(on_a, "join_room", pk=room["pk"])
            await call(on_b, "join_room", pk=room["pk"])
            await presence_until(on_a, {alice.username, bob.username})
            b.kill()  # SIGKILL: no disconnect handling runs on B
            killed_at = time.monotonic()
            assert await presence_until(on_a, {alice.username}, timeout=expiry + 4) - killed_at <= expiry + 1
        with run_servers(1, {"CHAT_PRESENCE_EXPIRY": str(expiry)}) as (restarted,):
            room_now = requests.get(f"{restarted.base_url}/api/rooms/{room['pk']}/", headers=alice.headers, timeout=10).json()
            assert room_now["current_users"] == []
    assert await count_presences() == 0


async def test_sigterm_closes_with_1001_and_keeps_every_acknowledged_message(django_db_setup: None) -> None:
    with run_servers(1) as (server,):
        alice = register_user(server.base_url)
        room = create_room(server.base_url, alice)
        acknowledged: list[int] = []
        async with ws(server, alice) as client:
            await call(client, "join_room", pk=room["pk"])

            async def post_forever() -> None:
                for i in itertools.count():
                    await client.send_json_to({"action": "create_message", "request_id": f"m{i}", "message": f"m{i}"})
                    await asyncio.sleep(0.005)

            poster = asyncio.create_task(post_forever())
            await asyncio.sleep(0.5)
            server.process.terminate()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    frame = await client.receive_json_from(timeout=10)
                    if frame.get("action") == "create_message" and frame.get("response_status") == 201:
                        acknowledged.append(frame["data"]["id"])
            poster.cancel()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert server.process.wait(timeout=15) == 0
    stored = set(await database_sync_to_async(lambda: list(Message.objects.values_list("id", flat=True)))())
    assert acknowledged and set(acknowledged) <= stored
    assert await count_connections() == 0  # the consumers cleaned up before the process exited


async def test_sigterm_right_after_a_handshake_still_exits(django_db_setup: None) -> None:
    """SIGTERM while connections are still being set up: shutdown must not hang on one that has no application yet."""
    with run_servers(1) as (server,):
        alice = register_user(server.base_url)
        with socket.create_connection(("127.0.0.1", server.port)) as half_open:
            # Headers without the body: daphne knows the connection but has started no application for it.
            half_open.sendall(b"POST /api/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
            async with ws(server, alice):
                server.process.terminate()
                assert await asyncio.get_running_loop().run_in_executor(None, lambda: server.process.wait(timeout=20)) == 0


async def test_idle_connections_survive_and_a_mass_disconnect_leaves_nothing(pair: list[LiveServer]) -> None:
    a, _ = pair
    alice = register_user(a.base_url)
    room = create_room(a.base_url, alice)
    clients = []
    async with asyncio.timeout(120), AsyncExitStack() as stack:
        for _ in range(500):
            # No client keepalive: only the server decides whether an idle connection lives.
            connection = contract_connect(f"{a.ws_url}?token={alice.token}", ping_interval=None)
            clients.append(await stack.enter_async_context(connection))
        await asyncio.gather(*(call(client, "join_room", pk=room["pk"]) for client in clients[:100]))
        assert await count_connections() == 500
        await asyncio.sleep(20)  # longer than redis-py's and the layer's 5 s socket timeouts
        for client in clients:
            assert client.connection.close_code is None, "an idle connection was closed"
        assert (await call(clients[-1], "list"))["response_status"] == 200
        await asyncio.gather(*(client.connection.close() for client in clients))
        deadline = time.monotonic() + 5
        while (await count_connections() or await count_presences()) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    assert await count_connections() == 0 and await count_presences() == 0
    room_now = requests.get(f"{a.base_url}/api/rooms/{room['pk']}/", headers=alice.headers, timeout=10).json()
    assert room_now["current_users"] == []
