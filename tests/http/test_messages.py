"""Messages over HTTP: post, safe retries, history slices, edit, delete, flood limits."""

import datetime
from typing import TYPE_CHECKING

import pytest
from django.test import override_settings
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from chat.core import services
from chat.models import Message, Room, User

if TYPE_CHECKING:
    from rest_framework.response import _MonkeyPatchedResponse  # django-rest-framework stubs' test-client response

pytestmark = pytest.mark.django_db

MESSAGE_KEYS = {"id", "room", "seq", "user", "text", "client_id", "created_at", "created_at_formatted", "edited_at"} | {
    "reply_to",
    "reactions",
}


def post(client: APIClient, room: Room, **body: object) -> "_MonkeyPatchedResponse":
    return client.post(f"/api/rooms/{room.pk}/messages/", body, format="json")


def test_post_message_returns_contract_shape(api: APIClient, room: Room, user: User) -> None:
    response = post(api, room, text="  hello  ")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == MESSAGE_KEYS
    assert body["text"] == "hello"
    assert body["room"] == room.pk
    assert body["seq"] == 1
    assert body["user"] == {"id": user.pk, "username": user.username}
    assert body["client_id"] is None
    assert body["edited_at"] is None
    assert body["created_at"].endswith("Z")
    created = datetime.datetime.fromisoformat(body["created_at"])
    assert body["created_at_formatted"] == created.strftime("%d-%m-%Y %H:%M:%S")


def test_seq_counts_up_per_room_and_deletion_leaves_a_hole(api: APIClient, room: Room, user: User) -> None:
    other_room = Room.objects.create(name="other", host=user)
    other_room.members.add(user)
    seqs = [post(api, room, text=str(i)).json()["seq"] for i in range(3)]
    assert seqs == [1, 2, 3]
    assert post(api, other_room, text="x").json()["seq"] == 1
    middle = Message.objects.get(room=room, seq=2)
    assert api.delete(f"/api/messages/{middle.pk}/").status_code == 204
    assert post(api, room, text="after").json()["seq"] == 4
    history = api.get(f"/api/rooms/{room.pk}/messages/").json()
    assert [m["seq"] for m in history["results"]] == [1, 3, 4]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": ""},
        {"text": " \n\t "},
        {"text": "x" * 501},
        {"text": 12},
        {"text": None},
        {"text": ["a"]},
        {"text": "nul\x00byte"},
        {"text": "ok", "client_id": ""},
        {"text": "ok", "client_id": "c" * 65},
        {"text": "ok", "client_id": 3},
    ],
)
def test_bad_messages_are_400_and_store_nothing(api: APIClient, room: Room, body: dict) -> None:
    response = post(api, room, **body)
    assert response.status_code == 400
    assert set(response.json()) & {"text", "client_id"}
    assert not Message.objects.exists()


def test_lone_surrogate_is_400_not_500(api: APIClient, room: Room) -> None:
    response = api.post(f"/api/rooms/{room.pk}/messages/", '{"text": "\\ud800"}', content_type="application/json")
    assert response.status_code == 400
    assert "text" in response.json()


def test_500_characters_after_trimming_are_accepted(api: APIClient, room: Room) -> None:
    response = post(api, room, text="  " + "é" * 500 + "  ")
    assert response.status_code == 201
    assert len(response.json()["text"]) == 500


def test_posting_needs_membership_and_an_existing_room(other_api: APIClient, room: Room) -> None:
    assert post(other_api, room, text="hi").status_code == 403
    assert other_api.post("/api/rooms/999999/messages/", {"text": "hi"}, format="json").status_code == 404
    assert not Message.objects.exists()
    other_api.post(f"/api/rooms/{room.pk}/join/")
    assert post(other_api, room, text="hi").status_code == 201


def test_repeated_client_id_returns_first_message_and_stores_nothing(api: APIClient, room: Room) -> None:
    first = post(api, room, text="once", client_id="abc")
    assert first.status_code == 201
    again = post(api, room, text="once, resent", client_id="abc")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Message.objects.count() == 1


def test_client_id_is_per_user_and_per_room(api: APIClient, other_api: APIClient, room: Room, user: User) -> None:
    other_api.post(f"/api/rooms/{room.pk}/join/")
    second_room = Room.objects.create(name="second", host=user)
    second_room.members.add(user)
    assert post(api, room, text="a", client_id="same").status_code == 201
    assert post(other_api, room, text="b", client_id="same").status_code == 201
    assert post(api, second_room, text="c", client_id="same").status_code == 201
    assert Message.objects.count() == 3


def test_history_slices(api: APIClient, room: Room, user: User) -> None:
    for i in range(1, 11):
        services.message_store(room_id=room.pk, author=user, text=f"m{i}")
    url = f"/api/rooms/{room.pk}/messages/"

    def seqs(params: dict) -> tuple[list[int], bool]:
        body = api.get(url, params).json()
        return [m["seq"] for m in body["results"]], body["has_more"]

    assert seqs({}) == (list(range(1, 11)), False)
    assert seqs({"limit": 3}) == ([8, 9, 10], True)
    assert seqs({"before_seq": 8, "limit": 3}) == ([5, 6, 7], True)
    assert seqs({"before_seq": 3, "limit": 3}) == ([1, 2], False)
    assert seqs({"after_seq": 0, "limit": 4}) == ([1, 2, 3, 4], True)
    assert seqs({"after_seq": 7, "limit": 3}) == ([8, 9, 10], False)
    assert seqs({"after_seq": 10}) == ([], False)


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 201}, {"limit": "x"}, {"after_seq": -1}, {"before_seq": 0}, {"after_seq": 1, "before_seq": 5}],
)
def test_history_rejects_bad_parameters(api: APIClient, room: Room, params: dict) -> None:
    response = api.get(f"/api/rooms/{room.pk}/messages/", params)
    assert response.status_code == 400
    assert set(response.json()) & {"limit", "after_seq", "before_seq"}


def test_history_of_missing_room_is_404(api: APIClient) -> None:
    assert api.get("/api/rooms/999999/messages/").status_code == 404


def test_history_query_count_is_constant(
    api: APIClient, room: Room, user: User, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    for i in range(30):
        services.message_store(room_id=room.pk, author=user, text=f"m{i}")
    with django_assert_max_num_queries(4):  # token, room exists, messages with authors, their reactions
        assert len(api.get(f"/api/rooms/{room.pk}/messages/").json()["results"]) == 30


def test_edit_by_author_sets_edited_at(api: APIClient, other_api: APIClient, room: Room, user: User) -> None:
    message, _ = services.message_store(room_id=room.pk, author=user, text="tpyo")
    url = f"/api/messages/{message.pk}/"
    assert other_api.patch(url, {"text": "hijack"}, format="json").status_code == 403
    assert api.patch(url, {"text": ""}, format="json").status_code == 400
    assert api.patch(url, {}, format="json").status_code == 400
    response = api.patch(url, {"text": "typo"}, format="json")
    assert response.status_code == 200
    assert response.json()["text"] == "typo"
    assert response.json()["edited_at"] is not None
    assert response.json()["seq"] == 1
    assert api.patch("/api/messages/999999/", {"text": "x"}, format="json").status_code == 404


def test_delete_by_author_or_host_only(api: APIClient, other_api: APIClient, room: Room, user: User, other_user: User) -> None:
    services.room_join(room_id=room.pk, user=other_user)
    third = User.objects.create_user(username="third", password="x")
    services.room_join(room_id=room.pk, user=third)
    by_other, _ = services.message_store(room_id=room.pk, author=other_user, text="mine")
    by_third, _ = services.message_store(room_id=room.pk, author=third, text="theirs")
    assert other_api.delete(f"/api/messages/{by_third.pk}/").status_code == 403
    assert other_api.delete(f"/api/messages/{by_other.pk}/").status_code == 204
    assert api.delete(f"/api/messages/{by_third.pk}/").status_code == 204  # the host moderates
    assert not Message.objects.exists()
    assert api.delete(f"/api/messages/{by_third.pk}/").status_code == 404


@override_settings(CHAT_MESSAGE_RATE_LIMIT=3, CHAT_MESSAGE_RATE_PERIOD=10)
def test_flood_limit_is_429_with_retry_after_and_stores_nothing(api: APIClient, room: Room) -> None:
    for i in range(3):
        assert post(api, room, text=f"m{i}", client_id=f"c{i}").status_code == 201
    response = post(api, room, text="one too many")
    assert response.status_code == 429
    assert "detail" in response.json()
    assert 1 <= int(response["Retry-After"]) <= 10
    assert Message.objects.count() == 3
    # A retry of an already stored message is not a new message: still answered.
    retry = post(api, room, text="m0", client_id="c0")
    assert retry.status_code == 200
    assert retry.json()["seq"] == 1
