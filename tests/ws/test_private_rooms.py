"""api_docs/PROTOCOL.md §5 over WebSocket: private and direct rooms, members, roles, moderation, and events that follow access."""

from typing import Any

import pytest

from chat.models import Membership, Role, Room, RoomKind
from tests.db import database_sync_to_async
from tests.private_rooms import (
    add_async,
    is_banned_async,
    make_room_async,
    no_push_of,
    post_async,
    push_of,
    role_of_async,
    user_factory,
)
from tests.ws import connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def assert_status(frame: dict, status: int) -> None:
    assert frame["response_status"] == status, frame
    if status >= 400:
        assert frame["errors"] and frame["data"] is None, frame


async def test_private_room_is_invisible_to_non_members_exactly_like_a_missing_one() -> None:
    owner, outsider = await user_factory(), await user_factory()
    async with connect(owner) as o, connect(outsider) as x:
        created = await o.request("create", data={"name": "secret", "kind": "private"})
        assert_status(created, 201)
        room = created["data"]
        assert room["kind"] == "private" and room["member_count"] == 1 and room["host"]["id"] == owner.pk
        missing = await x.bad_request("retrieve", pk=10**9)
        hidden = await x.bad_request("retrieve", pk=room["pk"])
        assert_status(hidden, 404)
        assert hidden["errors"] == missing["errors"]
        assert (await x.request("list", name="secret"))["data"] == {"results": [], "count": 0}
        assert room["pk"] not in [r["pk"] for r in (await x.request("list", page_size=200))["data"]["results"]]
        assert (await o.request("list", name="secret"))["data"]["count"] == 1
        public = (await o.request("create", data={"name": "open"}))["data"]
        assert public["kind"] == "public"
        assert (await x.request("retrieve", pk=public["pk"]))["data"]["kind"] == "public"


async def test_create_validates_kind() -> None:
    owner = await user_factory()
    async with connect(owner) as o:
        for bad in ["direct", "secret", 3, None]:
            assert_status(await o.bad_request("create", data={"name": "k", "kind": bad}), 400)
        assert_status(await o.bad_request("create", data={"name": "direct:1:2"}), 400)
        pk = (await o.request("create", data={"name": "k", "kind": "private"}))["data"]["pk"]
        response = await o.bad_request("patch", pk=pk, data={"kind": "public"})
        assert_status(response, 400)
        assert "kind" in response["errors"][0]
        assert (await o.request("retrieve", pk=pk))["data"]["kind"] == "private"


async def test_open_direct_one_room_per_pair_and_its_refusals() -> None:
    alice, bob, carol = await user_factory(), await user_factory(), await user_factory()
    async with connect(alice) as a, connect(bob) as b, connect(carol) as c:
        await b.request("subscribe_to_my_rooms", request_id="inbox")
        opened = await a.request("open_direct", user_id=bob.pk)
        assert_status(opened, 201)
        room = opened["data"]
        assert room["kind"] == "direct" and room["member_count"] == 2
        membership = await push_of(b, "membership")
        assert membership["room"] == room["pk"] and membership["data"]["role"] == "member"
        assert membership["data"]["room"]["pk"] == room["pk"]
        again = await a.request("open_direct", user_id=bob.pk)
        assert_status(again, 200)
        assert again["data"]["pk"] == room["pk"] and again["data"]["name"] == room["name"]
        assert (await b.request("open_direct", user_id=alice.pk))["data"]["pk"] == room["pk"]
        assert await role_of_async(await database_sync_to_async(Room.objects.get)(pk=room["pk"]), alice) == Role.MEMBER
        myself = await a.request("open_direct", user_id=alice.pk)
        assert_status(myself, 201)
        assert myself["data"]["member_count"] == 1 and myself["data"]["pk"] != room["pk"]
        bads: list[dict[str, Any]] = [{"user_id": 10**9}, {"user_id": "x"}, {}, {"user_id": True}]
        for bad in bads:
            response = await a.bad_request("open_direct", **bad)
            assert_status(response, 400)
            assert "user_id" in response["errors"][0], response
        # Refusals (403) for members; the room does not exist for anyone else (404).
        pk = room["pk"]
        for action, params in [
            ("patch", {"data": {"name": "ours"}}),
            ("delete", {}),
            ("leave_room", {}),
            ("add_member", {"user_id": carol.pk}),
            ("remove_member", {"user_id": bob.pk}),
            ("ban_member", {"user_id": bob.pk}),
            ("unban_member", {"user_id": bob.pk}),
            ("set_role", {"user_id": bob.pk, "role": "moderator"}),
        ]:
            assert_status(await a.bad_request(action, pk=pk, **params), 403)
        assert_status(await c.bad_request("join_room", pk=pk), 404)
        assert_status(await c.bad_request("retrieve", pk=pk), 404)
        assert (await a.request("join_room", pk=pk))["response_status"] == 200
        assert (await a.request("retrieve", pk=pk))["data"]["name"] == room["name"]


async def test_list_members_owner_first_then_moderators_then_by_joined_at() -> None:
    owner, m1, mod, m2 = await user_factory(), await user_factory(), await user_factory(), await user_factory()
    room = await make_room_async(owner)
    await add_async(room, m1)
    await add_async(room, mod, Role.MODERATOR)
    await add_async(room, m2)
    async with connect(m2) as c:
        page = (await c.request("list_members", pk=room.pk))["data"]
        assert page["count"] == 4
        assert [(m["user"]["id"], m["role"]) for m in page["results"]] == [
            (owner.pk, "owner"),
            (mod.pk, "moderator"),
            (m1.pk, "member"),
            (m2.pk, "member"),
        ]
        assert set(page["results"][0]) == {"user", "role", "joined_at"}
        second = (await c.request("list_members", pk=room.pk, page=2, page_size=3))["data"]
        assert [m["user"]["id"] for m in second["results"]] == [m2.pk] and second["count"] == 4
        bads: list[dict[str, Any]] = [{"page_size": 201}, {"page": 0}, {"pk": "x"}]
        for bad in bads:
            assert_status(await c.bad_request("list_members", **{"pk": room.pk, **bad}), 400)


async def users(n: int) -> list:
    return [await user_factory() for _ in range(n)]


async def test_add_member_is_the_way_into_a_private_room() -> None:
    owner, mod, member, newcomer, other, outsider = await users(6)
    room = await make_room_async(owner)
    await add_async(room, mod, Role.MODERATOR)
    await add_async(room, member)
    async with connect(owner) as o, connect(mod) as m, connect(member) as p, connect(newcomer) as n, connect(outsider) as x:
        await n.request("subscribe_to_my_rooms", request_id="inbox")
        assert_status(await n.bad_request("join_room", pk=room.pk), 404)
        added = await o.request("add_member", pk=room.pk, user_id=newcomer.pk)
        assert_status(added, 201)
        assert added["data"]["user"]["id"] == newcomer.pk and added["data"]["role"] == "member"
        pushed = await push_of(n, "membership")
        assert pushed["room"] == room.pk and pushed["data"]["role"] == "member" and pushed["data"]["room"]["kind"] == "private"
        assert_status(await o.request("add_member", pk=room.pk, user_id=newcomer.pk), 200)
        assert (await n.request("retrieve", pk=room.pk))["data"]["member_count"] == 4
        assert_status(await n.request("join_room", pk=room.pk), 200)
        assert_status(await m.request("add_member", pk=room.pk, user_id=other.pk), 201)
        assert_status(await p.bad_request("add_member", pk=room.pk, user_id=outsider.pk), 403)
        assert_status(await x.bad_request("add_member", pk=room.pk, user_id=outsider.pk), 404)
        bads: list[dict[str, Any]] = [{"user_id": 10**9}, {"user_id": "me"}, {}]
        for bad in bads:
            response = await o.bad_request("add_member", pk=room.pk, **bad)
            assert_status(response, 400)
            assert "user_id" in response["errors"][0]
        public = (await x.request("create", data={"name": "pub"}))["data"]
        assert_status(await o.bad_request("add_member", pk=public["pk"], user_id=newcomer.pk), 403)  # not a member there
        assert_status(await x.request("add_member", pk=public["pk"], user_id=newcomer.pk), 201)


# (actor role, target) -> expected status, per action. "self" is the actor; "owner", "moderator"
# and "member" are other users of that role. §5: owner, or moderator acting on a plain member;
# nobody moderates themselves or the owner; set_role is the owner's alone.
MODERATION = {
    "remove_member": {
        ("owner", "self"): 403, ("owner", "moderator"): 204, ("owner", "member"): 204,
        ("moderator", "self"): 403, ("moderator", "owner"): 403, ("moderator", "moderator"): 403, ("moderator", "member"): 204,
        ("member", "self"): 403, ("member", "owner"): 403, ("member", "moderator"): 403, ("member", "member"): 403,
    },
    "ban_member": {
        ("owner", "self"): 403, ("owner", "moderator"): 204, ("owner", "member"): 204,
        ("moderator", "self"): 403, ("moderator", "owner"): 403, ("moderator", "moderator"): 403, ("moderator", "member"): 204,
        ("member", "self"): 403, ("member", "owner"): 403, ("member", "moderator"): 403, ("member", "member"): 403,
    },
    "unban_member": {
        ("owner", "self"): 403, ("owner", "moderator"): 200, ("owner", "member"): 200,
        ("moderator", "self"): 403, ("moderator", "owner"): 403, ("moderator", "moderator"): 403, ("moderator", "member"): 200,
        ("member", "self"): 403, ("member", "owner"): 403, ("member", "moderator"): 403, ("member", "member"): 403,
    },
    "set_role": {
        ("owner", "self"): 403, ("owner", "moderator"): 200, ("owner", "member"): 200,
        ("moderator", "self"): 403, ("moderator", "owner"): 403, ("moderator", "moderator"): 403, ("moderator", "member"): 403,
        ("member", "self"): 403, ("member", "owner"): 403, ("member", "moderator"): 403, ("member", "member"): 403,
    },
}  # fmt: skip
MODERATION_CASES = [(action, actor, target, status) for action, table in MODERATION.items() for (actor, target), status in table.items()]


@database_sync_to_async
def moderation_room(kind: str) -> tuple[Room, dict]:
    """A room with an owner, two moderators and two plain members (so actor and target are different users)."""
    from tests.factories import UserFactory
    from tests.private_rooms import add, make_room

    people = {name: UserFactory.create() for name in ["owner", "moderator", "moderator2", "member", "member2"]}
    room = make_room(people["owner"], kind)
    for name in ["moderator", "moderator2"]:
        add(room, people[name], Role.MODERATOR)
    for name in ["member", "member2"]:
        add(room, people[name])
    return room, people


def pick(people: dict, actor: str, target: str) -> tuple:
    actor_user = people[actor]
    if target == "self":
        return actor_user, actor_user
    return actor_user, people[target + "2"] if target == actor and target != "owner" else people[target]


@pytest.mark.parametrize(("action", "actor", "target", "status"), MODERATION_CASES)
async def test_moderation_table(action: str, actor: str, target: str, status: int) -> None:
    room, people = await moderation_room(RoomKind.PRIVATE)
    actor_user, target_user = pick(people, actor, target)
    before = await role_of_async(room, target_user)
    params: dict[str, Any] = {"role": "member" if before == "moderator" else "moderator"} if action == "set_role" else {}
    async with connect(actor_user) as c:
        response = await (c.request if status < 400 else c.bad_request)(action, pk=room.pk, user_id=target_user.pk, **params)
    assert_status(response, status)
    after = await role_of_async(room, target_user)
    if status >= 400:
        assert after == before and not await is_banned_async(room, target_user)  # a refusal changes nothing
    elif action in ("remove_member", "ban_member"):
        assert after is None and await is_banned_async(room, target_user) == (action == "ban_member")
    elif action == "set_role":
        assert after == params["role"] and response["data"]["role"] == params["role"]


async def test_remove_member_of_a_private_room_ends_presence_and_subscriptions() -> None:
    owner, bob = await users(2)
    room = await make_room_async(owner)
    await add_async(room, bob)
    async with connect(owner) as o, connect(bob) as b, connect(bob) as b2:
        await o.request("join_room", pk=room.pk)
        await b.request("join_room", pk=room.pk)
        await b.request("subscribe_to_messages_in_room", pk=room.pk, request_id="stream")
        await b.request("subscribe_instance", pk=room.pk, request_id="inst")
        await b2.request("subscribe_to_messages_in_room", pk=room.pk, request_id="other-connection")
        await b2.request("subscribe_to_my_rooms", request_id="inbox")
        seen = await push_of(o, "presence")
        while {u["id"] for u in seen["data"]["users"]} != {owner.pk, bob.pk}:
            seen = await push_of(o, "presence")
        assert_status(await o.request("remove_member", pk=room.pk, user_id=bob.pk), 204)
        ended = {(await push_of(b, "subscription_ended"))["request_id"], (await push_of(b, "subscription_ended"))["request_id"]}
        assert ended == {"stream", "inst"}
        on_b2 = await push_of(b2, "subscription_ended")
        assert on_b2 == {"action": "subscription_ended", "request_id": "other-connection", "room": room.pk, "reason": "removed"}
        inbox = await push_of(b2, "membership")
        assert inbox["room"] == room.pk and inbox["data"] == {"room": None, "role": None}
        presence = await push_of(o, "presence")
        while {u["id"] for u in presence["data"]["users"]} != {owner.pk}:
            presence = await push_of(o, "presence")
        await o.request("create_message", room=room.pk, message="after removal")
        await o.request("typing", pk=room.pk)
        await no_push_of(b, {"create", "presence", "typing", "room_message"})
        await no_push_of(b2, {"create", "presence", "typing", "room_message"})
        assert_status(await b.bad_request("retrieve", pk=room.pk), 404)
        assert_status(await b.bad_request("create_message", room=room.pk, message="still here?"), 404)
        assert_status(await b.bad_request("typing", pk=room.pk), 404)
        assert_status(await b.bad_request("unsubscribe_from_messages_in_room", pk=room.pk, request_id="stream"), 403)


async def test_ban_in_a_public_room_refuses_join_add_and_posting_until_unbanned() -> None:
    owner, bob = await users(2)
    room = await make_room_async(owner, RoomKind.PUBLIC)
    async with connect(owner) as o, connect(bob) as b:
        await b.request("join_room", pk=room.pk)
        await b.request("subscribe_to_messages_in_room", pk=room.pk, request_id="stream")
        assert_status(await o.request("ban_member", pk=room.pk, user_id=bob.pk), 204)
        assert_status(await b.bad_request("create_message", room=room.pk, message="x"), 403)
        assert_status(await b.bad_request("join_room", pk=room.pk), 403)
        assert_status(await o.bad_request("add_member", pk=room.pk, user_id=bob.pk), 403)
        # A public room stays visible: reading and its stream go on.
        assert_status(await b.request("retrieve", pk=room.pk), 200)
        await o.request("join_room", pk=room.pk)
        await o.request("create_message", room=room.pk, message="visible to all")
        assert (await push_of(b, "create"))["data"]["text"] == "visible to all"
        assert_status(await o.request("unban_member", pk=room.pk, user_id=bob.pk), 200)
        assert_status(await o.request("unban_member", pk=room.pk, user_id=bob.pk), 200)
        assert_status(await b.request("join_room", pk=room.pk), 200)
        assert_status(await b.request("create_message", room=room.pk, message="back"), 201)


async def test_ban_in_a_private_room_ends_subscriptions_with_reason_banned() -> None:
    owner, bob, carol = await users(3)
    room = await make_room_async(owner)
    await add_async(room, bob)
    async with connect(owner) as o, connect(bob) as b:
        await b.request("subscribe_to_messages_in_room", pk=room.pk, request_id="s")
        assert_status(await o.request("ban_member", pk=room.pk, user_id=bob.pk), 204)
        assert (await push_of(b, "subscription_ended"))["reason"] == "banned"
        assert_status(await o.bad_request("add_member", pk=room.pk, user_id=bob.pk), 403)
        assert_status(await o.request("ban_member", pk=room.pk, user_id=carol.pk), 204)  # not a member: banned ahead
        assert_status(await o.bad_request("add_member", pk=room.pk, user_id=carol.pk), 403)
        assert_status(await o.request("unban_member", pk=room.pk, user_id=bob.pk), 200)
        assert_status(await o.request("add_member", pk=room.pk, user_id=bob.pk), 201)


async def test_set_role_pushes_membership_and_moderators_delete_any_message_but_not_the_room() -> None:
    owner, bob, carol = await users(3)
    room = await make_room_async(owner)
    await add_async(room, bob)
    await add_async(room, carol)
    message = await post_async(room, carol, "carol's")
    async with connect(owner) as o, connect(bob) as b:
        await b.request("subscribe_to_my_rooms", request_id="inbox")
        assert_status(await b.bad_request("delete_message", pk=message.pk), 403)
        promoted = await o.request("set_role", pk=room.pk, user_id=bob.pk, role="moderator")
        assert promoted["data"] == {
            "user": {"id": bob.pk, "username": bob.username},
            "role": "moderator",
            "joined_at": promoted["data"]["joined_at"],
        }
        pushed = await push_of(b, "membership")
        assert pushed["data"]["role"] == "moderator" and pushed["data"]["room"]["pk"] == room.pk
        assert_status(await b.request("delete_message", pk=message.pk), 204)
        assert_status(await b.bad_request("patch", pk=room.pk, data={"name": "mine"}), 403)
        assert_status(await b.bad_request("delete", pk=room.pk), 403)
        for bad in ["owner", "admin", None]:
            assert_status(await o.bad_request("set_role", pk=room.pk, user_id=bob.pk, role=bad), 400)
        assert_status(await o.request("set_role", pk=room.pk, user_id=bob.pk, role="member"), 200)
        assert (await push_of(b, "membership"))["data"]["role"] == "member"
        outsider = await user_factory()
        assert_status(await o.bad_request("set_role", pk=room.pk, user_id=outsider.pk, role="moderator"), 404)
        assert_status(await o.bad_request("remove_member", pk=room.pk, user_id=outsider.pk), 404)


async def test_owner_cannot_leave_and_a_refused_leave_changes_nothing() -> None:
    owner, bob = await users(2)
    room = await make_room_async(owner)
    await add_async(room, bob)
    async with connect(owner) as o, connect(bob) as b:
        joined = await o.request("join_room", pk=room.pk)
        assert [u["id"] for u in joined["data"]["current_users"]] == [owner.pk]
        assert_status(await o.bad_request("leave_room", pk=room.pk), 403)
        assert [u["id"] for u in (await o.request("retrieve", pk=room.pk))["data"]["current_users"]] == [owner.pk]
        assert await role_of_async(room, owner) == Role.OWNER
        await b.request("subscribe_to_messages_in_room", pk=room.pk, request_id="s")
        assert_status(await b.request("leave_room", pk=room.pk), 200)
        assert (await push_of(b, "subscription_ended"))["reason"] == "removed"
        assert_status(await b.bad_request("retrieve", pk=room.pk), 404)


async def test_deleting_a_room_ends_every_message_subscription_and_inbox_entry() -> None:
    owner, bob, passer = await users(3)
    private = await make_room_async(owner)
    public = await make_room_async(owner, RoomKind.PUBLIC)
    await add_async(private, bob)
    async with connect(owner) as o, connect(bob) as b, connect(passer) as p:
        await b.request("subscribe_to_my_rooms", request_id="inbox")
        await b.request("subscribe_to_messages_in_room", pk=private.pk, request_id="priv")
        await p.request("subscribe_to_messages_in_room", pk=public.pk, request_id="pub")  # not a member
        await p.request("subscribe_instance", pk=public.pk, request_id="inst")
        assert_status(await o.request("delete", pk=private.pk), 204)
        assert (await push_of(b, "subscription_ended")) == {
            "action": "subscription_ended",
            "request_id": "priv",
            "room": private.pk,
            "reason": "room_deleted",
        }
        assert (await push_of(b, "membership"))["data"] == {"room": None, "role": None}
        assert_status(await o.request("delete", pk=public.pk), 204)
        assert (await push_of(p, "subscription_ended"))["reason"] == "room_deleted"
        assert (await push_of(p, "delete"))["request_id"] == "inst"


async def test_presence_typing_and_messages_of_a_private_room_reach_members_only() -> None:
    owner, outsider = await users(2)
    room = await make_room_async(owner)
    async with connect(owner) as o, connect(outsider) as x:
        for action, params in [
            ("subscribe_to_messages_in_room", {"request_id": "s"}),
            ("subscribe_instance", {"request_id": "i"}),
            ("join_room", {}),
            ("typing", {}),
            ("list_messages", {}),
        ]:
            assert_status(await x.bad_request(action, pk=room.pk, **params), 404)
        await x.request("subscribe_to_my_rooms", request_id="inbox")
        await o.request("join_room", pk=room.pk)
        await o.request("typing", pk=room.pk)
        await o.request("create_message", room=room.pk, message="members only")
        await o.request("patch", pk=room.pk, data={"name": "renamed"})
        await no_push_of(x, {"presence", "typing", "create", "room_message", "update"}, timeout=0.8)
        memberships = await database_sync_to_async(lambda: list(Membership.objects.filter(room=room).values_list("user_id", flat=True)))()
        assert memberships == [owner.pk]
