"""Operations both transports expose, implemented once: HTTP views and WebSocket actions call these.

Each validates its input with the shared serializers, calls one service or selector,
and returns the JSON body; the transport only finds the room and frames the result.
"""

from collections.abc import Mapping
from typing import Any

from chat.core import selectors, services
from chat.core.serializers import (
    EmojiParamSerializer,
    MessageHistoryParamsSerializer,
    MessageSerializer,
    RoomListParamsSerializer,
    RoomSerializer,
    UserSearchParamsSerializer,
    UserSerializer,
    serialize_many,
    validate,
)
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


def message_search_page(*, user: User, query: str, room_id: int | None, limit: int, before_id: int | None) -> dict[str, Any]:
    """Messages the user can see matching the query, newest first: `{"results", "has_more"}`.

    The transports name the parameters differently (`query`/`pk` over WebSocket, `q`/`room`
    over HTTP) and validate them with their own serializer, so 400s name the field sent.
    """
    messages, has_more = selectors.message_search(user=user, query=query, room_id=room_id, limit=limit, before_id=before_id)
    return {"results": serialize_many(MessageSerializer, messages), "has_more": has_more}


def reaction_change(*, user: User, message_id: int, params: Mapping[str, Any], add: bool) -> tuple[dict[str, Any], int]:
    """Add (201 new, 200 already there) or remove (200) the user's reaction `params["emoji"]`; the Message and the status."""
    emoji = validate(EmojiParamSerializer, params)["emoji"]
    if add:
        message, created = services.reaction_add(message_id=message_id, user=user, emoji=emoji)
        return MessageSerializer(message).data, 201 if created else 200
    return MessageSerializer(services.reaction_remove(message_id=message_id, user=user, emoji=emoji)).data, 200


def user_search_page(*, params: Mapping[str, Any]) -> dict[str, Any]:
    """Active users by username prefix, any case: `{"results", "count"}`."""
    query = validate(UserSearchParamsSerializer, params)
    users, count = selectors.user_search(prefix=query.get("search", ""), page=query["page"], page_size=query["page_size"])
    return {"results": serialize_many(UserSerializer, users), "count": count}
