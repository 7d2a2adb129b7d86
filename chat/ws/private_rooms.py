"""WebSocket actions of api_docs/PROTOCOL.md §5: direct rooms, members, roles and moderation.

Thin: each validates its parameters, calls one service or selector and serializes the
result. The rules (who may do what to whom) are in chat.core.services, shared with HTTP.
"""

from typing import Any

from chat.core import selectors, services
from chat.core.db import db_action
from chat.core.serializers import (
    MemberSerializer,
    PageParamsSerializer,
    PkParamSerializer,
    RoleParamSerializer,
    RoomSerializer,
    UserIdParamSerializer,
    validate,
)
from chat.ws.connection import ConsumerMixin
from chat.ws.protocol import Status


class PrivateRoomsMixin(ConsumerMixin):
    """open_direct, list_members, add_member, remove_member, ban_member, unban_member, set_role."""

    @db_action()
    def open_direct(self, **params: Any) -> Status:
        other = validate(UserIdParamSerializer, params)["user_id"]
        room, created = services.direct_open(user=self.user, other=other)
        return RoomSerializer(room).data, 201 if created else 200

    @db_action()
    def list_members(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        selectors.room_assert_visible(user=self.user, pk=room_id)
        members, count = selectors.member_list(room_id=room_id, **validate(PageParamsSerializer, params))
        return {"results": MemberSerializer(members, many=True).data, "count": count}, 200

    @db_action()
    def add_member(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        user = validate(UserIdParamSerializer, params)["user_id"]
        membership, created = services.member_add(room_id=room_id, actor=self.user, user=user)
        return MemberSerializer(membership).data, 201 if created else 200

    @db_action()
    def remove_member(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        services.member_remove(room_id=room_id, actor=self.user, user_id=validate(UserIdParamSerializer, params)["user_id"].pk)
        return None, 204

    @db_action()
    def ban_member(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        services.member_ban(room_id=room_id, actor=self.user, user_id=validate(UserIdParamSerializer, params)["user_id"].pk)
        return None, 204

    @db_action()
    def unban_member(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        services.member_unban(room_id=room_id, actor=self.user, user_id=validate(UserIdParamSerializer, params)["user_id"].pk)
        return None, 200

    @db_action()
    def set_role(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        user = validate(UserIdParamSerializer, params)["user_id"]
        role = validate(RoleParamSerializer, params)["role"]
        membership = services.member_set_role(room_id=room_id, actor=self.user, user_id=user.pk, role=role)
        return MemberSerializer(membership).data, 200
