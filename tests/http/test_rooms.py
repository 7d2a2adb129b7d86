"""Rooms over HTTP: CRUD, filters, pagination, membership and the shape of §1."""

import pytest
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from chat.core import services
from chat.models import Room, User
from tests.conftest import client_for
from tests.factories import RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

ROOM_KEYS = {"pk", "name", "host", "current_users", "last_message", "created_at", "kind", "member_count"}  # v2 adds kind, member_count
USER_KEYS = {"id", "username"}


def test_create_room_makes_caller_host_and_member(api: APIClient, user: User) -> None:
    response = api.post("/api/rooms/", {"name": "  general  "}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == ROOM_KEYS
    assert body["name"] == "general"
    assert body["host"] == {"id": user.pk, "username": user.username}
    assert body["current_users"] == []
    assert body["last_message"] is None
    assert Room.objects.get(pk=body["pk"]).members.filter(pk=user.pk).exists()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "required"),
        ({"name": ""}, "blank"),
        ({"name": "   "}, "blank"),
        ({"name": "x" * 256}, "255"),
        ({"name": 7}, "string"),
        ({"name": None}, "null"),
    ],
)
def test_create_room_rejects_bad_names(api: APIClient, body: dict, reason: str) -> None:
    response = api.post("/api/rooms/", body, format="json")
    assert response.status_code == 400
    assert "name" in response.json()
    assert not Room.objects.exists()


def test_create_room_accepts_255_characters(api: APIClient) -> None:
    assert api.post("/api/rooms/", {"name": "x" * 255}, format="json").status_code == 201


def test_room_names_are_unique(api: APIClient, room: Room) -> None:
    response = api.post("/api/rooms/", {"name": room.name}, format="json")
    assert response.status_code == 400
    assert response.json() == {"name": ["A room with this name already exists."]}
    assert Room.objects.count() == 1


def test_malformed_json_is_400(api: APIClient) -> None:
    response = api.post("/api/rooms/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert not Room.objects.exists()


def test_list_filters_by_exact_name_and_paginates(api: APIClient, user: User) -> None:
    for i in range(5):
        RoomFactory.create(name=f"r{i}", host=user)
    page = api.get("/api/rooms/", {"page_size": 2, "page": 2}).json()
    assert page["count"] == 5
    assert [room["name"] for room in page["results"]] == ["r2", "r3"]
    assert api.get("/api/rooms/", {"name": "r4"}).json()["count"] == 1
    assert api.get("/api/rooms/", {"name": "r"}).json() == {"results": [], "count": 0}
    assert api.get("/api/rooms/", {"page": 9}).json() == {"results": [], "count": 5}


@pytest.mark.parametrize("params", [{"page": 0}, {"page": "x"}, {"page_size": 0}, {"page_size": 201}])
def test_list_rejects_bad_paging(api: APIClient, params: dict) -> None:
    response = api.get("/api/rooms/", params)
    assert response.status_code == 400
    assert set(response.json()) == set(params)


def test_list_query_count_does_not_grow_with_rooms(
    api: APIClient, user: User, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    for i in range(20):
        room = RoomFactory.create(host=user)
        services.message_store(room_id=room.pk, author=user, text=f"hello {i}")
    # auth token, count, rooms with newest-message ids, presence, newest messages, their reactions
    with django_assert_max_num_queries(6):
        body = api.get("/api/rooms/").json()
    assert body["count"] == 20
    assert all(room["last_message"]["text"].startswith("hello") for room in body["results"])


def test_room_never_nests_history(api: APIClient, room: Room, user: User) -> None:
    for text in ["one", "two", "three"]:
        services.message_store(room_id=room.pk, author=user, text=text)
    body = api.get(f"/api/rooms/{room.pk}/").json()
    assert set(body) == ROOM_KEYS
    assert body["last_message"]["text"] == "three"
    assert body["last_message"]["seq"] == 3


def test_retrieve_missing_room_is_404(api: APIClient) -> None:
    assert api.get("/api/rooms/999999/").status_code == 404
    assert api.get("/api/rooms/abc/").status_code in (400, 404)


def test_only_host_renames(api: APIClient, other_api: APIClient, room: Room) -> None:
    assert other_api.patch(f"/api/rooms/{room.pk}/", {"name": "mine"}, format="json").status_code == 403
    response = api.patch(f"/api/rooms/{room.pk}/", {"name": "renamed"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "renamed"
    assert api.patch(f"/api/rooms/{room.pk}/", {"name": ""}, format="json").status_code == 400
    room.refresh_from_db()
    assert room.name == "renamed"


def test_rename_to_taken_name_is_400(api: APIClient, room: Room, user: User) -> None:
    other = RoomFactory.create(host=user)
    response = api.patch(f"/api/rooms/{room.pk}/", {"name": other.name}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()


def test_put_is_not_allowed(api: APIClient, room: Room) -> None:
    assert api.put(f"/api/rooms/{room.pk}/", {"name": "x"}, format="json").status_code == 405


def test_only_host_deletes_and_messages_go_too(api: APIClient, other_api: APIClient, room: Room, user: User) -> None:
    services.message_store(room_id=room.pk, author=user, text="bye")
    assert other_api.delete(f"/api/rooms/{room.pk}/").status_code == 403
    assert api.delete(f"/api/rooms/{room.pk}/").status_code == 204
    assert not Room.objects.exists()
    assert api.get(f"/api/rooms/{room.pk}/messages/").status_code == 404


def test_join_and_leave(other_api: APIClient, other_user: User, room: Room) -> None:
    assert other_api.post(f"/api/rooms/{room.pk}/leave/").status_code == 403
    joined = other_api.post(f"/api/rooms/{room.pk}/join/")
    assert joined.status_code == 200
    assert set(joined.json()) == ROOM_KEYS
    assert other_api.post(f"/api/rooms/{room.pk}/join/").status_code == 200  # idempotent
    assert room.members.filter(pk=other_user.pk).exists()
    assert other_api.post(f"/api/rooms/{room.pk}/leave/").status_code == 204
    assert not room.members.filter(pk=other_user.pk).exists()
    assert other_api.post("/api/rooms/999999/join/").status_code == 404


def test_user_json_never_carries_more_than_id_and_username(api: APIClient, room: Room, user: User) -> None:
    services.message_store(room_id=room.pk, author=user, text="hi")
    user_objects = []

    def collect(value: object) -> None:
        if isinstance(value, dict):
            if "username" in value:
                user_objects.append(value)
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for path in ["/api/users/me/", "/api/rooms/", f"/api/rooms/{room.pk}/", f"/api/rooms/{room.pk}/messages/"]:
        collect(api.get(path).json())
    assert len(user_objects) >= 5
    assert all(set(obj) == USER_KEYS for obj in user_objects)
    assert not any(user.password in str(obj) for obj in user_objects)


def test_many_users_many_rooms_listing_is_consistent() -> None:
    users = [UserFactory.create() for _ in range(3)]
    for index, owner in enumerate(users):
        RoomFactory.create(name=f"owned-{index}", host=owner)
    body = client_for(users[0]).get("/api/rooms/", {"page_size": 200}).json()
    assert [room["host"]["id"] for room in body["results"]] == [u.pk for u in users]
