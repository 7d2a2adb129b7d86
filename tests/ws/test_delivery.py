"""api_docs/PROTOCOL.md §3 under concurrency: seq order per subscription, and gap-free resume while others post."""

import asyncio
import random
import threading
from typing import Any

import pytest
from django.db import connection

from chat.core import services
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

user_factory = database_sync_to_async(UserFactory)
room_factory = database_sync_to_async(RoomFactory)


def post_from_threads(room_id: int, authors: list[Any], per_author: int) -> list[threading.Thread]:
    """Start one thread per author, each posting on its own database connection."""

    def post(author: Any) -> None:
        try:
            for i in range(per_author):
                services.message_store(room_id=room_id, author=author, text=f"{author.username} {i}")
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(author,)) for author in authors]
    for thread in threads:
        thread.start()
    return threads


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()


async def test_concurrent_posters_reach_a_subscriber_in_seq_order() -> None:
    authors = [await user_factory() for _ in range(4)]
    room = await room_factory(host=authors[0])
    async with connect(authors[0]) as client:
        await client.request("subscribe_to_messages_in_room", pk=room.pk, request_id="s")
        threads = post_from_threads(room.pk, authors, per_author=25)
        seqs: list[int] = []
        while len(seqs) < 100:
            push = await client.next_push(timeout=10)
            if push["action"] == "create":
                seqs.append(push["data"]["seq"])
        await asyncio.get_running_loop().run_in_executor(None, join_all, threads)
        assert seqs == list(range(1, 101))
        await client.assert_silent()


async def test_reconnecting_with_after_seq_while_others_post_misses_nothing() -> None:
    author, reader = await user_factory(), await user_factory()
    room = await room_factory(host=author)
    total = 120
    threads = post_from_threads(room.pk, [author], per_author=total)
    seen: list[int] = []
    rng = random.Random(7)
    while len(seen) < total:
        async with connect(reader) as client:
            response = await client.request(
                "subscribe_to_messages_in_room", pk=room.pk, request_id=f"r{len(seen)}", after_seq=seen[-1] if seen else 0
            )
            assert response["response_status"] == 200
            for _ in range(rng.randint(1, 15)):  # read a little, then drop the connection
                push = await client.next_push(timeout=10)
                if push["action"] == "create":
                    seen.append(push["data"]["seq"])
                if len(seen) == total:
                    break
    await asyncio.get_running_loop().run_in_executor(None, join_all, threads)
    assert seen == list(range(1, total + 1))


async def test_a_post_s_response_carries_the_message_its_event_carries() -> None:
    """The Message is encoded once, for the create event, and the response reuses that text."""
    author = await user_factory()
    room = await room_factory(host=author)
    async with connect(author) as client:
        await client.request("subscribe_to_messages_in_room", pk=room.pk, request_id="s")
        posted = await client.request("create_message", room=room.pk, message="once", client_id="c-1", request_id="p")
        push = await client.next_push()
        assert posted["response_status"] == 201 and push["action"] == "create"
        assert posted["data"] == push["data"] and posted["data"]["text"] == "once" and posted["data"]["reactions"] == []
        retried = await client.request("create_message", room=room.pk, message="once", client_id="c-1", request_id="p2")
        assert retried["response_status"] == 200 and retried["data"] == posted["data"]
