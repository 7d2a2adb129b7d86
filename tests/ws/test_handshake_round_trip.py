"""A token handshake checks its token in the database round trip that records its connection (issue 16, the join path)."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from chat.core import services
from chat.events import realtime
from chat.models import Connection
from chat.ws import connection as ws_connection
from mysite.asgi import application
from tests.contract import ContractCommunicator
from tests.db import database_sync_to_async
from tests.factories import UserFactory
from tests.ws import WS_PATH, Client, token_for

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

user_factory = database_sync_to_async(UserFactory)


@database_sync_to_async
def connection_rows() -> list[tuple[str, int]]:
    return list(Connection.objects.order_by("pk").values_list("pk", "user_id"))


def communicator_for(token: str) -> ContractCommunicator:
    return ContractCommunicator(application, WS_PATH, headers=[(b"authorization", f"Token {token}".encode())])


async def test_a_token_handshake_reaches_the_database_once(monkeypatch: pytest.MonkeyPatch) -> None:
    user = await user_factory()
    token = await token_for(user)
    hops: list[str] = []
    run_in_executor = asyncio.BaseEventLoop.run_in_executor  # every hop, db_thread's and asgiref's

    def counted(self: asyncio.BaseEventLoop, executor: Any, call: Any, *args: Any) -> Any:
        # db_thread's: partial(Context.run, <the function>, loop, ...); asgiref's: partial(thread_handler, ..., child).
        target = call.args[0] if call.func.__name__ == "run" else call.args[-1].func
        hops.append(getattr(target, "__name__", repr(target)))
        return run_in_executor(self, executor, call, *args)

    monkeypatch.setattr(asyncio.BaseEventLoop, "run_in_executor", counted)
    communicator = communicator_for(token)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    # The token's check and the connection's row: one thread hop (it was two: the token, then the row).
    assert hops == ["connection_open_by_token"]
    client = Client(communicator)
    assert (await client.request("list"))["response_status"] == 200  # the scope's user is the token's
    assert [user_id for _, user_id in await connection_rows()] == [user.pk]
    await communicator.disconnect()


async def test_a_refused_token_records_nothing_and_holds_no_consumer() -> None:
    inactive = await user_factory(is_active=False)
    for token in ("0" * 40, await token_for(inactive)):
        communicator = communicator_for(token)
        connected, _ = await communicator.connect(timeout=5)
        assert not connected  # HTTP 403, as before any session
        await communicator.disconnect()
    assert await connection_rows() == []
    assert realtime._state().consumers == {}


async def test_over_the_cap_a_token_handshake_records_no_row(settings: Any) -> None:
    settings.CHAT_MAX_CONNECTIONS_PER_USER = 1
    user = await user_factory()
    token = await token_for(user)
    first = communicator_for(token)
    assert (await first.connect(timeout=5))[0]
    second = communicator_for(token)
    assert (await second.connect(timeout=5))[0]  # accepted only to say why
    assert await second.receive_output(timeout=3) == {"type": "websocket.close", "code": 4429}
    assert [user_id for _, user_id in await connection_rows()] == [user.pk]
    assert len(realtime._state().consumers) == 1
    await first.disconnect()


async def test_a_heartbeat_while_the_token_is_checked_keeps_the_new_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The row is written before the consumer knows its user: the heartbeat must not take it for a ghost meanwhile."""
    user = await user_factory()
    token = await token_for(user)
    written, release = asyncio.Event(), asyncio.Event()
    open_by_token = ws_connection._connection_open_by_token

    async def paused(**kwargs: Any) -> Any:
        result = await open_by_token(**kwargs)
        written.set()
        await release.wait()
        return result

    monkeypatch.setattr(ws_connection, "_connection_open_by_token", paused)
    communicator = communicator_for(token)
    handshake = asyncio.ensure_future(communicator.connect(timeout=10))
    await asyncio.wait_for(written.wait(), 5)
    # Written before the heartbeat's snapshot, by a consumer that holds no user yet.
    await database_sync_to_async(lambda: Connection.objects.update(seen_at=timezone.now() - timedelta(seconds=1)))()
    await realtime.heartbeat_once()
    assert [user_id for _, user_id in await connection_rows()] == [user.pk]
    release.set()
    connected, _ = await handshake
    assert connected
    assert (await Client(communicator).request("list"))["response_status"] == 200
    await communicator.disconnect()


async def test_the_heartbeat_does_not_recreate_a_row_for_a_handshake_still_authenticating() -> None:
    beat = await database_sync_to_async(services.connection_heartbeat)(server_id="this", held={"conn.opening": (None, [])})
    assert beat.revived_user_ids == []
    assert await connection_rows() == []
