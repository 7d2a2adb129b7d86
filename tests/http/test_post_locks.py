"""What a post waits for on PostgreSQL: other posts to its room, and nothing else (migration 0007).

Each row inserted against a room (a join's membership and presence, a message) has
PostgreSQL's foreign-key check take FOR KEY SHARE on the room. The post's room lock must
not conflict with that, or a crowd joining a busy room and its posts wait for one another's
commits; it must still exclude a second post, which would take the same seq.
"""

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from chat.models import Membership, Message, Room, User
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's row locks (CI runs it)"),
]

# Long enough for an unblocked post on a loaded machine, short for a test that waits it out.
UNBLOCKED_WITHIN_S = 10.0
BLOCKED_FOR_S = 0.5


@pytest.fixture
def open_transaction() -> Iterator[psycopg.Connection[Any]]:
    """Another session's transaction, left open while the test posts (rolled back after)."""
    with psycopg.connect(**connection.get_connection_params()) as other:
        yield other
        other.rollback()


def post_in_background(api: APIClient, room: Room, text: str) -> tuple[threading.Thread, dict[str, Any]]:
    """POST the message on a thread of its own (it may have to wait for a lock); the result lands in the dict."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["response"] = api.post(f"/api/rooms/{room.pk}/messages/", {"text": text}, format="json")
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def finished(thread: threading.Thread, within: float) -> bool:
    thread.join(within)
    return not thread.is_alive()


def test_a_post_does_not_wait_for_a_join_in_flight(
    api: APIClient, room: Room, open_transaction: psycopg.Connection[Any], other_user: User
) -> None:
    # A join's membership insert, committing: Django's foreign keys are checked at commit (deferred),
    # and the check's FOR KEY SHARE on the room is held through the commit's WAL flush. Checked
    # at once here, so that the transaction holds it while the test posts.
    open_transaction.execute("SET CONSTRAINTS ALL IMMEDIATE")
    open_transaction.execute(
        "INSERT INTO chat_membership (room_id, user_id, role, joined_at, last_read_seq) VALUES (%s, %s, 'member', now(), 0)",
        [room.pk, other_user.pk],
    )
    thread, result = post_in_background(api, room, "not held up")
    assert finished(thread, UNBLOCKED_WITHIN_S), "the post waited for a join's uncommitted row"
    assert result["response"].status_code == 201 and result["response"].json()["seq"] == 1
    open_transaction.commit()
    assert Membership.objects.filter(room=room, user=other_user).exists()


def test_a_post_waits_for_another_post_to_its_room(api: APIClient, room: Room, open_transaction: psycopg.Connection[Any]) -> None:
    # Another post mid-way: it holds the room's lock and has not assigned its seq yet.
    first = UserFactory.create()
    Membership.objects.create(room=room, user=first)
    open_transaction.execute("SELECT * FROM chat_post_message(%s, %s, 'first', NULL, NULL, now(), true, true)", [room.pk, first.pk])
    thread, result = post_in_background(api, room, "second")
    assert not finished(thread, BLOCKED_FOR_S), "two posts to one room ran at once"
    open_transaction.commit()
    assert finished(thread, UNBLOCKED_WITHIN_S)
    assert result["response"].status_code == 201
    assert list(Message.objects.filter(room=room).order_by("seq").values_list("text", "seq")) == [("first", 1), ("second", 2)]
