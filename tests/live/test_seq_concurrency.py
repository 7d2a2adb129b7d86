"""Concurrent posters on PostgreSQL, through the real HTTP API of two live server processes.

A Django process runs sync views one at a time, so the posters are spread over two
daphne processes: their transactions really do overlap in PostgreSQL, and only the
room row lock keeps seqs gap-free and client_ids unique.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from chat.models import Message, Room
from tests.live import LiveServer, LiveUser, create_room, explain, register_user, run_servers

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

THREADS = 8
POSTS_PER_THREAD = 50
RACES = 10


def require_postgresql() -> None:
    # The guarantee under test is PostgreSQL's row lock; SQLite would serialise everything anyway.
    assert connection.vendor == "postgresql", "this test needs PostgreSQL: set DATABASE_URL (make test does)"


def join(server: LiveServer, user: LiveUser, room_pk: int) -> None:
    response = requests.post(f"{server.base_url}/api/rooms/{room_pk}/join/", headers=user.headers, timeout=15)
    assert response.status_code == 200, explain(response)


def history(server: LiveServer, user: LiveUser, room_pk: int) -> list[dict]:
    """Every message of the room, read page by page with after_seq as a client would."""
    messages: list[dict] = []
    after = 0
    while True:
        response = requests.get(
            f"{server.base_url}/api/rooms/{room_pk}/messages/",
            params={"after_seq": after, "limit": 200},
            headers=user.headers,
            timeout=15,
        )
        assert response.status_code == 200, explain(response)
        page = response.json()
        messages += page["results"]
        if not page["has_more"]:
            return messages
        after = page["results"][-1]["seq"]


def test_concurrent_posts_get_seqs_exactly_1_to_n() -> None:
    require_postgresql()
    with run_servers(2) as servers:
        # Two posters (one per server) keep password hashing out of the test's time; the
        # flood limit is off for live servers, and the lock under test is per room, not per user.
        users = [register_user(server.base_url) for server in servers]
        room = create_room(servers[0].base_url, users[0])
        join(servers[1], users[1], room["pk"])
        start = threading.Barrier(THREADS)

        def poster(index: int) -> list[int]:
            """Post POSTS_PER_THREAD messages one after another; returns their seqs."""
            server, user = servers[index % 2], users[index % 2]
            url = f"{server.base_url}/api/rooms/{room['pk']}/messages/"
            seqs = []
            with requests.Session() as session:
                session.headers.update(user.headers)
                start.wait(timeout=30)
                for n in range(POSTS_PER_THREAD):
                    response = session.post(url, json={"text": f"t{index} m{n}"}, timeout=30)
                    assert response.status_code == 201, explain(response)
                    seqs.append(response.json()["seq"])
            return seqs

        with ThreadPoolExecutor(THREADS) as pool:
            per_thread = list(pool.map(poster, range(THREADS)))

        total = THREADS * POSTS_PER_THREAD
        # One poster's messages are stored in the order it sent them.
        for seqs in per_thread:
            assert seqs == sorted(seqs)
        acknowledged = sorted(seq for seqs in per_thread for seq in seqs)
        assert acknowledged == list(range(1, total + 1))

        stored = history(servers[1], users[1], room["pk"])
        assert [m["seq"] for m in stored] == list(range(1, total + 1))
        by_seq = {seq: f"t{index} m{n}" for index, seqs in enumerate(per_thread) for n, seq in enumerate(seqs)}
        assert all(m["text"] == by_seq[m["seq"]] for m in stored)

    # And in the database itself: no gap, no duplicate, and the room's counter agrees.
    seqs = list(Message.objects.filter(room_id=room["pk"]).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, total + 1))
    assert Room.objects.get(pk=room["pk"]).last_seq == total


def test_racing_retries_with_one_client_id_store_one_message() -> None:
    require_postgresql()
    with run_servers(2) as servers:
        user = register_user(servers[0].base_url)
        room = create_room(servers[0].base_url, user)
        start = threading.Barrier(2)

        def post(server: LiveServer, client_id: str) -> requests.Response:
            start.wait(timeout=30)
            return requests.post(
                f"{server.base_url}/api/rooms/{room['pk']}/messages/",
                json={"text": f"sent once as {client_id}", "client_id": client_id},
                headers=user.headers,
                timeout=30,
            )

        with ThreadPoolExecutor(2) as pool:
            for race in range(RACES):
                client_id = f"retry-{race}"
                first, second = pool.map(post, servers, [client_id, client_id])
                assert sorted([first.status_code, second.status_code]) == [200, 201], (explain(first), explain(second))
                assert first.json() == second.json()
                assert first.json()["client_id"] == client_id

        stored = history(servers[1], user, room["pk"])
        assert [(m["seq"], m["client_id"]) for m in stored] == [(n + 1, f"retry-{n}") for n in range(RACES)]
    assert Message.objects.filter(room_id=room["pk"]).count() == RACES
