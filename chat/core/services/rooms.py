"""Rooms: create, open a direct room, rename, delete, join and leave (api_docs/PROTOCOL.md §2, §5)."""

from django.db import IntegrityError, transaction
from django.db.models import Subquery
from rest_framework.exceptions import ValidationError

from chat.core import selectors
from chat.core.exceptions import (
    Banned,
    DirectRoomRefused,
    NotRoomHost,
    NotRoomMember,
    OwnerCannotLeave,
    RoomNotFound,
)
from chat.core.ratelimit import room_create_rate_limit_check
from chat.events import access
from chat.events.observers import room_deletion
from chat.models import Membership, Role, Room, RoomKind, User

ROOM_NAME_TAKEN = "A room with this name already exists."
# Direct rooms are named by the server; no other room may take a name of this form.
DIRECT_NAME_PREFIX = "direct:"


def room_create(*, host: User, name: str, kind: str = RoomKind.PUBLIC) -> Room:
    """Create a public or private room, within the user's room creation limit; its host is its owner and first member."""
    room_create_rate_limit_check(user_id=host.pk)
    try:
        with transaction.atomic():
            room = Room.objects.create(name=name, host=host, kind=kind)
            Membership.objects.create(room=room, user=host, role=Role.OWNER)
            access.membership_changed(user_id=host.pk, room_id=room.pk, role=Role.OWNER)
    except IntegrityError as exc:  # lost a race with another creator of the same name
        raise ValidationError({"name": [ROOM_NAME_TAKEN]}) from exc
    return selectors.room_get(pk=room.pk)


def direct_open(*, user: User, other: User) -> tuple[Room, bool]:
    """The direct room of these two users (a user may open one with themselves), created if need be; and whether it is new."""
    low, high = sorted((user.pk, other.pk))
    key = f"{low}:{high}"
    existing = Room.objects.filter(direct_key=key).values_list("pk", flat=True).first()
    if existing is not None:
        return selectors.room_get(pk=existing), False
    try:
        with transaction.atomic():
            room = Room.objects.create(name=f"{DIRECT_NAME_PREFIX}{key}", host=user, kind=RoomKind.DIRECT, direct_key=key)
            Membership.objects.bulk_create([Membership(room=room, user_id=user_id) for user_id in {low, high}])
            for user_id in {low, high}:
                access.membership_changed(user_id=user_id, room_id=room.pk, role=Role.MEMBER)
    except IntegrityError:  # the other user opened it at the same moment
        return selectors.room_get(pk=Room.objects.get(direct_key=key).pk), False
    return selectors.room_get(pk=room.pk), True


def room_update(*, room: Room, user: User, name: str) -> Room:
    """Rename a room (owner only; never a direct room)."""
    if room.kind == RoomKind.DIRECT:
        raise DirectRoomRefused()
    if room.host_id != user.pk:
        raise NotRoomHost()
    try:
        room.name = name
        room.save(update_fields=["name"])
    except IntegrityError as exc:
        raise ValidationError({"name": [ROOM_NAME_TAKEN]}) from exc
    return selectors.room_get(pk=room.pk)


def room_delete(*, room: Room, user: User) -> None:
    """Delete a room and its messages (owner only; never a direct room); every subscription to it ends."""
    if room.kind == RoomKind.DIRECT:
        raise DirectRoomRefused()
    if room.host_id != user.pk:
        raise NotRoomHost()
    with transaction.atomic():
        access.room_ended(room_id=room.pk)
        with room_deletion(room.pk):
            room.delete()


def room_join(*, room_id: int, user: User) -> None:
    """Make the user a member of a room they can see (idempotent); banned users get 403."""
    try:
        with transaction.atomic():
            _join(room_id=room_id, user=user)
    except IntegrityError as exc:  # the room was deleted meanwhile
        raise RoomNotFound() from exc


def _join(*, room_id: int, user: User) -> None:
    """Membership for a joiner, checked in one query."""
    if _check_join(selectors.room_for_joining(room_id=room_id, user_id=user.pk)):
        _add_member(room_id=room_id, user_id=user.pk)  # callers turn an IntegrityError (room gone) into RoomNotFound
        access.membership_changed(user_id=user.pk, room_id=room_id, role=Role.MEMBER)


def _check_join(state: "selectors.JoinState | None") -> bool:
    """Raise unless the user may join a room in this state (404 before 403); True when joining makes them a member."""
    if state is None or (state["kind"] != RoomKind.PUBLIC and not state["is_member"]):
        raise RoomNotFound()
    if state["is_member"]:
        return False
    if state["is_banned"]:
        raise Banned()
    return True


def _add_member(*, room_id: int, user_id: int, role: str = Role.MEMBER) -> None:
    # One INSERT ... ON CONFLICT DO NOTHING, where get_or_create takes three round trips; history
    # from before joining is read already (§6), taken from the room in the same statement.
    last_seq = Subquery(Room.objects.filter(pk=room_id).order_by().values("last_seq")[:1])
    Membership.objects.bulk_create([Membership(room_id=room_id, user_id=user_id, role=role, last_read_seq=last_seq)], ignore_conflicts=True)


def _check_leave(*, room_id: int, user: User) -> None:
    """Raise unless the user may leave: a room they can see, not direct, not its owner."""
    state = selectors.room_for_joining(room_id=room_id, user_id=user.pk)
    if state is None or (state["kind"] != RoomKind.PUBLIC and not state["is_member"]):
        raise RoomNotFound()
    if state["kind"] == RoomKind.DIRECT:
        raise DirectRoomRefused()
    if state["host_id"] == user.pk:
        raise OwnerCannotLeave()


def room_leave(*, room_id: int, user: User) -> None:
    """End the user's membership of the room (never its owner's, never of a direct room)."""
    _check_leave(room_id=room_id, user=user)
    with transaction.atomic():
        deleted, _ = Membership.objects.filter(room_id=room_id, user_id=user.pk).delete()
        if not deleted:
            raise NotRoomMember()
        kind = Room.objects.filter(pk=room_id).values_list("kind", flat=True).first()
        access.membership_changed(user_id=user.pk, room_id=room_id, role=None, reason="left", visible=kind == RoomKind.PUBLIC)
