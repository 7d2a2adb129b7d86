"""The plain-code paths of the §1 serializers and parameter checks (chat/core/serializers.py) give exactly what DRF's machinery gives."""

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from chat.core import selectors, services
from chat.core.serializers import (
    CLIENT_ID_MAX_LENGTH,
    MESSAGE_MAX_LENGTH,
    MessageParamsSerializer,
    MessageSerializer,
    PkParamSerializer,
    RoomParamSerializer,
    RoomSerializer,
    SubscribeParamsSerializer,
    UserSerializer,
    datetime_json,
    message_data,
    serialize_many,
    validate,
)
from chat.models import Message
from tests.factories import RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


def message(text: str = "hello", client_id: str | None = None) -> Message:
    room = RoomFactory.create()
    stored, _ = services.message_store(room_id=room.pk, author=UserFactory.create(), text=text, client_id=client_id)
    return stored


def drf(serializer: serializers.Serializer, instance: Any) -> dict[str, Any]:
    """What DRF's own field machinery makes of the instance."""
    return dict(serializers.Serializer.to_representation(serializer, instance))


def test_message_room_and_user_match_drf() -> None:
    plain = message()
    edited = message(text="ünïcode ✓", client_id="abc")
    edited.edited_at = timezone.now()
    for instance in (plain, edited):
        assert MessageSerializer(instance).data == drf(MessageSerializer(instance), instance)
        assert UserSerializer(instance.user).data == drf(UserSerializer(instance.user), instance.user)
    for room in (selectors.room_get(pk=plain.room_id), selectors.room_get(pk=RoomFactory.create().pk)):
        fast = RoomSerializer(room).data
        assert fast == drf(RoomSerializer(room), room)
        assert list(fast) == list(RoomSerializer.Meta.fields)
    rooms = [selectors.room_get(pk=plain.room_id)]
    assert serialize_many(RoomSerializer, rooms) == [drf(RoomSerializer(rooms[0]), rooms[0])]
    for instance in (plain, edited, Message.objects.select_related("user").get(pk=plain.pk)):  # as posted, and read back
        assert message_data(instance) == drf(MessageSerializer(instance), instance)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 30, 12, 0, 1, 123456, tzinfo=UTC),
        datetime(2026, 11, 30, 12, 0, 1, tzinfo=UTC),  # no microseconds: none written
        datetime(2026, 11, 30, 12, 0, 1, 5, tzinfo=ZoneInfo("UTC")),  # not the UTC singleton: DRF's own way
        datetime(2026, 11, 30, 13, 0, 1, tzinfo=ZoneInfo("Europe/Paris")),
    ],
)
def test_datetimes_are_written_as_drf_writes_them(value: datetime) -> None:
    assert datetime_json(value) == serializers.DateTimeField().to_representation(value)


@pytest.mark.parametrize(
    ("serializer_class", "data"),
    [
        (PkParamSerializer, {"pk": 5}),
        (PkParamSerializer, {"pk": 5, "other": "x"}),
        (RoomParamSerializer, {"room": 1}),
        (SubscribeParamsSerializer, {"pk": 3}),
        (SubscribeParamsSerializer, {"pk": 3, "after_seq": 0}),
        (SubscribeParamsSerializer, {"pk": 3, "after_seq": 7}),
        (PkParamSerializer, {"pk": 2**63 - 1}),
        (PkParamSerializer, {"pk": "5"}),  # DRF's rules: a numeric string is taken
        (MessageParamsSerializer, {"message": "hi"}),
        (MessageParamsSerializer, {"message": "  hi  ", "room": 4}),  # trimmed, as DRF does
        (MessageParamsSerializer, {"message": "x" * MESSAGE_MAX_LENGTH, "client_id": "c-1", "reply_to": 9}),
        (MessageParamsSerializer, {"message": "hi", "client_id": None, "reply_to": None}),
        (MessageParamsSerializer, {"message": "hi", "client_id": " c ", "reply_to": "9"}),
        (MessageParamsSerializer, {"message": "héllo 😀"}),
        (MessageSerializer, {"text": "  hi  ", "room": 4, "seq": 9}),  # read-only fields ignored, as DRF does
        (MessageSerializer, {"text": "hi", "client_id": "c-1", "reply_to": 9}),
        (MessageSerializer, {"text": "hi", "client_id": None, "reply_to": None}),
    ],
)
def test_valid_parameters_match_drf(serializer_class: type[serializers.Serializer], data: dict[str, Any]) -> None:
    serializer = serializer_class(data=data)
    assert serializer.is_valid()
    assert validate(serializer_class, data) == dict(serializer.validated_data)


@pytest.mark.parametrize(
    ("serializer_class", "data"),
    [
        (PkParamSerializer, {"pk": 0}),
        (PkParamSerializer, {"pk": 2**63}),
        (SubscribeParamsSerializer, {"pk": 3, "after_seq": 2**63}),
        (PkParamSerializer, {"pk": True}),
        (PkParamSerializer, {}),
        (PkParamSerializer, {"pk": None}),
        (RoomParamSerializer, {"room": -1}),
        (SubscribeParamsSerializer, {"pk": 3, "after_seq": -1}),
        (SubscribeParamsSerializer, {"pk": 3, "after_seq": False}),
        (MessageParamsSerializer, {}),
        (MessageParamsSerializer, {"message": "   "}),
        (MessageParamsSerializer, {"message": 5}),
        (MessageParamsSerializer, {"message": "x" * (MESSAGE_MAX_LENGTH + 1)}),
        (MessageParamsSerializer, {"message": "a\x00b"}),
        (MessageParamsSerializer, {"message": "a\ud800b"}),
        (MessageParamsSerializer, {"message": "hi", "client_id": ""}),
        (MessageParamsSerializer, {"message": "hi", "client_id": 7}),
        (MessageParamsSerializer, {"message": "hi", "client_id": "c" * (CLIENT_ID_MAX_LENGTH + 1)}),
        (MessageParamsSerializer, {"message": "hi", "reply_to": 0}),
        (MessageParamsSerializer, {"message": "hi", "reply_to": True}),
        (MessageSerializer, {"message": "hi"}),  # over HTTP the text is `text`
        (MessageSerializer, {"text": "   "}),
        (MessageSerializer, {"text": "hi", "client_id": ""}),
        (MessageSerializer, {"text": "hi", "reply_to": 0}),
    ],
)
def test_invalid_parameters_get_drf_errors(serializer_class: type[serializers.Serializer], data: dict[str, Any]) -> None:
    serializer = serializer_class(data=data)
    assert not serializer.is_valid()
    with pytest.raises(ValidationError) as raised:
        validate(serializer_class, data)
    assert raised.value.detail == serializer.errors


def test_a_changed_field_list_takes_drf_s_way(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = message()
    # As when another branch adds or removes a field: the plain code would not know it.
    monkeypatch.setattr(MessageSerializer.Meta, "fields", [f for f in MessageSerializer.Meta.fields if f != "created_at"])
    monkeypatch.setattr(RoomSerializer.Meta, "fields", [f for f in RoomSerializer.Meta.fields if f != "created_at"])
    assert "created_at" not in MessageSerializer(stored).data
    room = selectors.room_get(pk=stored.room_id)
    data = RoomSerializer(room).data
    assert "created_at" not in data and "created_at" not in data["last_message"]
