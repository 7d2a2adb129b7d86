"""OpenAPI annotations of chat's HTTP views (drf-spectacular extensions), kept beside the other API documents.

The views in chat/http/views.py validate input with shared serializers and return
hand-built envelopes (`{"results", "count"}`), which drf-spectacular cannot infer.
The extensions below replace each view, for schema generation only, with a
subclass carrying the exact parameters, request bodies, response bodies and error
responses of api_docs/PROTOCOL.md §4. Requests are served by the original views, which carry
no annotations of their own: this is the one place the HTTP API is described.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers

from chat.core.serializers import (
    PASSWORD_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    EmojiParamSerializer,
    InboxEntrySerializer,
    MarkReadParamsSerializer,
    MemberSerializer,
    MessageHistoryParamsSerializer,
    MessageSearchQuerySerializer,
    MessageSerializer,
    PageParamsSerializer,
    ReadStateSerializer,
    RoleParamSerializer,
    RoomListParamsSerializer,
    RoomSerializer,
    UserIdParamSerializer,
    UserSearchParamsSerializer,
    UserSerializer,
)
from chat.models import CLIENT_ID_MAX_LENGTH, MESSAGE_MAX_LENGTH, ROOM_NAME_MAX_LENGTH

# --- error bodies (DRF's usual JSON) ----------------------------------------------------------
DETAIL = inline_serializer("ErrorDetail", {"detail": serializers.CharField()})
# A 400 is either a parse error ({"detail"}) or field errors ({"<field>": ["<message>", ...]}).
VALIDATION_ERROR: dict[str, Any] = {
    "description": "Invalid body or parameters: `detail`, or each invalid field with its messages.",
    "type": "object",
    "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "example": {"name": ["A room with this name already exists."]},
}


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    """The documented error responses among 400/401/403/404/429."""
    known = {
        400: OpenApiResponse(VALIDATION_ERROR, description="Invalid body or parameters."),
        401: OpenApiResponse(DETAIL, description="No valid credentials (`Authorization: Token <key>` or a session)."),
        403: OpenApiResponse(
            DETAIL, description="Authenticated but not allowed (not owner, moderator, member or author; banned; a direct room)."
        ),
        404: OpenApiResponse(DETAIL, description="No such room or message, or a private/direct room you are not a member of."),
        429: OpenApiResponse(
            DETAIL,
            description="Over a rate limit (messages and edits per user, rooms per user, sign-ups and tokens per "
            "address); nothing stored. The `Retry-After` header gives the seconds to wait.",
        ),
    }
    return {code: known[code] for code in codes}


# --- bodies ---------------------------------------------------------------------------------
# Request components get a "Request" suffix (COMPONENT_SPLIT_REQUEST), and PATCH ones a "Patched" prefix.
# Limits come from chat.models / chat.core.serializers, never retyped (tests/unit/test_single_sources.py).
ROOM_NAME = inline_serializer("RoomName", {"name": serializers.CharField(min_length=1, max_length=ROOM_NAME_MAX_LENGTH)})
# A raw schema, not a serializer: drf-spectacular would make `text` optional on PATCH, but the server requires it.
MESSAGE_TEXT: dict[str, Any] = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string", "minLength": 1, "maxLength": MESSAGE_MAX_LENGTH}},
}
MESSAGE_POST = inline_serializer(
    "MessageCreate",
    {
        "text": serializers.CharField(min_length=1, max_length=MESSAGE_MAX_LENGTH),
        "client_id": serializers.CharField(
            min_length=1,
            max_length=CLIENT_ID_MAX_LENGTH,
            required=False,
            allow_null=True,
            help_text="Idempotency key: a repeat returns the first message (200) and stores nothing.",
        ),
        "reply_to": serializers.IntegerField(
            min_value=1,
            required=False,
            allow_null=True,
            help_text="(v2) Reply to this message of the same room (else 400 naming `reply_to`).",
        ),
    },
)
ROOM_CREATE = inline_serializer(
    "RoomCreate",
    {
        "name": serializers.CharField(min_length=1, max_length=ROOM_NAME_MAX_LENGTH),
        "kind": serializers.ChoiceField(
            choices=["public", "private"], required=False, help_text="public (default) or private; cannot be changed later."
        ),
    },
)
MEMBER_PAGE = inline_serializer(
    "MemberPage",
    {"results": MemberSerializer(many=True, help_text="Owner, moderators, then by joined_at."), "count": serializers.IntegerField()},
)
INBOX_PAGE = inline_serializer(
    "InboxPage",
    {"results": InboxEntrySerializer(many=True, help_text="Newest message first."), "count": serializers.IntegerField()},
)
USER_ID_PATH = OpenApiParameter("user_id", int, OpenApiParameter.PATH, description="The user's id.")
ROOM_PAGE = inline_serializer("RoomPage", {"results": RoomSerializer(many=True), "count": serializers.IntegerField(min_value=0)})
MESSAGE_PAGE = inline_serializer(
    "MessagePage",
    {"results": MessageSerializer(many=True, help_text="Ascending by seq."), "has_more": serializers.BooleanField()},
)
CREDENTIALS = inline_serializer(
    "Credentials",
    {
        "username": serializers.CharField(max_length=USERNAME_MAX_LENGTH),
        "password": serializers.CharField(max_length=PASSWORD_MAX_LENGTH),
    },
)
TOKEN = inline_serializer("Token", {"token": serializers.CharField()})
SEARCH_PAGE = inline_serializer(
    "SearchPage",
    {"results": MessageSerializer(many=True, help_text="Newest first."), "has_more": serializers.BooleanField()},
)
USER_PAGE = inline_serializer("UserPage", {"results": UserSerializer(many=True), "count": serializers.IntegerField(min_value=0)})


class RegisterViewSchema(OpenApiViewExtension):
    """POST /api/auth/register/: 201 User."""

    target_class = "chat.http.views.RegisterView"

    def view_replacement(self) -> Any:
        class Fixed(self.target):  # type: ignore[name-defined]
            @extend_schema(
                summary="Create an account",
                request=CREDENTIALS,
                responses={201: UserSerializer, **_errors(400, 429)},
                auth=[],
            )
            def post(self, request: Any, *args: Any, **kwargs: Any) -> Any:
                return super().post(request, *args, **kwargs)

        return Fixed


class ObtainTokenSchema(OpenApiViewExtension):
    """POST /api/auth/token/: the user's API token."""

    target_class = "chat.http.views.TokenView"
    priority = 1  # over drf-spectacular's own extension for this view

    def view_replacement(self) -> Any:
        class Fixed(self.target):  # type: ignore[name-defined]
            @extend_schema(
                summary="Get your API token",
                description="Send it as `Authorization: Token <key>` over HTTP, and on the WebSocket handshake "
                "(header, or `?token=<key>`).",
                request=CREDENTIALS,
                responses={200: TOKEN, **_errors(400, 429)},
                auth=[],
                tags=["auth"],
            )
            def post(self, request: Any, *args: Any, **kwargs: Any) -> Any:
                return super().post(request, *args, **kwargs)

        return Fixed


class MeViewSchema(OpenApiViewExtension):
    """GET /api/users/me/."""

    target_class = "chat.http.views.MeView"

    def view_replacement(self) -> Any:
        return extend_schema_view(get=extend_schema(summary="The authenticated user", responses={200: UserSerializer, **_errors(401)}))(
            self.target
        )


class RoomViewSetSchema(OpenApiViewExtension):
    """/api/rooms/ and its detail, join, leave and messages routes."""

    target_class = "chat.http.views.RoomViewSet"

    def view_replacement(self) -> Any:
        return extend_schema_view(
            list=extend_schema(
                summary="List rooms (exact name filter, pages)",
                parameters=[RoomListParamsSerializer],
                responses={200: ROOM_PAGE, **_errors(400, 401)},
            ),
            create=extend_schema(
                summary="Create a public or private room (you are its owner and first member)",
                request=ROOM_CREATE,
                responses={201: RoomSerializer, **_errors(400, 401, 429)},
            ),
            retrieve=extend_schema(summary="One room", responses={200: RoomSerializer, **_errors(400, 401, 404)}),
            partial_update=extend_schema(
                summary="Rename a room (host only)",
                request=ROOM_NAME,
                responses={200: RoomSerializer, **_errors(400, 401, 403, 404)},
            ),
            destroy=extend_schema(
                summary="Delete a room and its messages (host only)",
                responses={204: OpenApiResponse(description="Deleted."), **_errors(400, 401, 403, 404)},
            ),
            join=extend_schema(
                summary="Become a member (membership only, no presence)",
                request=None,
                responses={200: RoomSerializer, **_errors(400, 401, 403, 404)},
            ),
            leave=extend_schema(
                summary="End your membership",
                request=None,
                responses={204: OpenApiResponse(description="Left."), **_errors(400, 401, 403, 404)},
            ),
            messages=[
                extend_schema(
                    methods=["GET"],
                    summary="A page of the room's history, ascending by seq",
                    parameters=[MessageHistoryParamsSerializer],
                    description="With `after_seq`: the first `limit` messages after it. With `before_seq`, or neither: "
                    "the last `limit` before it. Not both.",
                    responses={200: MESSAGE_PAGE, **_errors(400, 401, 404)},
                ),
                extend_schema(
                    methods=["POST"],
                    summary="Post a message (members only)",
                    description="201 when stored; 200 with the first message when `client_id` repeats one you already "
                    "used in this room. WebSocket subscribers get a `create` event. Rate limited per user.",
                    request=MESSAGE_POST,
                    responses={
                        201: MessageSerializer,
                        200: OpenApiResponse(MessageSerializer, description="A repeated client_id: the message stored the first time."),
                        **_errors(400, 401, 403, 404, 429),
                    },
                    examples=[OpenApiExample("message", value={"text": "hello", "client_id": "6f1c2a"}, request_only=True)],
                ),
            ],
            direct=extend_schema(
                summary="Open the direct room with a user (§5 open_direct)",
                description="One direct room per pair of users (a user may open one with themselves): 201 when created, "
                "200 when it existed. An unknown or inactive `user_id` is 400 naming the field.",
                request=UserIdParamSerializer,
                responses={201: RoomSerializer, 200: RoomSerializer, **_errors(400, 401)},
            ),
            members=[
                extend_schema(
                    methods=["GET"],
                    summary="A page of the room's members (§5 list_members)",
                    parameters=[PageParamsSerializer],
                    responses={200: MEMBER_PAGE, **_errors(400, 401, 404)},
                ),
                extend_schema(
                    methods=["POST"],
                    summary="Add a member (owner or moderator; §5 add_member)",
                    description="201 when added, 200 when already a member. Banned users and direct rooms: 403.",
                    request=UserIdParamSerializer,
                    responses={201: MemberSerializer, 200: MemberSerializer, **_errors(400, 401, 403, 404)},
                ),
            ],
            member=[
                extend_schema(
                    methods=["PATCH"],
                    summary="Make a member a moderator or a plain member (owner only; §5 set_role)",
                    parameters=[USER_ID_PATH],
                    request=RoleParamSerializer,
                    responses={200: MemberSerializer, **_errors(400, 401, 403, 404)},
                ),
                extend_schema(
                    methods=["DELETE"],
                    summary="Remove a member (owner; moderators remove plain members; §5 remove_member)",
                    parameters=[USER_ID_PATH],
                    responses={204: OpenApiResponse(description="Removed."), **_errors(400, 401, 403, 404)},
                ),
            ],
            ban=[
                extend_schema(
                    methods=["POST"],
                    summary="Ban a user (as remove; §5 ban_member)",
                    parameters=[USER_ID_PATH],
                    request=None,
                    responses={204: OpenApiResponse(description="Banned."), **_errors(400, 401, 403, 404)},
                ),
                extend_schema(
                    methods=["DELETE"],
                    summary="Lift a ban (§5 unban_member)",
                    parameters=[USER_ID_PATH],
                    responses={200: OpenApiResponse(description="Not banned (any more)."), **_errors(400, 401, 403, 404)},
                ),
            ],
            read=extend_schema(
                summary="Mark the room read up to a seq (members; §6 mark_read); it never moves back",
                request=MarkReadParamsSerializer,
                responses={200: ReadStateSerializer, **_errors(400, 401, 403, 404)},
            ),
        )(self.target)


class MyRoomsViewSchema(OpenApiViewExtension):
    """GET /api/users/me/rooms/: the inbox."""

    target_class = "chat.http.views.MyRoomsView"

    def view_replacement(self) -> Any:
        return extend_schema_view(
            get=extend_schema(
                summary="Your rooms with role and read state, newest message first (§6 list_my_rooms)",
                parameters=[PageParamsSerializer],
                responses={200: INBOX_PAGE, **_errors(400, 401)},
            )
        )(self.target)


class MessageViewSetSchema(OpenApiViewExtension):
    """/api/messages/{id}/: edit or delete one message."""

    target_class = "chat.http.views.MessageViewSet"

    def view_replacement(self) -> Any:
        return extend_schema_view(
            partial_update=extend_schema(
                summary="Edit a message's text (author only)",
                request={"application/json": MESSAGE_TEXT},
                responses={200: MessageSerializer, **_errors(400, 401, 403, 404, 429)},
            ),
            destroy=extend_schema(
                summary="Delete a message (author, the room's owner or a moderator)",
                responses={204: OpenApiResponse(description="Deleted."), **_errors(400, 401, 403, 404)},
            ),
            reactions=[
                extend_schema(
                    methods=["POST"],
                    summary="React to a message (members of its room; v2 add_reaction)",
                    description="201 with the message when the reaction is new; 200 when you already had it (nothing "
                    "changes). WebSocket stream subscribers get the message's `update` event; `edited_at` is unchanged. "
                    "Shares the per-user message rate limit.",
                    request=EmojiParamSerializer,
                    responses={
                        201: MessageSerializer,
                        200: OpenApiResponse(MessageSerializer, description="You already had this reaction."),
                        **_errors(400, 401, 403, 404, 429),
                    },
                ),
                extend_schema(
                    methods=["DELETE"],
                    summary="Take back a reaction (v2 remove_reaction)",
                    description="The emoji in the body, or as the `emoji` query parameter. 404 if you had no such reaction.",
                    request=EmojiParamSerializer,
                    parameters=[
                        OpenApiParameter("emoji", str, required=False, description="The emoji, when the client cannot send a DELETE body.")
                    ],
                    responses={200: MessageSerializer, **_errors(400, 401, 403, 404, 429)},
                ),
            ],
            search=extend_schema(
                summary="Search the messages you can see (v2 search_messages)",
                description="Every word of `q` must appear, in any order, ignoring case (and accents on PostgreSQL); "
                "newest first. `room` limits it to one room (404 if you cannot see it); continue with `before_id` = "
                "the last result's id while `has_more`.",
                parameters=[MessageSearchQuerySerializer],
                responses={200: SEARCH_PAGE, **_errors(400, 401, 404)},
            ),
        )(self.target)


class LogoutViewSchema(OpenApiViewExtension):
    """POST /api/auth/logout/."""

    target_class = "chat.http.views.LogoutView"

    def view_replacement(self) -> Any:
        return extend_schema_view(
            post=extend_schema(
                summary="Log out: revoke the API token of this request",
                description="The token stops working over HTTP, and every WebSocket connection opened with it is "
                "closed with code 4401. With a browser session instead of a token, the session ends.",
                request=None,
                responses={204: OpenApiResponse(description="Revoked."), **_errors(401)},
                tags=["auth"],
            )
        )(self.target)


class UserListViewSchema(OpenApiViewExtension):
    """GET /api/users/."""

    target_class = "chat.http.views.UserListView"

    def view_replacement(self) -> Any:
        return extend_schema_view(
            get=extend_schema(
                summary="Find users by username prefix (any case), to open a direct room with",
                parameters=[UserSearchParamsSerializer],
                responses={200: USER_PAGE, **_errors(400, 401)},
            )
        )(self.target)


# Response objects that must not grow fields silently (api_docs/PROTOCOL.md §1: "Nothing else").
STRICT_COMPONENTS = (
    "User",
    "Room",
    "Message",
    "RoomPage",
    "MessagePage",
    "Token",
    "ErrorDetail",
    "Member",
    "MemberPage",
    "InboxEntry",
    "InboxPage",
    "ReadState",
    "SearchPage",
    "UserPage",
    "Reaction",
)


# drf-spectacular always wraps a `list` action's body in an array; ours answers one page object.
PAGE_OPERATIONS = (("/api/rooms/", "get"),)


UNAVAILABLE: dict[str, Any] = {
    "description": 'The database or Redis is unavailable: `{"detail"}`; retry after the `Retry-After` header\'s seconds.',
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
    "content": {"application/json": {"schema": {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}}},
}


def finish_schema(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Postprocessing hook: unwrap page bodies, forbid undocumented fields so schema checks catch drift, and lint fixes."""
    for path, method in PAGE_OPERATIONS:
        content = result["paths"][path][method]["responses"]["200"]["content"]["application/json"]
        if content["schema"].get("type") == "array":
            content["schema"] = content["schema"]["items"]
    for operations in result["paths"].values():
        for operation in operations.values():
            # Any endpoint that reaches PostgreSQL or Redis (api_docs/PROTOCOL.md §3 v2).
            operation.setdefault("responses", {}).setdefault("503", UNAVAILABLE)
            # drf-spectacular leaves `security` out for views that authenticate no one (register,
            # token); say "public" explicitly, as OpenAPI linters ask.
            operation.setdefault("security", [])
    schemas = result.get("components", {}).get("schemas", {})
    for name in STRICT_COMPONENTS:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    for schema in schemas.values():
        for field in schema.get("properties", {}).values():
            if field.get("nullable") and "allOf" in field and "type" not in field:
                # OpenAPI 3.0's `nullable` only applies beside a `type` (e.g. Room.last_message).
                field["type"] = "object"
    if "Message" in schemas and "client_id" not in schemas["Message"]["required"]:
        # Always present in a Message (null when the client gave none); optional only on input.
        schemas["Message"]["required"] = sorted([*schemas["Message"]["required"], "client_id"])
    return result
