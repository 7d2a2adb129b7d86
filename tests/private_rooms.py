"""Shared set-up for the private rooms and inbox tests (api_docs/PROTOCOL.md §5-§6) of tests/ws, tests/http and tests/unit."""

from typing import Any

from chat.core import services
from chat.models import Ban, Membership, Message, Role, Room, RoomKind, User
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import Client


def make_room(owner: User, kind: str = RoomKind.PRIVATE) -> Room:
    """A room of this kind owned by `owner` (its only member)."""
    return RoomFactory.create(host=owner, kind=kind)


def add(room: Room, user: User, role: str = Role.MEMBER) -> Membership:
    """Make the user a member of the room with this role (read up to the room's last seq)."""
    room.refresh_from_db()
    return Membership.objects.create(room=room, user=user, role=role, last_read_seq=room.last_seq)


def post(room: Room, author: User, text: str = "hi") -> Message:
    """Store a message in the room under its next seq (the admin's path: no membership check)."""
    return services.message_store(room_id=room.pk, author=author, text=text)[0]


def role_of(room: Room, user: User) -> str | None:
    return Membership.objects.filter(room=room, user=user).values_list("role", flat=True).first()


def is_banned(room: Room, user: User) -> bool:
    return Ban.objects.filter(room=room, user=user).exists()


user_factory = database_sync_to_async(UserFactory.create)
make_room_async = database_sync_to_async(make_room)
add_async = database_sync_to_async(add)
post_async = database_sync_to_async(post)
role_of_async = database_sync_to_async(role_of)
is_banned_async = database_sync_to_async(is_banned)


async def push_of(client: Client, action: str, timeout: float = 3) -> dict[str, Any]:
    """The next push with this action, from the buffered ones first; other pushes are skipped."""
    while True:
        frame = await client.next_push(timeout)
        if frame["action"] == action:
            return frame


async def no_push_of(client: Client, actions: set[str], timeout: float = 0.5) -> None:
    """No push with any of these actions arrives (others are let through)."""
    pushes = list(getattr(client, "pushes", []))
    client.pushes = []
    # receive_nothing, not a receive that times out: that would cancel the application.
    while not await client.communicator.receive_nothing(timeout=timeout):
        pushes.append(await client.receive())
    unwanted = [frame for frame in pushes if frame.get("action") in actions and "response_status" not in frame]
    assert not unwanted, unwanted
