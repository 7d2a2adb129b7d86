"""HTTP API (api_docs/PROTOCOL.md §4): thin DRF views over chat.core (operations, services, selectors).

Their OpenAPI description is written once, in api_docs/openapi.py.
"""

from collections.abc import Mapping
from typing import Any

from django.contrib.auth import logout
from rest_framework import generics, status, views, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from chat.core import operations, selectors, services
from chat.core.serializers import (
    InboxEntrySerializer,
    MarkReadParamsSerializer,
    MemberSerializer,
    MessageSearchQuerySerializer,
    MessageSerializer,
    PageParamsSerializer,
    PkParamSerializer,
    RegisterSerializer,
    RoleParamSerializer,
    RoomSerializer,
    UserIdParamSerializer,
    UserSerializer,
    validate,
)
from chat.http.parsers import SafeJSONParser
from chat.http.throttles import AuthRateThrottle
from chat.models import Message, Room, User


def _user(request: Request) -> User:
    """The request's user; every view but RegisterView requires one (DEFAULT_PERMISSION_CLASSES)."""
    if not isinstance(request.user, User):
        raise NotAuthenticated()
    return request.user


class RegisterView(generics.CreateAPIView):
    """Create an account: 201 with the new User."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    throttle_classes = [AuthRateThrottle]
    serializer_class = RegisterSerializer

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validate(RegisterSerializer, request.data)
        user = services.user_register(username=data["username"], password=data["password"])
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenView(ObtainAuthToken):
    """Exchange a username and password for the user's API token (DRF's view, JSON only and throttled)."""

    parser_classes = [SafeJSONParser]  # DRF's view also takes forms; the API speaks JSON
    throttle_classes = [AuthRateThrottle]


class LogoutView(views.APIView):
    """Revoke the API token this request carries (its WebSocket connections close with 4401); end a browser session."""

    def post(self, request: Request) -> Response:
        if isinstance(request.auth, Token):
            services.token_revoke(token=request.auth)
        else:  # signed in by the session cookie: there is no token to revoke, end the session instead
            logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserListView(views.APIView):
    """Users by username prefix (any case), paginated: how a client finds someone to open a direct room with."""

    def get(self, request: Request) -> Response:
        return Response(operations.user_search_page(params=request.query_params))


class MeView(generics.RetrieveAPIView):
    """The authenticated user."""

    serializer_class = UserSerializer

    def get_object(self) -> Any:
        return self.request.user


class RoomViewSet(viewsets.GenericViewSet):
    """Rooms: list, create, retrieve, rename, delete, join, leave, and their messages."""

    serializer_class = RoomSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    # Only for the OpenAPI schema (the pk's type); reads go through chat.core.selectors.
    queryset = Room.objects.none()

    def get_object(self) -> Any:
        return selectors.access_room(user=_user(self.request), pk=self._room_id())

    def _room_id(self) -> int:
        return validate(PkParamSerializer, {"pk": self.kwargs["pk"]})["pk"]

    def _user_id(self, user_id: str) -> int:
        return validate(UserIdParamSerializer, {"user_id": user_id})["user_id"].pk

    def list(self, request: Request) -> Response:
        return Response(operations.room_list_page(user=_user(request), params=request.query_params))

    def create(self, request: Request) -> Response:
        room = services.room_create(host=_user(request), **validate(RoomSerializer, request.data))
        return Response(RoomSerializer(room).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(RoomSerializer(self.get_object()).data)

    def partial_update(self, request: Request, pk: str) -> Response:
        return Response(operations.room_patch(room=self.get_object(), user=_user(request), data=request.data))

    def destroy(self, request: Request, pk: str) -> Response:
        services.room_delete(room=self.get_object(), user=_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def join(self, request: Request, pk: str) -> Response:
        room = self.get_object()
        services.room_join(room_id=room.pk, user=_user(request))
        return Response(RoomSerializer(room).data)

    @action(detail=True, methods=["post"])
    def leave(self, request: Request, pk: str) -> Response:
        services.room_leave(room_id=self.get_object().pk, user=_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["get", "post"], serializer_class=MessageSerializer)
    def messages(self, request: Request, pk: str) -> Response:
        room_id = validate(PkParamSerializer, {"pk": pk})["pk"]
        if request.method == "GET":
            return Response(operations.message_history_page(user=_user(request), room_id=room_id, params=request.query_params))
        data = validate(MessageSerializer, request.data)
        message, created = services.message_create(
            room_id=room_id, author=_user(request), text=data["text"], client_id=data.get("client_id"), reply_to=data.get("reply_to")
        )
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @action(detail=False, methods=["post"])
    def direct(self, request: Request) -> Response:
        """Open the direct room with a user (§5 open_direct): 201 created, 200 if it existed."""
        other = validate(UserIdParamSerializer, request.data)["user_id"]
        room, created = services.direct_open(user=_user(request), other=other)
        return Response(RoomSerializer(room).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @action(detail=True, methods=["get", "post"], serializer_class=MemberSerializer)
    def members(self, request: Request, pk: str) -> Response:
        """List the room's members (§5 list_members), or add one (add_member)."""
        room_id = self._room_id()
        if request.method == "GET":
            selectors.room_assert_visible(user=_user(request), pk=room_id)
            members, count = selectors.member_list(room_id=room_id, **validate(PageParamsSerializer, request.query_params))
            return Response({"results": MemberSerializer(members, many=True).data, "count": count})
        user = validate(UserIdParamSerializer, request.data)["user_id"]
        membership, created = services.member_add(room_id=room_id, actor=_user(request), user=user)
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<user_id>[^/.]+)", serializer_class=MemberSerializer)
    def member(self, request: Request, pk: str, user_id: str) -> Response:
        """Change a member's role (§5 set_role), or remove them (remove_member)."""
        room_id, target_id = self._room_id(), self._user_id(user_id)
        if request.method == "PATCH":
            role = validate(RoleParamSerializer, request.data)["role"]
            membership = services.member_set_role(room_id=room_id, actor=_user(request), user_id=target_id, role=role)
            return Response(MemberSerializer(membership).data)
        services.member_remove(room_id=room_id, actor=_user(request), user_id=target_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post", "delete"], url_path=r"bans/(?P<user_id>[^/.]+)")
    def ban(self, request: Request, pk: str, user_id: str) -> Response:
        """Ban a user (§5 ban_member: 204), or lift the ban (unban_member: 200)."""
        room_id, target_id = self._room_id(), self._user_id(user_id)
        if request.method == "POST":
            services.member_ban(room_id=room_id, actor=_user(request), user_id=target_id)
            return Response(status=status.HTTP_204_NO_CONTENT)
        services.member_unban(room_id=room_id, actor=_user(request), user_id=target_id)
        return Response(status=status.HTTP_200_OK)

    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk: str) -> Response:
        """Mark the room read up to a seq (§6 mark_read)."""
        seq = validate(MarkReadParamsSerializer, request.data)["seq"]
        last_read_seq, unread = services.room_mark_read(room_id=self._room_id(), user=_user(request), seq=seq)
        return Response({"last_read_seq": last_read_seq, "unread_count": unread})


class MyRoomsView(generics.GenericAPIView):
    """The caller's inbox (§6 list_my_rooms): their rooms, newest message first, with read state."""

    serializer_class = InboxEntrySerializer

    def get(self, request: Request) -> Response:
        entries, count = selectors.inbox(user=_user(request), **validate(PageParamsSerializer, request.query_params))
        return Response({"results": InboxEntrySerializer(entries, many=True).data, "count": count})


class MessageViewSet(viewsets.GenericViewSet):
    """One message: edit its text, delete it, react to it; and search all messages."""

    serializer_class = MessageSerializer
    http_method_names = ["get", "post", "patch", "delete", "options"]
    # Only for the OpenAPI schema (the pk's type); reads go through chat.core.selectors.
    queryset = Message.objects.none()

    def get_object(self) -> Any:
        pk = validate(PkParamSerializer, {"pk": self.kwargs["pk"]})["pk"]
        return selectors.access_message(user=_user(self.request), pk=pk)

    def partial_update(self, request: Request, pk: str) -> Response:
        message = self.get_object()
        data = validate(MessageSerializer, request.data)
        message = services.message_update(message=message, user=_user(request), text=data["text"])
        return Response(MessageSerializer(message).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.message_delete(message=self.get_object(), user=_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post", "delete"])
    def reactions(self, request: Request, pk: str) -> Response:
        message_id = validate(PkParamSerializer, {"pk": pk})["pk"]
        # A DELETE body is not always possible (some clients, proxies): the emoji may come as a query parameter.
        params = request.data if isinstance(request.data, Mapping) and request.data else request.query_params
        data, status_code = operations.reaction_change(
            user=_user(request), message_id=message_id, params=params, add=request.method == "POST"
        )
        return Response(data, status=status_code)

    @action(detail=False, methods=["get"])
    def search(self, request: Request) -> Response:
        params = validate(MessageSearchQuerySerializer, request.query_params)
        return Response(
            operations.message_search_page(
                user=_user(request), query=params["q"], room_id=params.get("room"), limit=params["limit"], before_id=params.get("before_id")
            )
        )
