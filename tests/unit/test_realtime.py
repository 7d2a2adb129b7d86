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


async def test_status_changes_of_a_moment_go_in_one_layer_message_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    first_send_started, release_first_send = asyncio.Event(), asyncio.Event()

    async def recording_send(group: str, message: dict[str, Any]) -> None:
        sent.append((group, message))
        first_send_started.set()
        await release_first_send.wait()

    monkeypatch.setattr(realtime, "_group_send", recording_send)
    ann, bob = {"id": 1, "username": "ann"}, {"id": 2, "username": "bob"}
    await realtime.push_user_status([ann], online=True)
    await realtime.push_user_status([bob], online=True)
    await asyncio.wait_for(first_send_started.wait(), 5)
    await realtime.push_user_status([ann], online=False)  # while the first message is being sent: the next one
    release_first_send.set()
    await asyncio.wait_for(realtime._state().user_status_sender or asyncio.sleep(0), 5)
    assert sent == [
        (
            groups.ONLINE_USERS_GROUP,
            {"type": groups.USER_STATUS_EVENT, "statuses": [{"user": ann, "online": True}, {"user": bob, "online": True}]},
        ),
        (groups.ONLINE_USERS_GROUP, {"type": groups.USER_STATUS_EVENT, "statuses": [{"user": ann, "online": False}]}),
    ]
