"""The baseline: the bench's subset of the contract on stock Channels plumbing (`stock-<layer>-<n>`).

What the issue calls "stock Channels": stock `daphne`, an `AsyncJsonWebsocketConsumer`
with a layer channel of its own, `group_add` per subscribing connection, one layer
message per event that every consumer decodes, stock `dispatch()` (with its
per-event `aclose_old_connections()` hop) and a `json.dumps` per frame. It answers the
actions the bench uses (`create`, `join_room`, `subscribe_to_messages_in_room`,
`create_message`) through the project's own services and serializers, with presence
rows as the real server keeps them, but without presence pushes, replay, gap repair
or backlog bounds. It exists only to be measured against `mysite.asgi` in one run.
"""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django_asgi_app = get_asgi_application()

from channels.db import database_sync_to_async  # noqa: E402
from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.exceptions import APIException  # noqa: E402

from chat.core import selectors, services  # noqa: E402
from chat.core.serializers import MessageSerializer, RoomSerializer  # noqa: E402
from chat.ws.auth import websocket_auth_stack  # noqa: E402


def _room_group(room_id: int) -> str:
    return f"stock.room.{room_id}"


class StockRoomConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close()
            return
        self.subscriptions: dict[int, list[Any]] = {}
        self.last_room: int | None = None
        await database_sync_to_async(services.connection_open)(channel_name=self.channel_name, user=self.user, server_id="stock")
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "subscriptions", None) is not None:
            await database_sync_to_async(services.connections_close)(channel_names=[self.channel_name])

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        action, request_id = content.get("action"), content.get("request_id")
        handler = getattr(self, f"do_{action}", None)
        try:
            data, status = await handler(content) if handler else (None, 405)
            errors: list[Any] = []
        except APIException as exc:
            data, status, errors = None, exc.status_code, [str(exc.detail)]
        await self.send_json({"action": action, "request_id": request_id, "response_status": status, "data": data, "errors": errors})

    async def do_create(self, content: dict[str, Any]) -> tuple[Any, int]:
        room = await database_sync_to_async(services.room_create)(host=self.user, name=content["data"]["name"])
        return await database_sync_to_async(lambda: RoomSerializer(room).data)(), 201

    async def do_join_room(self, content: dict[str, Any]) -> tuple[Any, int]:
        room_id = int(content["pk"])

        def enter() -> Any:
            _, room = services.presence_enter(channel_name=self.channel_name, room_id=room_id, user=self.user)
            room.current_users = selectors.present_users_by_room([room_id]).get(room_id, [])
            return RoomSerializer(room).data

        data = await database_sync_to_async(enter)()
        self.last_room = room_id
        return data, 200

    async def do_subscribe_to_messages_in_room(self, content: dict[str, Any]) -> tuple[Any, int]:
        room_id = int(content["pk"])
        await database_sync_to_async(selectors.room_assert_exists)(pk=room_id)
        await self.channel_layer.group_add(_room_group(room_id), self.channel_name)
        self.subscriptions.setdefault(room_id, []).append(content.get("request_id"))
        return None, 200

    async def do_create_message(self, content: dict[str, Any]) -> tuple[Any, int]:
        room: Any = content.get("room") or self.last_room
        room_id = int(room)

        def create() -> tuple[Any, bool]:
            message, created = services.message_create(
                room_id=room_id, author=self.user, text=content["message"], client_id=content.get("client_id")
            )
            return MessageSerializer(message).data, created

        data, created = await database_sync_to_async(create)()
        if created:
            await self.channel_layer.group_send(_room_group(room_id), {"type": "chat.message", "room": room_id, "data": data})
        return data, 201 if created else 200

    async def chat_message(self, event: dict[str, Any]) -> None:
        for request_id in self.subscriptions.get(event["room"], ()):
            await self.send_json({"action": "create", "request_id": request_id, "pk": event["data"]["id"], "data": event["data"]})


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_auth_stack(URLRouter([path("ws/chat/room/", StockRoomConsumer.as_asgi())])),
    }
)
