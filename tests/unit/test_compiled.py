"""chat.core.compiled.CompiledQuery: the ORM builder's rows, from SQL compiled once."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count, Exists, OuterRef, QuerySet

from chat.core.compiled import CompiledQuery
from chat.models import Membership, Room
from tests.factories import RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


def _rooms(room_id: int, user_id: int, since: datetime) -> "QuerySet[Any, Any]":
    return (
        Room.objects.filter(pk=room_id, created_at__gte=since)
        .annotate(is_member=Exists(Membership.objects.filter(room_id=OuterRef("pk"), user_id=user_id)), n_members=Count("memberships"))
        .values("id", "name", "created_at", "is_member", "n_members")
    )


def test_rows_are_the_builders_rows_with_the_arguments_replaced() -> None:
    query = CompiledQuery(_rooms, room_id=-1, user_id=-2, since=datetime(1901, 1, 1, tzinfo=UTC))
    host, other = UserFactory.create(), UserFactory.create()
    rooms = [RoomFactory.create(host=host), RoomFactory.create(host=other)]
    since = datetime.now(UTC) - timedelta(hours=1)
    for room in rooms:
        for user in (host, other):
            arguments: dict[str, Any] = {"room_id": room.pk, "user_id": user.pk, "since": since}
            assert query.rows(**arguments) == list(_rooms(**arguments))
    assert query.first(room_id=rooms[0].pk, user_id=other.pk, since=since + timedelta(hours=2)) is None
    assert (query.plan is not None) == (connection.vendor == "postgresql")  # elsewhere: the ORM every time


def test_a_stand_in_the_compiled_parameters_do_not_show_is_never_compiled() -> None:
    # icontains turns the value into a pattern: the stand-in is not a parameter as given.
    query = CompiledQuery(lambda name: Room.objects.filter(name__icontains=name).values("id"), name="\0stand-in")
    room = RoomFactory.create(name="Kitchen")
    assert query.rows(name="itch") == [{"id": room.pk}]
    assert query.plan is None
