"""Fan-out costs: one serialization per event whatever the audience, no query per subscriber; admin writes fan out too."""

from typing import Any

import pytest
from django.db.backends.utils import CursorWrapper
from django.test import Client as DjangoClient

from chat.core import serializers, services
from chat.models import Message
from tests.db import database_sync_to_async
from tests.factories import PASSWORD, RoomFactory, UserFactory
from tests.ws import connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

user_factory = database_sync_to_async(UserFactory)
room_factory = database_sync_to_async(RoomFactory)


async def test_one_event_is_serialized_once_and_costs_no_query_per_subscriber(monkeypatch: pytest.MonkeyPatch) -> None:
    host = await user_factory()
    room = await room_factory(host=host)
    serializations: list[int] = []
    queries: list[str] = []
    message_json = serializers.message_json
    execute = CursorWrapper.execute

    def counting_message_json(instance: Message) -> Any:  # what MessageSerializer and message_data encode with
        serializations.append(instance.pk)
        return message_json(instance)

    def counting_execute(self: CursorWrapper, sql: str, params: Any = None) -> Any:
        queries.append(sql)
        return execute(self, sql, params)

    clients = []
    async with connect(host) as c1, connect(host) as c2, connect(host) as c3, connect(host) as c4:
        for index, client in enumerate((c1, c2, c3, c4)):
            await client.request("subscribe_to_messages_in_room", pk=room.pk, request_id=f"s{index}")
            clients.append(client)
        monkeypatch.setattr(serializers, "message_json", counting_message_json)
        message, _ = await database_sync_to_async(services.message_store)(room_id=room.pk, author=host, text="hi")
        writer_queries = len(queries)
        monkeypatch.setattr(CursorWrapper, "execute", counting_execute)
        for client in clients:
            push = await client.next_push()
            assert push["action"] == "create" and push["pk"] == message.pk
        assert serializations == [message.pk]
        assert queries[writer_queries:] == []


async def test_messages_added_in_the_admin_reach_subscribers() -> None:
    admin = await user_factory(is_staff=True, is_superuser=True)
    room = await room_factory(host=admin)
    browser = DjangoClient()
    assert await database_sync_to_async(browser.login)(username=admin.username, password=PASSWORD)
    async with connect(admin) as client:
        await client.request("subscribe_to_messages_in_room", pk=room.pk, request_id="admin-watch")
        await database_sync_to_async(services.message_store)(room_id=room.pk, author=admin, text="first")
        response = await database_sync_to_async(browser.post)(
            "/admin/chat/message/add/", {"room": room.pk, "user": admin.pk, "text": "from the admin", "client_id": ""}
        )
        assert response.status_code == 302, response.content[:500]
        first, second = await client.next_push(), await client.next_push()
        assert [first["data"]["seq"], second["data"]["seq"]] == [1, 2]
        assert second["data"]["text"] == "from the admin"
