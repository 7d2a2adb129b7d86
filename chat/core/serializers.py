"""The JSON objects of api_docs/PROTOCOL.md §1, shared by the HTTP API, the WebSocket consumer and the observers."""

import unicodedata
from datetime import UTC, datetime
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings
from rest_framework.validators import UniqueValidator

from chat.core import selectors
from chat.models import (
    CLIENT_ID_MAX_LENGTH,
    EMOJI_MAX_LENGTH,
    MESSAGE_MAX_LENGTH,
    ROOM_NAME_MAX_LENGTH,
    Membership,
    Message,
    Role,
    Room,
    RoomKind,
    User,
)

USERNAME_TAKEN = "A user with that username already exists."
USERNAME_AMBIGUOUS = "This username has letters that read as others when case is ignored (such as ß): spell it without them."
CREATED_AT_FORMAT = "%d-%m-%Y %H:%M:%S"
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
# Ids, seqs and OFFSETs are PostgreSQL bigints: a larger number is a 400, never a DataError.
BIGINT_MAX = 2**63 - 1
# A page becomes an SQL OFFSET, which must fit the database's signed 64-bit integers.
MAX_PAGE = BIGINT_MAX // MAX_PAGE_SIZE
SEARCH_QUERY_MAX_LENGTH = 200
SEARCH_MAX_LIMIT = 100
SEARCH_DEFAULT_LIMIT = 20
USERNAME_MAX_LENGTH: int = User._meta.get_field("username").max_length  # type: ignore[assignment]
# A cap on what the password hasher is given, not a stored length (the hash is stored).
PASSWORD_MAX_LENGTH = 128


def validate(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """Validate request data, query parameters or action parameters; DRF's 400 on errors."""
    fast = _FAST_VALIDATION.get(serializer_class)
    if fast is not None and isinstance(data, dict):
        valid = fast(data)
        if valid is not None:
            return valid
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def serialize_many(serializer_class: type[serializers.BaseSerializer], instances: Any) -> list[dict[str, Any]]:
    """Serialize a sequence of instances to plain dicts (typed: DRF's stubs call `.data` of many=True a dict)."""
    return cast(list[dict[str, Any]], serializer_class(instances, many=True).data)


def _is_id(value: Any, minimum: int = 1) -> bool:
    # bool is not an id, as for DRF's IntegerField; the bounds are the serializers' own.
    return type(value) is int and minimum <= value <= BIGINT_MAX


def _fast_pk(data: dict[str, Any]) -> dict[str, Any] | None:
    return {"pk": data["pk"]} if _is_id(data.get("pk")) else None


def _fast_room(data: dict[str, Any]) -> dict[str, Any] | None:
    return {"room": data["room"]} if _is_id(data.get("room")) else None


def _fast_subscribe(data: dict[str, Any]) -> dict[str, Any] | None:
    if not _is_id(data.get("pk")):
        return None
    if "after_seq" not in data:
        return {"pk": data["pk"]}
    return {"pk": data["pk"], "after_seq": data["after_seq"]} if _is_id(data["after_seq"], 0) else None


def _clean_text(value: Any, max_length: int) -> str | None:
    """A CharField's valid value (trimmed, not blank, short enough, storable), or None to let DRF judge it."""
    if type(value) is not str:
        return None
    text = value.strip()
    if not text or len(text) > max_length or "\x00" in text:
        return None
    try:
        text.encode("utf-8")  # a lone surrogate cannot be stored
    except UnicodeEncodeError:
        return None
    return text


def _fast_message_fields(data: dict[str, Any], text_key: str) -> dict[str, Any] | None:
    """A message's text (under `text_key`), client_id and reply_to, as MessageParamsSerializer and MessageSerializer take them."""
    text = _clean_text(data.get(text_key), MESSAGE_MAX_LENGTH)
    if text is None:
        return None
    valid: dict[str, Any] = {text_key: text}
    for name, check in (("client_id", lambda v: _clean_text(v, CLIENT_ID_MAX_LENGTH)), ("reply_to", _fast_id)):
        if name in data:
            value = data[name]
            if value is not None:
                value = check(value)
                if value is None:
                    return None
            valid[name] = value
    return valid


def _fast_id(value: Any) -> int | None:
    return value if _is_id(value) else None


# The DRF serializer each of these stands for, built and run per frame, costs more than
# the rest of a join: a plain check answers the valid parameters (ints in range), and
# anything else goes through the serializer, so every error stays DRF's own.
_FAST_VALIDATION: dict[type[serializers.Serializer], Any] = {}
_DATETIME = serializers.DateTimeField(read_only=True)
# DRF writes a datetime in the current time zone, which it asks asgiref's Local for on every
# call: half of its cost, for each message of a post or a replay. Nothing here activates a
# time zone, so with UTC the default, an aware datetime in UTC (PostgreSQL's and
# timezone.now()'s) is written as DRF would: ISO 8601, with "Z" for +00:00.
_UTC_OUTPUT = settings.USE_TZ and settings.TIME_ZONE == "UTC" and api_settings.DATETIME_FORMAT == ISO_8601


def datetime_json(value: datetime) -> str:
    """DRF's DateTimeField output for a stored datetime (the time zone lookup skipped when it is UTC already)."""
    if _UTC_OUTPUT and value.tzinfo is UTC:
        return value.isoformat()[:-6] + "Z"
    return _DATETIME.to_representation(value)


class StrictCharField(serializers.CharField):
    """A CharField that takes only JSON strings and only text PostgreSQL can store.

    DRF's CharField turns numbers into strings; a client sending `"text": 5` has a
    bug we should report. Lone surrogates (legal in JSON escapes) cannot be encoded
    as UTF-8 and would fail at the database, so they are rejected here.
    """

    default_error_messages = {
        "invalid": "Not a valid string.",
        "surrogate": "Contains invalid unicode (a lone surrogate).",
    }

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("surrogate")
        return super().to_internal_value(data)


def username_available(value: str) -> str:
    """The NFKC form of a new username, or a ValidationError when it is ambiguous or a twin of a taken one.

    Usernames are compared as `lower(NFKC(name))`, which the database also enforces
    (a unique index); names whose case folding differs from their lower case (ß, ς)
    could otherwise pass for another user's, so they are refused.
    """
    normalized = User.normalize_username(value)
    if unicodedata.normalize("NFKC", normalized.casefold()) != normalized.lower():
        raise serializers.ValidationError(USERNAME_AMBIGUOUS)
    if selectors.username_taken(username=normalized):
        raise serializers.ValidationError(USERNAME_TAKEN)
    return normalized


class UserSerializer(serializers.ModelSerializer):
    """A user as others see it: id and username, nothing else."""

    class Meta:
        model = User
        fields = ["id", "username"]
        read_only_fields = fields

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # Plain code, not DRF's field machinery (which builds the fields per instance of the
        # serializer); tests/unit/test_fast_serializers.py checks both give the same.
        if type(self) is not UserSerializer or self.Meta.fields != _USER_FIELDS:
            return super().to_representation(instance)
        return user_json(instance)


# The fields the plain code below gives: a serializer whose Meta.fields differ (a field
# added on another branch, say) takes DRF's way until the plain code learns the field.
_USER_FIELDS = ["id", "username"]


def user_json(user: Any) -> dict[str, Any]:
    """A §1 User."""
    return {"id": user.pk, "username": user.username}


class RegisterSerializer(serializers.ModelSerializer):
    """Sign-up input: a new username and a password that passes the validators."""

    # Uniqueness ignores case and NFKC differences: validate_username, not a UniqueValidator.
    username = StrictCharField(max_length=USERNAME_MAX_LENGTH)
    password = StrictCharField(write_only=True, trim_whitespace=False, max_length=PASSWORD_MAX_LENGTH)

    class Meta:
        model = User
        fields = ["id", "username", "password"]

    def validate_username(self, value: str) -> str:
        User.username_validator(value)
        return username_available(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            password_validation.validate_password(attrs["password"], User(username=attrs["username"]))
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from exc
        return attrs


class EmojiField(StrictCharField):
    """A reaction's emoji: 1-32 characters, no whitespace or control characters, taken as sent."""

    default_error_messages = {"whitespace": "An emoji may not contain whitespace or control characters."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=EMOJI_MAX_LENGTH, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if any(char.isspace() or unicodedata.category(char) == "Cc" for char in value):
            self.fail("whitespace")
        return value


class ReactionSerializer(serializers.Serializer):
    """One emoji on a message: how many reacted with it, and who (the shape of selectors.reactions_by_message)."""

    emoji = serializers.CharField()
    count = serializers.IntegerField(min_value=1)
    user_ids = serializers.ListField(child=serializers.IntegerField())


class MessageSerializer(serializers.ModelSerializer):
    """A message; also validates `text`, `client_id` and `reply_to` on create and edit."""

    room = serializers.IntegerField(source="room_id", read_only=True)
    user = UserSerializer(read_only=True)
    text = StrictCharField(max_length=MESSAGE_MAX_LENGTH)
    client_id = StrictCharField(max_length=CLIENT_ID_MAX_LENGTH, required=False, allow_null=True)
    created_at_formatted = serializers.SerializerMethodField()
    reply_to = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, required=False, allow_null=True)
    reactions = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "room",
            "seq",
            "user",
            "text",
            "client_id",
            "created_at",
            "created_at_formatted",
            "edited_at",
            "reply_to",
            "reactions",
        ]
        read_only_fields = ["id", "seq", "created_at", "edited_at"]

    def get_created_at_formatted(self, message: Message) -> str:
        return message.created_at.strftime(CREATED_AT_FORMAT)

    @extend_schema_field(ReactionSerializer(many=True))
    def get_reactions(self, message: Message) -> list[dict[str, Any]]:
        return _reactions(message)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # See UserSerializer.to_representation; a subclass or a changed field list takes DRF's way.
        if type(self) is not MessageSerializer or self.Meta.fields != _MESSAGE_FIELDS:
            return super().to_representation(instance)
        return message_json(instance)


def message_data(message: Message) -> dict[str, Any]:
    """MessageSerializer(message).data, without building a serializer while message_json is its twin (every post's event)."""
    if MessageSerializer.Meta.fields != _MESSAGE_FIELDS:
        return dict(MessageSerializer(message).data)
    return message_json(message)


_MESSAGE_FIELDS = [
    "id",
    "room",
    "seq",
    "user",
    "text",
    "client_id",
    "created_at",
    "created_at_formatted",
    "edited_at",
    "reply_to",
    "reactions",
]


def message_json(message: Message) -> dict[str, Any]:
    """A §1 Message, as MessageSerializer gives it."""
    return {
        "id": message.pk,
        "room": message.room_id,
        "seq": message.seq,
        "user": user_json(message.user),
        "text": message.text,
        "client_id": message.client_id,
        "created_at": datetime_json(message.created_at),
        "created_at_formatted": message.created_at.strftime(CREATED_AT_FORMAT),
        "edited_at": None if message.edited_at is None else datetime_json(message.edited_at),
        "reply_to": message.reply_to,
        "reactions": _reactions(message),
    }


def _reactions(message: Message) -> list[dict[str, Any]]:
    # Pages of messages come with their reactions read in one query (selectors.attach_reactions);
    # only a lone message read some other way costs a query here.
    if not hasattr(message, "reaction_summary"):
        selectors.attach_reactions([message])
    return message.reaction_summary


class RoomSerializer(serializers.ModelSerializer):
    """A room with its live presence and newest message (set by chat.core.selectors.room_get / room_list)."""

    name = StrictCharField(
        max_length=ROOM_NAME_MAX_LENGTH,
        validators=[UniqueValidator(Room.objects.all(), message="A room with this name already exists.")],
    )
    host = UserSerializer(read_only=True)
    current_users = serializers.SerializerMethodField()
    last_message = MessageSerializer(read_only=True, allow_null=True)
    # Writable on create only (public or private); direct rooms come from open_direct.
    kind = serializers.ChoiceField(choices=RoomKind.choices, required=False)
    member_count = serializers.SerializerMethodField()

    class Meta:
        model = Room
        fields = ["pk", "name", "host", "current_users", "last_message", "created_at", "kind", "member_count"]
        read_only_fields = ["pk", "created_at"]

    def validate_name(self, value: str) -> str:
        from chat.core.services import DIRECT_NAME_PREFIX

        if value.startswith(DIRECT_NAME_PREFIX):
            raise serializers.ValidationError(f"Names starting with {DIRECT_NAME_PREFIX!r} are reserved for direct rooms.")
        return value

    def validate_kind(self, value: str) -> str:
        if self.instance is not None:
            raise serializers.ValidationError("A room's kind cannot be changed.")
        if value == RoomKind.DIRECT:
            raise serializers.ValidationError("Direct rooms are opened with open_direct (POST /api/rooms/direct/).")
        return value

    @extend_schema_field(serializers.IntegerField())
    def get_member_count(self, room: Room) -> int:
        return getattr(room, "member_count", 0)

    @extend_schema_field(UserSerializer(many=True))
    def get_current_users(self, room: Room) -> list[dict[str, Any]]:
        # Already §1 User dicts (selectors.present_users_by_room): no per-user serialization.
        return room.current_users

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # See UserSerializer.to_representation.
        if type(self) is not RoomSerializer or not _plain_room_fields():
            return super().to_representation(instance)
        return room_json(instance)


_ROOM_FIELDS = ["pk", "name", "host", "current_users", "last_message", "created_at", "kind", "member_count"]


def _plain_room_fields() -> bool:
    return RoomSerializer.Meta.fields == _ROOM_FIELDS and MessageSerializer.Meta.fields == _MESSAGE_FIELDS


def room_json(room: Room) -> dict[str, Any]:
    """A §1 Room, as RoomSerializer gives it (without building a serializer: a join answers one)."""
    if not _plain_room_fields():
        return dict(RoomSerializer(room).data)
    last_message = getattr(room, "last_message", None)  # DRF's allow_null field: None when unset
    return {
        "pk": room.pk,
        "name": room.name,
        "host": user_json(room.host),
        "current_users": room.current_users,
        "last_message": None if last_message is None else message_json(last_message),
        "created_at": datetime_json(room.created_at),
        "kind": room.kind,
        "member_count": getattr(room, "member_count", 0),
    }


class RoomListParamsSerializer(serializers.Serializer):
    """Filters and page of a room list."""

    name = StrictCharField(required=False, trim_whitespace=False)
    page = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, default=1)
    page_size = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)


class MessageHistoryParamsSerializer(serializers.Serializer):
    """Which slice of a room's history to read."""

    after_seq = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX, required=False)
    before_seq = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "after_seq" in attrs and "before_seq" in attrs:
            raise serializers.ValidationError({"before_seq": ["Give after_seq or before_seq, not both."]})
        return attrs


class PkParamSerializer(serializers.Serializer):
    """The `pk` of a room or message named by an action."""

    pk = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)


class MessageParamsSerializer(serializers.Serializer):
    """create_message / update_message parameters over WebSocket, where the text arrives as `message`."""

    message = StrictCharField(max_length=MESSAGE_MAX_LENGTH)
    client_id = StrictCharField(max_length=CLIENT_ID_MAX_LENGTH, required=False, allow_null=True)
    reply_to = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, required=False, allow_null=True)


class EmojiParamSerializer(serializers.Serializer):
    """The `emoji` of add_reaction / remove_reaction (and of the HTTP reactions endpoint)."""

    emoji = EmojiField()


class ReactionParamsSerializer(EmojiParamSerializer):
    """add_reaction / remove_reaction parameters over WebSocket: the message and the emoji."""

    pk = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)


class MessageSearchParamsSerializer(serializers.Serializer):
    """search_messages parameters over WebSocket."""

    query = StrictCharField(max_length=SEARCH_QUERY_MAX_LENGTH)
    pk = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=SEARCH_MAX_LIMIT, default=SEARCH_DEFAULT_LIMIT)
    before_id = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, required=False)


class MessageSearchQuerySerializer(serializers.Serializer):
    """GET /api/messages/search/ query parameters: the same as search_messages, named `q` and `room`."""

    q = StrictCharField(max_length=SEARCH_QUERY_MAX_LENGTH, help_text="1-200 characters: words that must all appear, in any order.")
    room = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, required=False, help_text="Only this room.")
    limit = serializers.IntegerField(min_value=1, max_value=SEARCH_MAX_LIMIT, default=SEARCH_DEFAULT_LIMIT)
    before_id = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, required=False, help_text="Older than this message id.")


class UserSearchParamsSerializer(serializers.Serializer):
    """GET /api/users/ query parameters: a username prefix and the page."""

    search = StrictCharField(
        max_length=USERNAME_MAX_LENGTH, required=False, allow_blank=True, trim_whitespace=False, help_text="Username prefix, any case."
    )
    page = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, default=1)
    page_size = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)


class RoomParamSerializer(serializers.Serializer):
    """The `room` a create_message names (the connection's last joined room when absent)."""

    room = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)


class SubscribeParamsSerializer(PkParamSerializer):
    """subscribe_to_messages_in_room parameters: the room and where to resume."""

    after_seq = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX, required=False)


class MemberSerializer(serializers.ModelSerializer):
    """A room member (§5): the user, their role and when they joined."""

    user = UserSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "role", "joined_at"]
        read_only_fields = fields


class InboxEntrySerializer(serializers.ModelSerializer):
    """One room of the caller's inbox (§6) with their role and read state."""

    room = RoomSerializer(read_only=True)
    unread_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Membership
        fields = ["room", "role", "last_read_seq", "unread_count"]
        read_only_fields = fields


class PageParamsSerializer(serializers.Serializer):
    """A page of a list."""

    page = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, default=1)
    page_size = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)


class UserIdParamSerializer(serializers.Serializer):
    """The `user_id` of an active user named by an action; an unknown one is a 400 naming the field."""

    user_id = serializers.IntegerField(min_value=1)

    def validate_user_id(self, value: int) -> User:
        from chat.core.selectors import user_get_active

        user = user_get_active(pk=value)
        if user is None:
            raise serializers.ValidationError("No such user.")
        return user


class RoleParamSerializer(serializers.Serializer):
    """The role set_role gives: moderator or member (there is one owner, the host)."""

    role = serializers.ChoiceField(choices=[Role.MODERATOR, Role.MEMBER])


class MarkReadParamsSerializer(serializers.Serializer):
    """How far the caller has read a room."""

    seq = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX)


class ReadStateSerializer(serializers.Serializer):
    """The caller's read state of a room after mark_read."""

    last_read_seq = serializers.IntegerField()
    unread_count = serializers.IntegerField()


_FAST_VALIDATION.update(
    {
        PkParamSerializer: _fast_pk,
        RoomParamSerializer: _fast_room,
        SubscribeParamsSerializer: _fast_subscribe,
        MessageParamsSerializer: lambda data: _fast_message_fields(data, "message"),  # over WebSocket
        MessageSerializer: lambda data: _fast_message_fields(data, "text"),  # over HTTP
    }
)
