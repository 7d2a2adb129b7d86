"""Fan-out metrics per event (chat.events.fanout): every frame counted, the commit-to-send delay observed once per event and process."""

import pytest
from prometheus_client import REGISTRY

from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"event": "create"}) or 0.0


async def test_three_subscribers_count_three_frames_and_one_delay() -> None:
    host = await database_sync_to_async(UserFactory)()
    room = await database_sync_to_async(RoomFactory)(host=host)
    async with connect(host) as c1, connect(host) as c2, connect(host) as c3:
        for n, client in enumerate((c1, c2, c3)):
            await client.request("subscribe_to_messages_in_room", pk=room.pk, request_id=f"s{n}")
        await c1.request("join_room", pk=room.pk)
        frames, delays = sample("chat_events_fanned_out_total"), sample("chat_fanout_delay_seconds_count")
        await c1.request("create_message", message="hello", room=room.pk)
        for client in (c1, c2, c3):
            while (await client.next_push()).get("action") != "create":
                pass
    assert sample("chat_events_fanned_out_total") - frames == 3
    assert sample("chat_fanout_delay_seconds_count") - delays == 1
