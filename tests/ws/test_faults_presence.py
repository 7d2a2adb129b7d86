"""Issue 15, findings 1, 2 and 7: the heartbeat keeps the database in line with the connections a process really holds."""

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from chat import models
from chat.core import selectors, services
from chat.events import realtime
from chat.models import Connection, Presence, User
from mysite.asgi import application
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import WS_PATH, connect, token_for

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

user_factory = database_sync_to_async(UserFactory)
room_factory = database_sync_to_async(RoomFactory)


@database_sync_to_async
def rows() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    connections = list(Connection.objects.order_by("pk").values_list("pk", "user_id"))
    presences = list(Presence.objects.order_by("connection_id", "room_id").values_list("connection_id", "room_id"))
    return connections, presences


@database_sync_to_async
def current_users(room_id: int) -> list[str]:
    return [user["username"] for user in selectors.room_get(pk=room_id).current_users]


async def test_heartbeat_recreates_the_rows_of_connections_it_holds() -> None:
    """Finding 1: another process's sweep deleted this one's rows while its heartbeat failed (PostgreSQL outage)."""
    alice, bob = await user_factory(username="alice"), await user_factory(username="bob")
    room = await room_factory(host=alice)
    async with connect(alice) as a, connect(bob) as b:
        await a.request("join_room", pk=room.pk)
        await b.request("join_room", pk=room.pk)
        connections, presences = await rows()
        assert len(connections) == 2 and len(presences) == 2
        # What the other process's sweep did: every row of this process gone.
        await database_sync_to_async(lambda: Connection.objects.all().delete())()
        assert await current_users(room.pk) == []
        await realtime.heartbeat_once()
        assert await rows() == (connections, presences)
        assert await current_users(room.pk) == ["alice", "bob"]
        # Those watching the room are told who is back.
        while True:
            push = await b.next_push()
            if push["action"] == "presence" and len(push["data"]["users"]) == 2:
                break
        # And the join still works (it answered 404 "No such room." before the fix).
        assert (await b.request("join_room", pk=room.pk))["response_status"] == 200


@database_sync_to_async
def other_server(*, server_seen: Any, connection_seen: Any, user: User) -> str:
    if server_seen is not None:
        models.Server.objects.create(server_id="other", seen_at=server_seen)
    Connection.objects.create(channel_name="conn.other", user=user, server_id="other", seen_at=connection_seen)
    return "conn.other"


async def test_sweep_spares_a_server_that_still_beats_and_removes_one_that_stopped(settings: Any) -> None:
    """Finding 1: only a server whose own heartbeat row is stale loses its connections."""
    settings.CHAT_PRESENCE_EXPIRY = 0.4  # heartbeat interval 0.1 s, stale after 0.3 s
    carol = await user_factory(username="carol")
    long_ago = timezone.now() - timedelta(minutes=5)
    async with connect(carol):
        realtime._state().reachable_since = asyncio.get_running_loop().time() - 1
        # Its connection rows look stale (its beats failed for a while), but its server row is fresh.
        await other_server(server_seen=timezone.now(), connection_seen=long_ago, user=carol)
        await realtime.heartbeat_once()
        assert await database_sync_to_async(Connection.objects.filter(pk="conn.other").exists)()
        # Now the server row is stale too: that server stopped beating while the database answered.
        await database_sync_to_async(lambda: models.Server.objects.filter(server_id="other").update(seen_at=long_ago))()
        await realtime.heartbeat_once()
        assert not await database_sync_to_async(Connection.objects.filter(pk="conn.other").exists)()
        assert not await database_sync_to_async(models.Server.objects.filter(server_id="other").exists)()
        # This process's own connection stays.
        assert len((await rows())[0]) == 1


async def test_sweep_waits_until_this_process_has_reached_the_database_for_a_whole_window(settings: Any) -> None:
    """Finding 1: right after the database returns, everybody's rows are stale; nobody may be swept yet."""
    settings.CHAT_PRESENCE_EXPIRY = 0.4
    dave = await user_factory(username="dave")
    long_ago = timezone.now() - timedelta(minutes=5)
    async with connect(dave):
        await other_server(server_seen=long_ago, connection_seen=long_ago, user=dave)
        realtime._state().reachable_since = None  # the last beat failed: the database was down
        await realtime.heartbeat_once()
        assert await database_sync_to_async(Connection.objects.filter(pk="conn.other").exists)()
        await asyncio.sleep(0.35)
        await realtime.heartbeat_once()
        assert not await database_sync_to_async(Connection.objects.filter(pk="conn.other").exists)()


async def test_a_handshake_that_fails_after_recording_its_connection_leaves_no_ghost(settings: Any) -> None:
    """Finding 2: Redis is down, so joining the user's group fails after the Connection row is written."""
    erin = await user_factory(username="erin")
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]}}
    }
    communicator = WebsocketCommunicator(application, WS_PATH, headers=[(b"authorization", f"Token {await token_for(erin)}".encode())])
    connected, _ = await communicator.connect(timeout=10)
    if connected:  # accepted only to say why: try again later
        assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4503}
    await communicator.disconnect(timeout=5)
    assert await rows() == ([], [])
    assert not await database_sync_to_async(lambda: [u.pk for u in selectors.online_users()])()


class Pause:
    """`services.<name>` made to stop in its worker thread until resumed: a race's moment held open."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.reached, self.resume = threading.Event(), threading.Event()
        original = getattr(services, name)

        def paused(**kwargs: Any) -> Any:
            self.reached.set()
            self.resume.wait(5)
            return original(**kwargs)

        monkeypatch.setattr(services, name, paused)

    async def wait_reached(self) -> None:
        assert await asyncio.get_running_loop().run_in_executor(None, self.reached.wait, 5)

    def resume_in(self, seconds: float) -> None:
        asyncio.get_running_loop().call_later(seconds, self.resume.set)


async def assert_only_grace_left(room_id: int, grace: User) -> None:
    connections, presences = await rows()
    assert [user_id for _, user_id in connections] == [grace.pk]
    assert [presence_room for _, presence_room in presences] == [room_id]
    assert await current_users(room_id) == ["grace"]


@contextlib.asynccontextmanager
async def both_in_a_room_during_a_beat(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[models.Room, Any, Any, asyncio.Future[None], Pause]]:
    """grace and heidi in grace's room, and a heartbeat stopped after its snapshot until its Pause resumes."""
    grace, heidi = await user_factory(username="grace"), await user_factory(username="heidi")
    room = await room_factory(host=grace)
    paused = Pause(monkeypatch, "connection_heartbeat")
    async with connect(grace) as g, connect(heidi) as h:
        await g.request("join_room", pk=room.pk)
        await h.request("join_room", pk=room.pk)
        beat = asyncio.ensure_future(realtime.heartbeat_once())
        await paused.wait_reached()
        yield room, g, h, beat, paused


async def test_a_connection_that_closes_during_a_heartbeat_is_not_written_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A close landing between the heartbeat's snapshot of the held connections and its read of the rows.

    The beat took the deleted row for one another process's sweep had removed and wrote it
    back, with its presence: a ghost online and present until the next beat (15 s). Seen in
    the bench as 10,000 clients closed: some 3,000 ghosts, then a beat removing them all.
    """
    grace, heidi = await user_factory(username="grace"), await user_factory(username="heidi")
    room = await room_factory(host=grace)
    beat_paused = Pause(monkeypatch, "connection_heartbeat")  # after its snapshot
    async with connect(grace) as g:
        await g.request("join_room", pk=room.pk)
        async with connect(heidi) as h:
            await h.request("join_room", pk=room.pk)
            beat = asyncio.ensure_future(realtime.heartbeat_once())
            await beat_paused.wait_reached()
            # Long enough for a batch of closes (realtime.CLOSE_BATCH_DELAY) to delete heidi's rows.
            beat_paused.resume_in(0.3)
        await beat
        await assert_only_grace_left(room.pk, grace)


async def test_a_heartbeat_right_after_a_batch_of_closes_does_not_write_it_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A beat waiting for a batch of closes to finish takes its snapshot as soon as the batch ends.

    The closed consumers were still counted as held until they resumed after the batch: the
    beat wrote their rows back (bench: 683 ghosts after 10,000 clients closed).
    """
    grace, heidi = await user_factory(username="grace"), await user_factory(username="heidi")
    room = await room_factory(host=grace)
    close_paused = Pause(monkeypatch, "connections_close")
    beats: list[asyncio.Future[None]] = []

    async def beat_while_heidis_rows_are_deleted() -> None:
        await close_paused.wait_reached()
        beats.append(asyncio.ensure_future(realtime.heartbeat_once()))

    async with connect(grace) as g:
        await g.request("join_room", pk=room.pk)
        async with connect(heidi) as h:
            await h.request("join_room", pk=room.pk)
            close_paused.resume_in(0.3)
            waiting = asyncio.ensure_future(beat_while_heidis_rows_are_deleted())
        await waiting
        await beats[0]
        await assert_only_grace_left(room.pk, grace)


async def test_a_leave_during_a_heartbeat_is_not_written_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same race as a close's, for leave_room: the beat wrote the presence back, and nothing removed it
    while the connection stayed open (a heartbeat only re-creates what its consumers hold)."""
    async with both_in_a_room_during_a_beat(monkeypatch) as (room, _, h, beat, paused):
        paused.resume_in(0.3)
        assert (await h.request("leave_room", pk=room.pk))["response_status"] == 200
        await beat
        assert await current_users(room.pk) == ["grace"]
        await realtime.heartbeat_once()  # and a later beat leaves it so
        assert await current_users(room.pk) == ["grace"]


async def test_a_member_removed_during_a_heartbeat_is_not_made_present_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The removal deletes heidi's presence at once; her consumer forgets the room only when the event arrives."""
    async with both_in_a_room_during_a_beat(monkeypatch) as (room, g, _, beat, paused):
        heidi = await database_sync_to_async(User.objects.get)(username="heidi")
        assert (await g.request("remove_member", pk=room.pk, user_id=heidi.pk))["response_status"] == 204
        paused.resume.set()
        await beat
        assert await current_users(room.pk) == ["grace"]
        assert [room_id for _, room_id in (await rows())[1]] == [room.pk]


async def test_heartbeat_removes_rows_of_this_process_that_no_consumer_holds() -> None:
    """Finding 2: a row this process wrote but holds no consumer for is a ghost; the heartbeat no longer keeps it fresh."""
    frank = await user_factory(username="frank")
    async with connect(frank):
        await database_sync_to_async(Connection.objects.create)(
            channel_name="conn.ghost", user=frank, server_id=realtime.SERVER_ID, seen_at=timezone.now()
        )
        await realtime.heartbeat_once()
        connections, _ = await rows()
        assert [name for name, _ in connections if name == "conn.ghost"] == []
        assert len(connections) == 1


async def test_heartbeat_closes_connections_of_users_deactivated_in_bulk() -> None:
    """Finding 7: QuerySet.update(is_active=False) sends no signal; the next beat closes the user's sockets."""
    gina, hank = await user_factory(username="gina"), await user_factory(username="hank")
    async with connect(gina) as g1, connect(gina) as g2, connect(hank) as h:
        await database_sync_to_async(lambda: User.objects.filter(pk=gina.pk).update(is_active=False))()
        await realtime.heartbeat_once()
        for client in (g1, g2):
            assert await client.communicator.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}
        assert (await h.request("list"))["response_status"] == 200


async def test_a_leave_does_not_hold_up_a_batch_of_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaves and closes only wait for a heartbeat, never for each other: they change different rows.

    A single lock made every leave_room and every batch of closes of the process take turns, so a
    slow leave held up the cleanup of all connections closing meanwhile.
    """
    grace, heidi = await user_factory(username="grace"), await user_factory(username="heidi")
    room = await room_factory(host=heidi)  # grace is no owner: she may leave
    leave_paused = Pause(monkeypatch, "presence_leave")
    async with connect(grace) as g:
        await g.request("join_room", pk=room.pk)
        async with connect(heidi) as h:
            await h.request("join_room", pk=room.pk)
            leaving = asyncio.ensure_future(g.request("leave_room", pk=room.pk))
            await leave_paused.wait_reached()
        # heidi closed while grace's leave is still in the database: her rows go all the same.
        for _ in range(40):
            if [user_id for _, user_id in (await rows())[0]] == [grace.pk]:
                break
            await asyncio.sleep(0.05)
        assert [user_id for _, user_id in (await rows())[0]] == [grace.pk]
        leave_paused.resume.set()
        response = await leaving
        assert response["response_status"] == 200, response
        assert await current_users(room.pk) == []
