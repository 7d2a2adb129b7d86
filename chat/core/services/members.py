"""Moderation and read state: add, remove, ban, roles, mark_read (api_docs/PROTOCOL.md §5-§6)."""

from django.db import transaction
from django.db.models import Subquery
from django.db.models.functions import Greatest, Least

from chat.core import selectors
from chat.core.exceptions import (
    CannotModerate,
    DirectRoomRefused,
    MemberNotFound,
    NotRoomHost,
    NotRoomMember,
    NotRoomModerator,
    RoomNotFound,
    UserBanned,
)
from chat.core.services.rooms import _add_member
from chat.events import access
from chat.models import Ban, Membership, Presence, Role, Room, RoomKind, User

# --- moderation (api_docs/PROTOCOL.md §5) ------------------------------------------------------------


def _moderated_room(*, room_id: int, actor: User) -> tuple[Room, Membership]:
    """The room and the actor's membership, if the actor may moderate it (owner or moderator of a non-direct room)."""
    room = selectors.rooms_visible_to(user=actor).filter(pk=room_id).first()
    if room is None:
        raise RoomNotFound()
    if room.kind == RoomKind.DIRECT:
        raise DirectRoomRefused()
    membership = Membership.objects.filter(room_id=room_id, user_id=actor.pk).first()
    if membership is None or membership.role == Role.MEMBER:
        raise NotRoomModerator()
    return room, membership


def _check_reach(*, room: Room, actor: Membership, target_id: int, target_role: str | None) -> None:
    """Nobody moderates themselves or the owner; a moderator moderates plain members (and non-members) only."""
    if target_id == actor.user_id or target_id == room.host_id or target_role == Role.OWNER:
        raise CannotModerate()
    if actor.role == Role.MODERATOR and target_role == Role.MODERATOR:
        raise CannotModerate("A moderator may only moderate plain members.")


def member_add(*, room_id: int, actor: User, user: User) -> tuple[Membership, bool]:
    """Add a user to a public or private room (owner or moderator); returns the membership and whether it is new."""
    with transaction.atomic():
        _moderated_room(room_id=room_id, actor=actor)
        existing = selectors.membership_get(room_id=room_id, user_id=user.pk)
        if existing is not None:
            return existing, False
        if selectors.is_banned(room_id=room_id, user_id=user.pk):
            raise UserBanned()
        _add_member(room_id=room_id, user_id=user.pk)
        access.membership_changed(user_id=user.pk, room_id=room_id, role=Role.MEMBER)
        membership = selectors.membership_get(room_id=room_id, user_id=user.pk)
    assert membership is not None
    return membership, True


def _end_membership(*, room: Room, user_id: int, reason: str) -> bool:
    """Delete the membership and the user's presence in the room; tell their connections. True if they were a member."""
    deleted, _ = Membership.objects.filter(room_id=room.pk, user_id=user_id).delete()
    Presence.objects.filter(room_id=room.pk, user_id=user_id).delete()
    if deleted or reason == "banned":
        access.membership_changed(user_id=user_id, room_id=room.pk, role=None, reason=reason, visible=room.kind == RoomKind.PUBLIC)
    return bool(deleted)


def member_remove(*, room_id: int, actor: User, user_id: int) -> None:
    """Remove a member (the owner, or a moderator removing a plain member); their presence and private subscriptions end."""
    with transaction.atomic():
        room, actor_membership = _moderated_room(room_id=room_id, actor=actor)
        target = Membership.objects.select_for_update().filter(room_id=room_id, user_id=user_id).first()
        _check_reach(room=room, actor=actor_membership, target_id=user_id, target_role=target.role if target else None)
        if target is None:
            raise MemberNotFound()
        _end_membership(room=room, user_id=user_id, reason="removed")


def member_ban(*, room_id: int, actor: User, user_id: int) -> None:
    """Ban a user (as member_remove; a non-member may be banned too): removed, and refused join, add and posting until unbanned."""
    with transaction.atomic():
        room, actor_membership = _moderated_room(room_id=room_id, actor=actor)
        target = Membership.objects.select_for_update().filter(room_id=room_id, user_id=user_id).first()
        _check_reach(room=room, actor=actor_membership, target_id=user_id, target_role=target.role if target else None)
        Ban.objects.bulk_create([Ban(room_id=room_id, user_id=user_id)], ignore_conflicts=True)
        _end_membership(room=room, user_id=user_id, reason="banned")


def member_unban(*, room_id: int, actor: User, user_id: int) -> None:
    """Lift a ban (owner or moderator; idempotent)."""
    with transaction.atomic():
        room, actor_membership = _moderated_room(room_id=room_id, actor=actor)
        target_role = Membership.objects.filter(room_id=room_id, user_id=user_id).values_list("role", flat=True).first()
        _check_reach(room=room, actor=actor_membership, target_id=user_id, target_role=target_role)
        Ban.objects.filter(room_id=room_id, user_id=user_id).delete()


def member_set_role(*, room_id: int, actor: User, user_id: int, role: str) -> Membership:
    """Make a member a moderator or a plain member again (owner only)."""
    with transaction.atomic():
        room, actor_membership = _moderated_room(room_id=room_id, actor=actor)
        if actor_membership.role != Role.OWNER:
            raise NotRoomHost("Only the room's owner may change roles.")
        target = Membership.objects.select_for_update().select_related("user").filter(room_id=room_id, user_id=user_id).first()
        _check_reach(room=room, actor=actor_membership, target_id=user_id, target_role=target.role if target else None)
        if target is None:
            raise MemberNotFound()
        if target.role != role:
            target.role = role
            target.save(update_fields=["role"])
            access.membership_changed(user_id=user_id, room_id=room_id, role=role)
    return target


# --- read state (api_docs/PROTOCOL.md §6) -------------------------------------------------------------


def room_mark_read(*, room_id: int, user: User, seq: int) -> tuple[int, int]:
    """Move the user's last_read_seq forward to seq (capped at the room's last seq); returns it and the unread count."""
    with transaction.atomic():
        selectors.room_assert_visible(user=user, pk=room_id)
        membership = Membership.objects.select_for_update().select_related("room").filter(room_id=room_id, user_id=user.pk).first()
        if membership is None:
            raise NotRoomMember()
        room_last = Room.objects.filter(pk=room_id).values("last_seq")
        moved = Membership.objects.filter(pk=membership.pk, last_read_seq__lt=Least(seq, Subquery(room_last))).update(
            last_read_seq=Greatest("last_read_seq", Least(seq, Subquery(room_last)))
        )
        last_read_seq = Membership.objects.filter(pk=membership.pk).values_list("last_read_seq", flat=True).get()
        if moved:
            audience = [user.pk]
            if membership.room.kind == RoomKind.DIRECT:
                audience = selectors.room_member_ids(room_id=room_id)
            access.read_moved(
                user_ids=audience, room_id=room_id, reader={"id": user.pk, "username": user.username}, last_read_seq=last_read_seq
            )
    return last_read_seq, selectors.unread_count(room_id=room_id, user_id=user.pk, after_seq=last_read_seq)
