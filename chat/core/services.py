"""Writes: every rule of the chat, called by both the HTTP views and the WebSocket consumer.

Services are synchronous and take keyword-only arguments. Async callers reach them
through `chat.core.db.db_thread`. Events to WebSocket subscribers are sent by the
model observers (chat.events.streams, connected at startup in every process) only
after the surrounding transaction commits.
"""

from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Subquery
from django.db.models.functions import Greatest, Least
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import ValidationError

from chat.core import selectors
from chat.core.exceptions import (
    Banned,
    CannotModerate,
    DirectRoomRefused,
    MemberNotFound,
    MessageNotFound,
    NotMessageAuthor,
    NotRoomHost,
    NotRoomMember,
    NotRoomModerator,
    OwnerCannotLeave,
    ReactionNotFound,
    RoomNotFound,
    TooManyConnections,
    UserBanned,
)
from chat.core.ratelimit import message_rate_limit_check, room_create_rate_limit_check
from chat.events import access
from chat.events.observers import room_deletion
from chat.events.streams import message_changed
from chat.models import Ban, Connection, Membership, Message, Presence, Reaction, Role, Room, RoomKind, Server, User
from chat.ops import metrics

ROOM_NAME_TAKEN = "A room with this name already exists."
USERNAME_TAKEN = "A user with that username already exists."
REPLY_TO_INVALID = "Not a message of this room."
# Direct rooms are named by the server; no other room may take a name of this form.
DIRECT_NAME_PREFIX = "direct:"


def user_register(*, username: str, password: str) -> User:
    """Create a user account (400 when a case twin of the username wins a race to the database)."""
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password)
    except IntegrityError as exc:
        raise ValidationError({"username": [USERNAME_TAKEN]}) from exc


def token_revoke(*, token: Token) -> None:
    """Revoke an API token: it stops working over HTTP, and its WebSocket connections close with 4401 (chat.events.signals)."""
    Token.objects.filter(pk=token.pk).delete()


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


def _join(*, room_id: int, user: User) -> "selectors.JoinState":
    """Membership for a joiner, checked in one query; returns what that query found."""
    state = selectors.room_for_joining(room_id=room_id, user_id=user.pk)
    if state is None or (state["kind"] != RoomKind.PUBLIC and not state["is_member"]):
        raise RoomNotFound()
    if state["is_member"]:
        return state
    if state["is_banned"]:
        raise Banned()
    _add_member(room_id=room_id, user_id=user.pk)  # callers turn an IntegrityError (room gone) into RoomNotFound
    access.membership_changed(user_id=user.pk, room_id=room_id, role=Role.MEMBER)
    return state


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
    present = Presence.objects.filter(room_id=room.pk, connection__user_id=user_id)
    Presence.objects.filter(pk__in=list(present.values_list("pk", flat=True))).delete()
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


def message_create(
    *, room_id: int, author: User, text: str, client_id: str | None = None, reply_to: int | None = None
) -> tuple[Message, bool]:
    """Post a message as a member, within the flood limit; returns it and whether it is new.

    A repeated client_id returns the first message and stores nothing (safe retries),
    without counting against the flood limit. `reply_to` must be a message of the same room.
    """
    return _message_append(room_id=room_id, author=author, text=text, client_id=client_id, reply_to=reply_to, as_member=True)


def message_store(
    *, room_id: int, author: User, text: str, client_id: str | None = None, reply_to: int | None = None
) -> tuple[Message, bool]:
    """Store a message under the room's next seq, with no membership or flood checks (the admin's path)."""
    return _message_append(room_id=room_id, author=author, text=text, client_id=client_id, reply_to=reply_to, as_member=False)


def _message_append(
    *, room_id: int, author: User, text: str, client_id: str | None, reply_to: int | None, as_member: bool
) -> tuple[Message, bool]:
    """Append a message to the room under its next seq, or return the one this client_id already stored.

    The room row is locked while the next seq is taken, so concurrent posters get
    1, 2, 3... with no gap or duplicate, and a retry racing its original finds it
    under the same lock. Every check runs under that lock too: a post costs one
    transaction of four statements, which bounds how fast a room can take messages.
    """
    # Inside a caller's transaction (the admin's, a test's) a savepoint keeps a refused
    # post (403, 429) from breaking it; the admin's store is never refused, and DCRF's
    # observers warn about savepoints, so it goes without.
    with transaction.atomic(savepoint=as_member):
        room = selectors.room_for_posting(room_id=room_id, user_id=author.pk)
        if room is None or (as_member and not room.is_member and room.kind != RoomKind.PUBLIC):
            raise RoomNotFound()
        if client_id is not None:
            # A query of its own, after the lock: a subquery of the locking statement would
            # read a snapshot taken before the lock and miss a racing retry's commit.
            existing = selectors.message_by_client_id(room_id=room_id, user_id=author.pk, client_id=client_id)
            if existing is not None:
                return existing, False
        if as_member:
            if not room.is_member:
                raise Banned() if selectors.is_banned(room_id=room_id, user_id=author.pk) else NotRoomMember()
        # The same room is enough for "a message the caller can see": the caller is a member of it.
        if reply_to is not None and not selectors.message_in_room(message_id=reply_to, room_id=room_id):
            raise ValidationError({"reply_to": [REPLY_TO_INVALID]})
        if as_member:
            message_rate_limit_check(user_id=author.pk)  # raises before anything is written
        room.last_seq += 1
        _advance_seq(room_id=room_id, author_id=author.pk, seq=room.last_seq)
        message = Message(room_id=room_id, seq=room.last_seq, user=author, text=text, client_id=client_id, reply_to=reply_to)
        message.reaction_summary = []  # a new message has none: serializing it (response, observer) needs no query
        message.save(force_insert=True)
        transaction.on_commit(metrics.message_created)
    return message, True


def _advance_seq(*, room_id: int, author_id: int, seq: int) -> None:
    """Store the room's new last seq and move its author's last_read_seq to it (§6: your own post is read)."""
    # update(), not save(): a new seq is not a room change its observers should announce.
    # On PostgreSQL both in one statement, so a post still costs four round trips.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_ADVANCE_SEQ_SQL, [seq, room_id, author_id, seq, seq, room_id])
        return
    Membership.objects.filter(room_id=room_id, user_id=author_id, last_read_seq__lt=seq).update(last_read_seq=seq)
    Room.objects.filter(pk=room_id).update(last_seq=seq)


_ADVANCE_SEQ_SQL = (
    f"WITH read AS (UPDATE {Membership._meta.db_table} SET last_read_seq = %s"
    " WHERE room_id = %s AND user_id = %s AND last_read_seq < %s RETURNING 1)"
    f" UPDATE {Room._meta.db_table} SET last_seq = %s WHERE id = %s"
)


def message_update(*, message: Message, user: User, text: str) -> Message:
    """Edit a message's text (author only), within the message flood limit."""
    if message.user_id != user.pk:
        raise NotMessageAuthor()
    message_rate_limit_check(user_id=user.pk)
    selectors.attach_reactions([message])  # once, for both the response and the observer's event
    message.text = text
    message.edited_at = timezone.now()
    message.save(update_fields=["text", "edited_at"])
    return message


def message_delete(*, message: Message, user: User) -> None:
    """Delete a message (its author, the room's owner or a moderator); its seq stays a hole."""
    if message.user_id != user.pk and message.room.host_id != user.pk:
        role = Membership.objects.filter(room_id=message.room_id, user_id=user.pk).values_list("role", flat=True).first()
        if role != Role.MODERATOR:
            raise NotMessageAuthor("Only the message's author, the room's owner or a moderator may delete it.")
    message.reaction_summary = []  # its reactions go with it; the delete event needs no query for them
    message.delete()


def reaction_add(*, message_id: int, user: User, emoji: str) -> tuple[Message, bool]:
    """React to a message of a room one is a member of; returns the message and whether the reaction is new.

    Adding a reaction one already has stores nothing and sends no event.
    """
    with transaction.atomic():
        message = _message_for_reaction(message_id=message_id, user=user)
        reactions = Reaction.objects.filter(message_id=message_id, user_id=user.pk, emoji=emoji)
        created = not reactions.exists()  # no race: the message row is locked
        if created:
            Reaction.objects.create(message_id=message_id, user_id=user.pk, emoji=emoji)
        _announce_reactions(message, changed=created)
    return message, created


def reaction_remove(*, message_id: int, user: User, emoji: str) -> Message:
    """Take back one's reaction (ReactionNotFound if there is none); returns the message."""
    with transaction.atomic():
        message = _message_for_reaction(message_id=message_id, user=user)
        deleted, _ = Reaction.objects.filter(message_id=message_id, user_id=user.pk, emoji=emoji).delete()
        if not deleted:
            raise ReactionNotFound()
        _announce_reactions(message, changed=True)
    return message


def _message_for_reaction(*, message_id: int, user: User) -> Message:
    """The message, its row locked, once the user may react to it: a member of its room, within the flood limit.

    The lock serialises reaction changes of one message, so each one's event carries the
    reactions as they stand after it, and an add can check for a duplicate without a race.
    """
    membership = Membership.objects.filter(room_id=OuterRef("room_id"), user_id=user.pk)
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(pk=message_id, room__in=selectors.rooms_visible_to(user=user))
        .annotate(is_member=Exists(membership))
        .order_by()
        .first()
    )
    if message is None:
        raise MessageNotFound()
    if not message.is_member:
        raise NotRoomMember()
    message_rate_limit_check(user_id=user.pk)  # raises before anything is written
    return message


def _announce_reactions(message: Message, *, changed: bool) -> None:
    """Read the message's reactions as they now stand and, if they changed, send its `update` event after commit."""
    selectors.attach_reactions([message])
    if changed:
        message_changed(message)  # edited_at untouched: a reaction is not an edit


def connection_open(*, channel_name: str, user: User, server_id: str, max_per_user: int | None = None) -> bool:
    """Record a new WebSocket connection; True when it makes the user online.

    TooManyConnections when the user already has `max_per_user` live connections.
    """
    if connection.vendor == "postgresql":
        live = _count_and_insert_connection(channel_name=channel_name, user=user, server_id=server_id, max_per_user=max_per_user)
        if max_per_user is not None and live >= max_per_user:
            raise TooManyConnections()
        return not live
    live = selectors.live_connection_count(user_id=user.pk)
    if max_per_user is not None and live >= max_per_user:
        raise TooManyConnections()
    Connection.objects.create(channel_name=channel_name, user=user, server_id=server_id, seen_at=timezone.now())
    return not live


def connections_close(*, channel_names: list[str]) -> tuple[list[int], list[int]]:
    """Forget connections and their presence, in a fixed number of queries however many there are.

    Returns the rooms whose set of present users changed, and the users left with no live connection.
    """
    presences = set(Presence.objects.filter(connection_id__in=channel_names).values_list("room_id", "connection__user_id"))
    user_ids = set(Connection.objects.filter(pk__in=channel_names).values_list("user_id", flat=True))
    # Presence first: then deleting the connections needs no cascade look-up.
    Presence.objects.filter(connection_id__in=channel_names).delete()
    Connection.objects.filter(pk__in=channel_names).delete()
    still_present = selectors.present_pairs(room_ids={room for room, _ in presences}, user_ids={user for _, user in presences})
    changed_rooms = sorted({room for room, user in presences if (room, user) not in still_present})
    return changed_rooms, sorted(user_ids - selectors.online_user_ids(user_ids=user_ids))


# Rows per INSERT when the heartbeat re-creates many rows at once.
BULK_BATCH_SIZE = 2000


@dataclass
class Heartbeat:
    """What one heartbeat changed: rows it re-created, ghosts it removed, users no longer active."""

    revived_rooms: list[int] = field(default_factory=list)
    revived_user_ids: list[int] = field(default_factory=list)
    departed_rooms: list[int] = field(default_factory=list)
    departed_user_ids: list[int] = field(default_factory=list)
    inactive_channels: list[str] = field(default_factory=list)


def connection_heartbeat(*, server_id: str, held: dict[str, tuple[int, list[int]]]) -> Heartbeat:
    """Mark this server process alive and make the database agree with the connections it really holds.

    `held`: channel name -> (user id, rooms present in), for every open consumer of the
    process. Rows of held connections that are missing (another process's sweep removed
    them while this one could not reach the database) are re-created with their
    presence; rows of this process that no consumer holds (a handshake that failed
    half-way) are removed. Also reports the held connections of deactivated users.
    """
    now = timezone.now()
    beat = Heartbeat()
    Server.objects.bulk_create(
        [Server(server_id=server_id, seen_at=now)], update_conflicts=True, unique_fields=["server_id"], update_fields=["seen_at"]
    )
    # Queries go by server_id, not by lists of channel names: a process may hold tens of
    # thousands of connections, more than one statement takes parameters.
    recorded = set(Connection.objects.filter(server_id=server_id).values_list("pk", flat=True))
    ghosts = sorted(recorded - held.keys())
    if ghosts:
        beat.departed_rooms, beat.departed_user_ids = connections_close(channel_names=ghosts)
    if not held:
        return beat
    Connection.objects.filter(server_id=server_id).update(seen_at=now)
    missing = [name for name in held if name not in recorded]
    if missing:
        user_ids = {held[name][0] for name in missing}
        online_before = selectors.online_user_ids(user_ids=user_ids)
        Connection.objects.bulk_create(
            [Connection(channel_name=name, user_id=held[name][0], server_id=server_id, seen_at=now) for name in missing],
            ignore_conflicts=True,
            batch_size=BULK_BATCH_SIZE,
        )
        beat.revived_user_ids = sorted(user_ids - online_before)
    wanted = {(name, room_id) for name, (_, room_ids) in held.items() for room_id in room_ids}
    if wanted:
        present = set(Presence.objects.filter(connection__server_id=server_id).values_list("connection_id", "room_id"))
        lost = wanted - present
        rooms = set(Room.objects.filter(pk__in={room_id for _, room_id in lost}).values_list("pk", flat=True)) if lost else set()
        revived = [Presence(connection_id=name, room_id=room_id) for name, room_id in lost if room_id in rooms]
        Presence.objects.bulk_create(revived, ignore_conflicts=True, batch_size=BULK_BATCH_SIZE)
        beat.revived_rooms = sorted({presence.room_id for presence in revived})
    inactive = selectors.inactive_user_connections(server_id=server_id)
    beat.inactive_channels = sorted(name for name in inactive if name in held)
    return beat


def connection_sweep() -> tuple[list[int], list[int]]:
    """Forget the connections of server processes that stopped beating (see connections_close for what it returns).

    A connection goes only when both it and its server's heartbeat row are stale (or the
    server has none): a live process whose beats failed for a while keeps its rows, and
    re-creates any that are gone. Call it only after this process has reached the
    database for the whole expiry window, so that "stale" means "missed its beats while
    the database answered", not "the database was down".
    """
    cutoff = selectors.live_connection_cutoff()
    fresh_servers = Server.objects.filter(seen_at__gte=cutoff).values("server_id")
    stale = list(Connection.objects.filter(seen_at__lt=cutoff).exclude(server_id__in=fresh_servers).values_list("pk", flat=True))
    result = connections_close(channel_names=stale) if stale else ([], [])
    Server.objects.filter(seen_at__lt=cutoff).delete()
    return result


def presence_enter(*, channel_name: str, room_id: int, user: User) -> bool:
    """Join a room the user can see as a member and be present on this connection; True when the set of present users changed."""
    # One transaction, one commit: a crowd joining a room is bound by these round trips
    # (a state query, the membership insert for newcomers only, the presence insert).
    try:
        with transaction.atomic():
            state = _join(room_id=room_id, user=user)
            Presence.objects.bulk_create([Presence(connection_id=channel_name, room_id=room_id)], ignore_conflicts=True)
    except IntegrityError as exc:  # a foreign key to a room that does not exist (checked at the latest on commit)
        raise RoomNotFound() from exc
    return not state["is_present"]


def presence_leave(*, channel_name: str, room_id: int, user: User) -> bool:
    """End this connection's presence and the user's membership; True when the set of present users changed."""
    _check_leave(room_id=room_id, user=user)  # a refused leave changes nothing, presence included
    deleted, _ = Presence.objects.filter(connection_id=channel_name, room_id=room_id).delete()
    try:
        room_leave(room_id=room_id, user=user)
    except NotRoomMember:
        if not deleted:  # neither present here nor a member: nothing to leave
            raise
    return bool(deleted) and not selectors.present_pairs(room_ids=[room_id], user_ids=[user.pk])


_CONNECTIONS = Connection._meta.db_table


def _count_and_insert_connection(*, channel_name: str, user: User, server_id: str, max_per_user: int | None) -> int:
    """PostgreSQL: the user's live connections before this one, and this one recorded unless that reaches the cap, in one statement.

    The count and the insert share the statement's snapshot, as the ORM's count-then-create
    (two round trips) would see it without a concurrent connection of the same user.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH live AS (SELECT count(*) AS n FROM {_CONNECTIONS} WHERE user_id = %s AND seen_at >= %s),"
            f" added AS (INSERT INTO {_CONNECTIONS} (channel_name, user_id, server_id, seen_at)"
            " SELECT %s, %s, %s, %s WHERE %s IS NULL OR (SELECT n FROM live) < %s)"
            " SELECT n FROM live",
            [user.pk, selectors.live_connection_cutoff(), channel_name, user.pk, server_id, timezone.now(), max_per_user, max_per_user],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0
