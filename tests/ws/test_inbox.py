"""api_docs/PROTOCOL.md §6 over WebSocket: read state, unread counts, the inbox list and its live pushes."""

from typing import Any

import pytest

from chat.models import Message, Role, RoomKind
from tests.db import database_sync_to_async
from tests.factories import UserFactory
from tests.private_rooms import add_async, make_room_async, no_push_of, post_async, push_of, user_factory
from tests.ws import connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def users(n: int) -> list:
    return [await user_factory() for _ in range(n)]


def entry_for(page: dict, room_pk: int) -> dict:
    return next(entry for entry in page["results"] if entry["room"]["pk"] == room_pk)


async def test_joining_starts_read_at_the_rooms_last_seq_and_posting_reads_your_own_message() -> None:
    owner, bob = await users(2)
    room = await make_room_async(owner, RoomKind.PUBLIC)
    for text in ["one", "two", "three"]:
        await post_async(room, owner, text)
    async with connect(bob) as b, connect(owner) as o:
        await b.request("join_room", pk=room.pk)
        entry = entry_for((await b.request("list_my_rooms"))["data"], room.pk)
        assert entry["last_read_seq"] == 3 and entry["unread_count"] == 0 and entry["role"] == "member"
        assert set(entry) == {"room", "role", "last_read_seq", "unread_count"}
        await o.request("create_message", room=room.pk, message="four")
        await o.request("create_message", room=room.pk, message="five")
        entry = entry_for((await b.request("list_my_rooms"))["data"], room.pk)
        assert (entry["last_read_seq"], entry["unread_count"]) == (3, 2)
        mine = (await b.request("create_message", room=room.pk, message="six"))["data"]
        entry = entry_for((await b.request("list_my_rooms"))["data"], room.pk)
        assert (entry["last_read_seq"], entry["unread_count"]) == (mine["seq"], 0)  # posting reads up to your own message
        owner_entry = entry_for((await o.request("list_my_rooms"))["data"], room.pk)
        assert (owner_entry["role"], owner_entry["last_read_seq"], owner_entry["unread_count"]) == ("owner", 5, 1)


async def test_unread_count_is_exact_own_and_deleted_messages_do_not_count() -> None:
    owner, bob = await users(2)
    room = await make_room_async(owner)
    await add_async(room, bob)
    await post_async(room, bob, "bob's own")  # read by bob (posting reads up to it) and never unread to him
    others = [await post_async(room, owner, f"m{i}") for i in range(4)]
    async with connect(bob) as b:
        page = (await b.request("list_my_rooms"))["data"]
        assert entry_for(page, room.pk)["unread_count"] == 4
        await database_sync_to_async(Message.objects.filter(pk=others[1].pk).delete)()
        assert entry_for((await b.request("list_my_rooms"))["data"], room.pk)["unread_count"] == 3
        read = await b.request("mark_read", pk=room.pk, seq=others[2].seq)
        assert read["data"] == {"last_read_seq": others[2].seq, "unread_count": 1}


async def test_mark_read_clamps_never_moves_back_and_validates() -> None:
    owner, bob, outsider = await users(3)
    room = await make_room_async(owner)
    public = await make_room_async(owner, RoomKind.PUBLIC)
    await add_async(room, bob)
    for _ in range(3):
        await post_async(room, owner)
    async with connect(bob) as b, connect(outsider) as x:
        await b.request("mark_read", pk=room.pk, seq=0)
        assert (await b.request("mark_read", pk=room.pk, seq=10**6))["data"] == {"last_read_seq": 3, "unread_count": 0}
        assert (await b.request("mark_read", pk=room.pk, seq=1))["data"] == {"last_read_seq": 3, "unread_count": 0}
        bads: list[dict[str, Any]] = [{"seq": -1}, {"seq": "x"}, {}, {"seq": 2**63}]
        for bad in bads:
            response = await b.bad_request("mark_read", pk=room.pk, **bad)
            assert response["response_status"] == 400 and "seq" in response["errors"][0], response
        assert (await x.bad_request("mark_read", pk=room.pk, seq=1))["response_status"] == 404
        assert (await x.bad_request("mark_read", pk=public.pk, seq=1))["response_status"] == 403
        assert (await x.bad_request("mark_read", pk=10**9, seq=1))["response_status"] == 404


async def test_list_my_rooms_newest_message_first_then_empty_rooms_newest_first() -> None:
    me = await user_factory()
    rooms = [await make_room_async(me, RoomKind.PRIVATE) for _ in range(4)]
    await post_async(rooms[0], me, "older")
    await post_async(rooms[2], me, "newer")
    async with connect(me) as c:
        page = (await c.request("list_my_rooms"))["data"]
        assert page["count"] == 4
        assert [entry["room"]["pk"] for entry in page["results"]] == [rooms[2].pk, rooms[0].pk, rooms[3].pk, rooms[1].pk]
        assert page["results"][0]["room"]["last_message"]["text"] == "newer"
        second = (await c.request("list_my_rooms", page=2, page_size=3))["data"]
        assert [entry["room"]["pk"] for entry in second["results"]] == [rooms[1].pk] and second["count"] == 4
        for bad in [{"page_size": 201}, {"page_size": 0}, {"page": 0}]:
            assert (await c.bad_request("list_my_rooms", **bad))["response_status"] == 400


async def test_inbox_pushes_room_messages_of_every_room_and_follows_membership_without_reconnecting() -> None:
    me, friend, owner = await users(3)
    mine = await make_room_async(me, RoomKind.PUBLIC)
    elsewhere = await make_room_async(owner)
    public = await make_room_async(owner, RoomKind.PUBLIC)
    async with connect(me) as inbox, connect(me) as other_device, connect(owner) as o, connect(friend) as f:
        assert (await inbox.request("subscribe_to_my_rooms", request_id="inbox"))["data"] is None
        await o.request("join_room", pk=mine.pk)
        sent = (await o.request("create_message", room=mine.pk, message="hello"))["data"]
        push = await push_of(inbox, "room_message")
        assert push == {"action": "room_message", "request_id": "inbox", "room": mine.pk, "data": sent}
        # Added by someone else: membership, then its messages, no reconnect.
        await o.request("add_member", pk=elsewhere.pk, user_id=me.pk)
        added = await push_of(inbox, "membership")
        assert added["room"] == elsewhere.pk and added["data"]["role"] == "member" and added["data"]["room"]["pk"] == elsewhere.pk
        await o.request("create_message", room=elsewhere.pk, message="in the private one")
        assert (await push_of(inbox, "room_message"))["data"]["text"] == "in the private one"
        # Joined on another connection: included too.
        await other_device.request("join_room", pk=public.pk)
        assert (await push_of(inbox, "membership"))["room"] == public.pk
        await f.request("join_room", pk=public.pk)
        await f.request("create_message", room=public.pk, message="public chatter")
        assert (await push_of(inbox, "room_message"))["room"] == public.pk
        # Removed: membership with role null, and nothing more from that room.
        await o.request("remove_member", pk=elsewhere.pk, user_id=me.pk)
        assert (await push_of(inbox, "membership"))["data"] == {"room": None, "role": None}
        await o.request("create_message", room=elsewhere.pk, message="after")
        await no_push_of(inbox, {"room_message"})
        # Left on another connection: gone from the inbox too.
        await other_device.request("leave_room", pk=public.pk)
        assert (await push_of(inbox, "membership"))["room"] == public.pk
        await f.request("create_message", room=public.pk, message="not for the inbox any more")
        await no_push_of(inbox, {"room_message"})


async def test_read_pushes_to_own_connections_and_in_direct_rooms_to_the_other_member() -> None:
    alice, bob, carol = await users(3)
    group = await make_room_async(alice)
    await add_async(group, carol)
    async with connect(alice) as a1, connect(alice) as a2, connect(bob) as b, connect(carol) as c:
        await a2.request("subscribe_to_my_rooms", request_id="a-inbox")
        await b.request("subscribe_to_my_rooms", request_id="b-inbox")
        await c.request("subscribe_to_my_rooms", request_id="c-inbox")
        direct = (await a1.request("open_direct", user_id=bob.pk))["data"]
        await push_of(b, "membership")
        await b.request("create_message", room=direct["pk"], message="hi alice")
        await push_of(a2, "room_message")
        entry = entry_for((await a1.request("list_my_rooms"))["data"], direct["pk"])
        assert entry["unread_count"] == 1
        await a1.request("mark_read", pk=direct["pk"], seq=1)
        mine = await push_of(a2, "read")
        assert mine == {
            "action": "read",
            "request_id": "a-inbox",
            "room": direct["pk"],
            "data": {"user": {"id": alice.pk, "username": alice.username}, "last_read_seq": 1},
        }
        receipt = await push_of(b, "read")
        assert receipt["data"]["user"]["id"] == alice.pk and receipt["request_id"] == "b-inbox"
        # Not a direct room: no receipts to others.
        await c.request("create_message", room=group.pk, message="x")
        await a1.request("mark_read", pk=group.pk, seq=1)
        assert (await push_of(a2, "read"))["room"] == group.pk
        await no_push_of(c, {"read"})
        # Marking read again where nothing moves pushes nothing.
        await a1.request("mark_read", pk=group.pk, seq=1)
        await no_push_of(a2, {"read"})


async def test_role_change_reaches_the_inbox() -> None:
    owner, bob = await users(2)
    room = await make_room_async(owner)
    await add_async(room, bob, Role.MEMBER)
    async with connect(owner) as o, connect(bob) as b:
        await b.request("subscribe_to_my_rooms", request_id=7)
        await o.request("set_role", pk=room.pk, user_id=bob.pk, role="moderator")
        push = await push_of(b, "membership")
        assert push["request_id"] == 7 and push["data"]["role"] == "moderator"


@database_sync_to_async
def member_of_many(user: Any, count: int) -> list[int]:
    from chat.models import Membership, Room

    owner = UserFactory.create()
    rooms = Room.objects.bulk_create([Room(name=f"many-{user.pk}-{i}", host=owner) for i in range(count)])
    Membership.objects.bulk_create([Membership(room=room, user=user) for room in rooms])
    return [room.pk for room in rooms]


async def test_an_inbox_of_500_rooms_is_one_layer_membership_per_room_per_process() -> None:
    from chat.events import groups
    from chat.events.fanout import local_fanout

    me, poster = await users(2)
    room_ids = await member_of_many(me, 500)
    async with connect(me) as first, connect(me) as second, connect(poster) as p:
        for client in (first, second):
            assert (await client.request("subscribe_to_my_rooms", request_id="inbox"))["response_status"] == 200
        fanout = local_fanout()
        message_groups = {groups.room_messages_group(room_id) for room_id in room_ids}
        # One layer group_add per room for this process (fanout.joined is keyed by group), both connections behind it.
        assert message_groups <= set(fanout.joined)
        assert all(len(fanout.members[group]) == 2 for group in message_groups)
        await p.request("join_room", pk=room_ids[-1])
        await p.request("create_message", room=room_ids[-1], message="in the 500th room")
        for client in (first, second):
            assert (await push_of(client, "room_message"))["room"] == room_ids[-1]
    assert not message_groups & set(local_fanout().members)  # all gone once the connections closed
