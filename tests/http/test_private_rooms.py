"""api_docs/PROTOCOL.md §5-§6 over HTTP (§8's paths): the same rules, statuses and JSON as over WebSocket."""

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from chat.models import Ban, Membership, Role, RoomKind, User
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.private_rooms import add, make_room, post, role_of
from tests.ws.test_private_rooms import MODERATION_CASES

pytestmark = pytest.mark.django_db


def status_of(response: Any, status: int) -> Any:
    assert response.status_code == status, (response.status_code, getattr(response, "data", None))
    return response.json() if response.content else None


def test_create_private_room_and_non_members_get_the_missing_room_404(api: APIClient, other_api: APIClient) -> None:
    room = status_of(api.post("/api/rooms/", {"name": "hq", "kind": "private"}, format="json"), 201)
    assert room["kind"] == "private" and room["member_count"] == 1
    missing = status_of(other_api.get("/api/rooms/999999/"), 404)
    assert status_of(other_api.get(f"/api/rooms/{room['pk']}/"), 404) == missing
    assert status_of(other_api.get("/api/rooms/", {"name": "hq"}), 200) == {"results": [], "count": 0}
    assert status_of(api.get("/api/rooms/", {"name": "hq"}), 200)["count"] == 1
    assert "kind" in status_of(api.patch(f"/api/rooms/{room['pk']}/", {"kind": "public"}, format="json"), 400)
    status_of(api.post("/api/rooms/", {"name": "dm", "kind": "direct"}, format="json"), 400)
    status_of(api.post("/api/rooms/", {"name": "direct:1:2"}, format="json"), 400)


def test_open_direct_over_http(api: APIClient, user: User, other_user: User) -> None:
    room = status_of(api.post("/api/rooms/direct/", {"user_id": other_user.pk}, format="json"), 201)
    assert room["kind"] == "direct" and room["member_count"] == 2
    again = status_of(client_for(other_user).post("/api/rooms/direct/", {"user_id": user.pk}, format="json"), 200)
    assert again["pk"] == room["pk"] and again["name"] == room["name"]
    for bad in [{"user_id": 999999}, {"user_id": "x"}, {}]:
        assert "user_id" in status_of(api.post("/api/rooms/direct/", bad, format="json"), 400)
    pk = room["pk"]
    status_of(api.patch(f"/api/rooms/{pk}/", {"name": "ours"}, format="json"), 403)
    status_of(api.delete(f"/api/rooms/{pk}/"), 403)
    status_of(api.post(f"/api/rooms/{pk}/leave/"), 403)
    third = UserFactory.create()
    status_of(api.post(f"/api/rooms/{pk}/members/", {"user_id": third.pk}, format="json"), 403)
    status_of(api.delete(f"/api/rooms/{pk}/members/{other_user.pk}/"), 403)
    status_of(api.patch(f"/api/rooms/{pk}/members/{other_user.pk}/", {"role": "moderator"}, format="json"), 403)
    status_of(api.post(f"/api/rooms/{pk}/bans/{other_user.pk}/"), 403)
    status_of(api.delete(f"/api/rooms/{pk}/bans/{other_user.pk}/"), 403)
    status_of(client_for(third).post(f"/api/rooms/{pk}/join/"), 404)


def test_members_list_add_and_validation(api: APIClient, user: User) -> None:
    room = make_room(user)
    mod, member, newcomer = UserFactory.create(), UserFactory.create(), UserFactory.create()
    add(room, member)
    add(room, mod, Role.MODERATOR)
    page = status_of(api.get(f"/api/rooms/{room.pk}/members/"), 200)
    assert [(m["user"]["id"], m["role"]) for m in page["results"]] == [(user.pk, "owner"), (mod.pk, "moderator"), (member.pk, "member")]
    assert page["count"] == 3
    status_of(api.get(f"/api/rooms/{room.pk}/members/", {"page_size": 201}), 400)
    added = status_of(api.post(f"/api/rooms/{room.pk}/members/", {"user_id": newcomer.pk}, format="json"), 201)
    assert added["user"]["id"] == newcomer.pk and added["role"] == "member" and set(added) == {"user", "role", "joined_at"}
    status_of(api.post(f"/api/rooms/{room.pk}/members/", {"user_id": newcomer.pk}, format="json"), 200)
    assert "user_id" in status_of(api.post(f"/api/rooms/{room.pk}/members/", {"user_id": 999999}, format="json"), 400)
    assert "user_id" in status_of(api.delete(f"/api/rooms/{room.pk}/members/999999/"), 400)
    assert "user_id" in status_of(api.post(f"/api/rooms/{room.pk}/bans/abc/"), 400)
    assert "role" in status_of(api.patch(f"/api/rooms/{room.pk}/members/{member.pk}/", {"role": "owner"}, format="json"), 400)
    status_of(client_for(member).post(f"/api/rooms/{room.pk}/members/", {"user_id": UserFactory.create().pk}, format="json"), 403)


@pytest.mark.parametrize(("action", "actor", "target", "status"), MODERATION_CASES)
def test_moderation_table_over_http(action: str, actor: str, target: str, status: int) -> None:
    people = {name: UserFactory.create() for name in ["owner", "moderator", "moderator2", "member", "member2"]}
    room = make_room(people["owner"])
    for name in ["moderator", "moderator2"]:
        add(room, people[name], Role.MODERATOR)
    for name in ["member", "member2"]:
        add(room, people[name])
    actor_user = people[actor]
    target_user = actor_user if target == "self" else people[target + "2"] if target == actor and target != "owner" else people[target]
    before = role_of(room, target_user)
    client, path = client_for(actor_user), f"/api/rooms/{room.pk}"
    if action == "remove_member":
        response = client.delete(f"{path}/members/{target_user.pk}/")
    elif action == "ban_member":
        response = client.post(f"{path}/bans/{target_user.pk}/")
    elif action == "unban_member":
        response = client.delete(f"{path}/bans/{target_user.pk}/")
    else:
        new_role = "member" if before == "moderator" else "moderator"
        response = client.patch(f"{path}/members/{target_user.pk}/", {"role": new_role}, format="json")
    status_of(response, status)
    if status >= 400:
        assert role_of(room, target_user) == before and not Ban.objects.filter(room=room, user=target_user).exists()


def test_ban_refuses_join_add_and_posting_then_unban(api: APIClient, user: User, other_user: User, other_api: APIClient) -> None:
    room = make_room(user, RoomKind.PUBLIC)
    status_of(other_api.post(f"/api/rooms/{room.pk}/join/"), 200)
    status_of(api.post(f"/api/rooms/{room.pk}/bans/{other_user.pk}/"), 204)
    assert not Membership.objects.filter(room=room, user=other_user).exists()
    assert status_of(other_api.post(f"/api/rooms/{room.pk}/join/"), 403)["detail"]
    status_of(other_api.post(f"/api/rooms/{room.pk}/messages/", {"text": "hi"}, format="json"), 403)
    status_of(api.post(f"/api/rooms/{room.pk}/members/", {"user_id": other_user.pk}, format="json"), 403)
    status_of(api.delete(f"/api/rooms/{room.pk}/bans/{other_user.pk}/"), 200)
    status_of(other_api.post(f"/api/rooms/{room.pk}/join/"), 200)
    status_of(other_api.post(f"/api/rooms/{room.pk}/messages/", {"text": "hi"}, format="json"), 201)


def test_owner_cannot_leave_moderator_deletes_any_message(api: APIClient, user: User, other_user: User, other_api: APIClient) -> None:
    room = make_room(user)
    add(room, other_user, Role.MODERATOR)
    status_of(api.post(f"/api/rooms/{room.pk}/leave/"), 403)
    assert role_of(room, user) == Role.OWNER
    message = post(room, user, "owner's")
    status_of(other_api.delete(f"/api/messages/{message.pk}/"), 204)
    status_of(other_api.patch(f"/api/rooms/{room.pk}/", {"name": "x"}, format="json"), 403)
    status_of(other_api.delete(f"/api/rooms/{room.pk}/"), 403)
    status_of(other_api.post(f"/api/rooms/{room.pk}/leave/"), 204)
    status_of(other_api.get(f"/api/rooms/{room.pk}/"), 404)


def test_read_state_and_inbox_over_http(api: APIClient, user: User, other_user: User, other_api: APIClient) -> None:
    room = make_room(user, RoomKind.PUBLIC)
    for text in ["a", "b"]:
        post(room, user, text)
    status_of(other_api.post(f"/api/rooms/{room.pk}/join/"), 200)
    entry = status_of(other_api.get("/api/users/me/rooms/"), 200)["results"][0]
    assert (entry["room"]["pk"], entry["role"], entry["last_read_seq"], entry["unread_count"]) == (room.pk, "member", 2, 0)
    for text in ["c", "d", "e"]:
        status_of(api.post(f"/api/rooms/{room.pk}/messages/", {"text": text}, format="json"), 201)
    assert status_of(other_api.get("/api/users/me/rooms/"), 200)["results"][0]["unread_count"] == 3
    assert status_of(other_api.post(f"/api/rooms/{room.pk}/read/", {"seq": 4}, format="json"), 200) == {
        "last_read_seq": 4,
        "unread_count": 1,
    }
    assert status_of(other_api.post(f"/api/rooms/{room.pk}/read/", {"seq": 1}, format="json"), 200)["last_read_seq"] == 4
    assert status_of(other_api.post(f"/api/rooms/{room.pk}/read/", {"seq": 99}, format="json"), 200) == {
        "last_read_seq": 5,
        "unread_count": 0,
    }
    assert "seq" in status_of(other_api.post(f"/api/rooms/{room.pk}/read/", {"seq": -1}, format="json"), 400)
    assert status_of(api.get("/api/users/me/rooms/"), 200)["results"][0]["last_read_seq"] == 5
    status_of(client_for(UserFactory.create()).post(f"/api/rooms/{room.pk}/read/", {"seq": 1}, format="json"), 403)
    status_of(api.get("/api/users/me/rooms/", {"page_size": 201}), 400)


def test_list_my_rooms_costs_the_same_queries_for_10_or_200_rooms() -> None:
    me, other = UserFactory.create(), UserFactory.create()
    api = client_for(me)
    api.get("/api/users/me/")  # the token is fetched once here, not counted below
    counts = {}
    for total in [10, 200]:
        while Membership.objects.filter(user=me).count() < total:
            i = Membership.objects.filter(user=me).count()
            room = make_room(other, RoomKind.PRIVATE if i % 2 else RoomKind.PUBLIC)
            add(room, me)
            post(room, other, f"hello {i}")
        with CaptureQueriesContext(connection) as queries:
            page = status_of(api.get("/api/users/me/rooms/", {"page_size": 200}), 200)
        assert page["count"] == total and len(page["results"]) == total
        assert all(entry["unread_count"] == 1 for entry in page["results"])
        counts[total] = len(queries)
    # token auth, count, page (with unread counts), presence, newest messages: none per room
    assert counts[10] == counts[200] <= 6, counts  # 6: the newest messages' reactions (§7) in one more query


def test_http_inbox_order_unread_exact_and_own_posts_read(api: APIClient, user: User, other_user: User, other_api: APIClient) -> None:
    rooms = [make_room(user, RoomKind.PRIVATE) for _ in range(3)]
    for room in rooms:
        add(room, other_user)
    older = post(rooms[0], user, "older")
    post(rooms[2], user, "newer")
    page = status_of(other_api.get("/api/users/me/rooms/"), 200)
    assert [entry["room"]["pk"] for entry in page["results"]] == [rooms[2].pk, rooms[0].pk, rooms[1].pk]
    assert [entry["unread_count"] for entry in page["results"]] == [1, 1, 0]
    older.delete()  # deleted messages are not unread
    assert status_of(other_api.get("/api/users/me/rooms/"), 200)["results"][1]["unread_count"] == 0
    post(rooms[1], user, "x")
    status_of(other_api.post(f"/api/rooms/{rooms[1].pk}/messages/", {"text": "mine"}, format="json"), 201)
    entry = status_of(other_api.get("/api/users/me/rooms/"), 200)["results"][0]
    assert (entry["room"]["pk"], entry["last_read_seq"], entry["unread_count"]) == (rooms[1].pk, 2, 0)
    assert status_of(other_api.get("/api/users/me/rooms/", {"page": 2, "page_size": 2}), 200)["count"] == 3
