"""Presence push coalescing in chat.events.realtime: batched, but never losing a change."""

import asyncio
from typing import Any

import pytest
from channels.layers import get_channel_layer

from chat.events import groups, realtime

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def test_a_change_during_a_flush_is_pushed_too(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = get_channel_layer()
    listener = await layer.new_channel()
    await layer.group_add(groups.room_group(2), listener)
    first_query_started, release_first_query = asyncio.Event(), asyncio.Event()
    original = realtime._present_users

    async def slow_first_query(room_ids: list[int]) -> Any:
        if not first_query_started.is_set():
            first_query_started.set()
            await release_first_query.wait()
        return await original(room_ids)

    monkeypatch.setattr(realtime, "_present_users", slow_first_query)
    await realtime.push_presence([1])
    await asyncio.wait_for(first_query_started.wait(), 5)
    await realtime.push_presence([2])  # arrives while room 1's flush is still querying
    release_first_query.set()
    pushed = await asyncio.wait_for(layer.receive(listener), 5)
    assert pushed["type"] == "room.presence" and '"room": 2' in pushed["text"]
