"""Operations both transports expose, implemented once: HTTP views and WebSocket actions call these.

Each validates its input with the shared serializers, calls one service or selector,
and returns the JSON body; the transport only finds the room and frames the result.
"""

from collections.abc import Mapping
from typing import Any

from chat.core import selectors, services
from chat.core.serializers import MessageHistoryParamsSerializer, MessageSerializer, RoomListParamsSerializer, RoomSerializer, validate
from chat.models import Room, User


def room_list_page(*, user: User, params: Mapping[str, Any]) -> dict[str, Any]:
    """A page of the rooms the user can see (optional exact name filter): `{"results", "count"}`."""
    rooms, count = selectors.room_list(user=user, **validate(RoomListParamsSerializer, params))
    return {"results": RoomSerializer(rooms, many=True).data, "count": count}


def room_patch(*, room: Room, user: User, data: Any, partial: bool = True) -> dict[str, Any]:
    """Apply a partial Room, or a full one with partial=False (only `name` is writable; host only); the updated Room."""
    serializer = RoomSerializer(room, data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    room = services.room_update(room=room, user=user, name=serializer.validated_data.get("name", room.name))
    return RoomSerializer(room).data


def message_history_page(*, user: User, room_id: int, params: Mapping[str, Any]) -> dict[str, Any]:
    """A slice of the history of a room the user can see (404 otherwise): `{"results", "has_more"}`, ascending by seq."""
    selectors.room_assert_visible(user=user, pk=room_id)
    messages, has_more = selectors.message_history(room_id=room_id, **validate(MessageHistoryParamsSerializer, params))
    return {"results": MessageSerializer(messages, many=True).data, "has_more": has_more}
