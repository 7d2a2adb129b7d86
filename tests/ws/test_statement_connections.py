"""The hot paths' statements borrow a pooled connection for themselves (chat.core.db.fetch_all_prepared, issue 16).

Django's connection, opened and closed around one statement, cost the server as much
CPU as the statement: a join, a subscription and a post now leave it closed, while a
statement inside a transaction still runs on the transaction's connection.
"""

import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.db.backends.signals import connection_created

from chat.core.db import fetch_prepared
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import connect, token_for

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's (CI runs it)")

PROJECT = str(Path(__file__).resolve().parents[2])
user_factory = database_sync_to_async(UserFactory)
room_factory = database_sync_to_async(RoomFactory)


@pytest.fixture
def django_connects() -> Iterator[list[str]]:
    """Where each Django connection opened meanwhile was opened (the project's frames), in any thread of the process."""
    opened: list[str] = []

    def record(sender: Any, connection: Any, **kwargs: Any) -> None:
        opened.append(
            " < ".join(
                f"{frame.name}:{frame.lineno}"
                for frame in reversed(traceback.extract_stack())
                if frame.filename.startswith(PROJECT) and "site-packages" not in frame.filename
            )
        )

    connection_created.connect(record, weak=False)
    yield opened
    connection_created.disconnect(record)


def _own_connection() -> psycopg.Connection[Any]:
    """A connection of the test's own, outside Django and its pool."""
    return psycopg.connect(**connection.get_connection_params() | {"autocommit": True})


def _committed_marker(name: str) -> bool:
    """Seen from another connection: whether the marker row is there."""
    with _own_connection() as other:
        return other.execute("SELECT count(*) FROM statement_markers WHERE name = %s", [name]).fetchone() == (1,)


@pytest.fixture
def markers() -> Iterator[None]:
    with _own_connection() as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS statement_markers (name text)")
    yield
    with _own_connection() as teardown:
        teardown.execute("DROP TABLE statement_markers")


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_statement_borrows_and_commits(django_connects: list[str], markers: None) -> None:
    connection.close()
    pool = getattr(connection, "pool")  # noqa: B009  # PostgreSQL's wrapper only
    available = pool.get_stats()["pool_available"]
    assert fetch_prepared("INSERT INTO statement_markers VALUES (%s) RETURNING name", ["borrowed"]) == ("borrowed",)
    assert connection.connection is None and django_connects == []  # Django's connection was never opened
    assert _committed_marker("borrowed")  # autocommitted, not rolled back as the pool takes it back
    assert pool.get_stats()["pool_available"] == available  # given back


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_a_statement_is_the_transactions(markers: None) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        fetch_prepared("INSERT INTO statement_markers VALUES (%s) RETURNING name", ["rolled back"])
        raise RuntimeError("roll it back")
    assert not _committed_marker("rolled back")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_handshake_a_join_a_subscription_and_a_post_open_no_django_connection(django_connects: list[str]) -> None:
    first, user, room = await user_factory(), await user_factory(), await room_factory()
    token = await token_for(user)  # connect(user) would read it meanwhile
    async with connect(first) as earlier:
        # The room's present users are read once per process (and after other processes' changes), with the ORM.
        assert (await earlier.request("join_room", pk=room.pk))["response_status"] == 200
        django_connects.clear()
        async with connect(headers=[(b"authorization", f"Token {token}".encode())]) as client:
            assert (await client.request("join_room", pk=room.pk))["response_status"] == 200
            assert (await client.request("subscribe_to_messages_in_room", pk=room.pk))["response_status"] == 200
            posted = await client.request("create_message", room=room.pk, message="hi")
            assert posted["response_status"] == 201
            assert (await client.next_push())["data"]["seq"] == posted["data"]["seq"]  # its event went out
            assert django_connects == [], "\n".join(django_connects)
