"""Migration 0002_private_rooms on existing data: rooms become public, members `member`, hosts `owner`, all read up to now."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("chat", "0001_initial")]
AFTER = [("chat", "0002_private_rooms")]


@pytest.mark.django_db(transaction=True)
def test_existing_rooms_and_members_are_carried_over() -> None:
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(BEFORE)
        old = executor.loader.project_state(BEFORE).apps
        user_model, room_model = old.get_model("chat", "User"), old.get_model("chat", "Room")
        host, member, other = (user_model.objects.create(username=name) for name in ["host", "member", "other"])
        talked = room_model.objects.create(name="talked", host=host, last_seq=7)
        talked.members.add(host, member)
        hostless = room_model.objects.create(name="host not a member", host=other, last_seq=0)  # the owner is always a member
        hostless.members.add(member)

        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps
        rooms = dict(new.get_model("chat", "Room").objects.values_list("name", "kind"))
        assert rooms == {"talked": "public", "host not a member": "public"}
        memberships = set(new.get_model("chat", "Membership").objects.values_list("room__name", "user__username", "role", "last_read_seq"))
        assert memberships == {
            ("talked", "host", "owner", 7),
            ("talked", "member", "member", 7),
            ("host not a member", "member", "member", 0),
            ("host not a member", "other", "owner", 0),
        }

        executor = MigrationExecutor(connection)
        executor.migrate(BEFORE)  # and back: the implicit table gets the pairs again
        back = executor.loader.project_state(BEFORE).apps
        pairs = set(back.get_model("chat", "Room").members.through.objects.values_list("room__name", "user__username"))
        assert ("talked", "member") in pairs and ("host not a member", "other") in pairs
    finally:
        MigrationExecutor(connection).migrate(latest)
