"""Writes: every rule of the chat, called by both the HTTP views and the WebSocket consumer.

Services are synchronous and take keyword-only arguments. Async callers reach them
through `chat.core.db.db_thread`. Events to WebSocket subscribers are sent by the
model observers (chat.events.streams, connected at startup in every process) only
after the surrounding transaction commits.
"""

from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from chat.core import selectors
from chat.core.exceptions import NotMessageAuthor, NotRoomHost, NotRoomMember, RoomNotFound, TooManyConnections
from chat.core.ratelimit import message_rate_limit_check, room_create_rate_limit_check
from chat.events.observers import room_deletion
from chat.models import Connection, Message, Presence, Room, Server, User
from chat.ops import metrics

ROOM_NAME_TAKEN = "A room with this name already exists."
USERNAME_TAKEN = "A user with that username already exists."


def user_register(*, username: str, password: str) -> User:
    """Create a user account (400 when a case twin of the username wins a race to the database)."""
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password)
    except IntegrityError as exc:
        raise ValidationError({"username": [USERNAME_TAKEN]}) from exc


def room_create(*, host: User, name: str) -> Room:
    """Create a room, within the user's room creation limit; its host is its first member."""
    room_create_rate_limit_check(user_id=host.pk)
    try:
        with transaction.atomic():
            room = Room.objects.create(name=name, host=host)
            room.members.add(host)
    except IntegrityError as exc:  # lost a race with another creator of the same name
        raise ValidationError({"name": [ROOM_NAME_TAKEN]}) from exc
    return selectors.room_get(pk=room.pk)


def room_update(*, room: Room, user: User, name: str) -> Room:
    """Rename a room (host only)."""
    if room.host_id != user.pk:
        raise NotRoomHost()
    try:
        room.name = name
        room.save(update_fields=["name"])
    except IntegrityError as exc:
        raise ValidationError({"name": [ROOM_NAME_TAKEN]}) from exc
    return selectors.room_get(pk=room.pk)


def room_delete(*, room: Room, user: User) -> None:
    """Delete a room and its messages (host only)."""
    if room.host_id != user.pk:
        raise NotRoomHost()
    with room_deletion(room.pk):
        room.delete()


def room_join(*, room_id: int, user: User) -> None:
    """Make the user a member of the room (idempotent)."""
    selectors.room_assert_exists(pk=room_id)
    try:
        _add_member(room_id=room_id, user=user)
    except IntegrityError as exc:  # the room was deleted meanwhile
        raise RoomNotFound() from exc


def _add_member(*, room_id: int, user: User) -> None:
    # One INSERT ... ON CONFLICT DO NOTHING, where get_or_create takes three round trips.
    Room.members.through.objects.bulk_create([Room.members.through(room_id=room_id, user_id=user.pk)], ignore_conflicts=True)


def room_leave(*, room_id: int, user: User) -> None:
    """End the user's membership of the room."""
    selectors.room_assert_exists(pk=room_id)
    deleted, _ = Room.members.through.objects.filter(room_id=room_id, user_id=user.pk).delete()
    if not deleted:
        raise NotRoomMember()


def message_create(*, room_id: int, author: User, text: str, client_id: str | None = None) -> tuple[Message, bool]:
    """Post a message as a member, within the flood limit; returns it and whether it is new.

    A repeated client_id returns the first message and stores nothing (safe retries),
    without counting against the flood limit.
    """
    return _message_append(room_id=room_id, author=author, text=text, client_id=client_id, as_member=True)


def message_store(*, room_id: int, author: User, text: str, client_id: str | None = None) -> tuple[Message, bool]:
    """Store a message under the room's next seq, with no membership or flood checks (the admin's path)."""
    return _message_append(room_id=room_id, author=author, text=text, client_id=client_id, as_member=False)


def _message_append(*, room_id: int, author: User, text: str, client_id: str | None, as_member: bool) -> tuple[Message, bool]:
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
        if room is None:
            raise RoomNotFound()
        if client_id is not None:
            # A query of its own, after the lock: a subquery of the locking statement would
            # read a snapshot taken before the lock and miss a racing retry's commit.
            existing = selectors.message_by_client_id(room_id=room_id, user_id=author.pk, client_id=client_id)
            if existing is not None:
                return existing, False
        if as_member:
            if not room.is_member:
                raise NotRoomMember()
            message_rate_limit_check(user_id=author.pk)  # raises before anything is written
        room.last_seq += 1
        # update(), not save(): a new seq is not a room change its observers should announce.
        Room.objects.filter(pk=room_id).update(last_seq=room.last_seq)
        message = Message.objects.create(room_id=room_id, seq=room.last_seq, user=author, text=text, client_id=client_id)
        transaction.on_commit(metrics.message_created)
    return message, True


def message_update(*, message: Message, user: User, text: str) -> Message:
    """Edit a message's text (author only), within the message flood limit."""
    if message.user_id != user.pk:
        raise NotMessageAuthor()
    message_rate_limit_check(user_id=user.pk)
    message.text = text
    message.edited_at = timezone.now()
    message.save(update_fields=["text", "edited_at"])
    return message


def message_delete(*, message: Message, user: User) -> None:
    """Delete a message (its author or the room's host); its seq stays a hole."""
    if message.user_id != user.pk and message.room.host_id != user.pk:
        raise NotMessageAuthor("Only the message's author or the room's host may delete it.")
    message.delete()


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
    """Join the room as a member and be present on this connection; True when the set of present users changed."""
    if connection.vendor == "postgresql":
        try:
            was_present = _insert_and_check(
                f"INSERT INTO {_MEMBERS} (room_id, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [room_id, user.pk],
                f"SELECT 1 FROM {_PRESENCES} p JOIN {_CONNECTIONS} c ON c.channel_name = p.connection_id"
                " WHERE p.room_id = %s AND c.user_id = %s AND c.seen_at >= %s",
                [room_id, user.pk, selectors.live_connection_cutoff()],
                f"INSERT INTO {_PRESENCES} (connection_id, room_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [channel_name, room_id],
            )
        except IntegrityError as exc:  # a foreign key to a room that does not exist
            raise RoomNotFound() from exc
        return not was_present
    # One transaction, one commit: a crowd joining a room is bound by these round trips.
    try:
        with transaction.atomic():
            _add_member(room_id=room_id, user=user)
            was_present = bool(selectors.present_pairs(room_ids=[room_id], user_ids=[user.pk]))
            Presence.objects.bulk_create([Presence(connection_id=channel_name, room_id=room_id)], ignore_conflicts=True)
    except IntegrityError as exc:  # a foreign key to a room that does not exist (checked at the latest on commit)
        raise RoomNotFound() from exc
    return not was_present


def presence_leave(*, channel_name: str, room_id: int, user: User) -> bool:
    """End this connection's presence and the user's membership; True when the set of present users changed."""
    deleted, _ = Presence.objects.filter(connection_id=channel_name, room_id=room_id).delete()
    try:
        room_leave(room_id=room_id, user=user)
    except NotRoomMember:
        if not deleted:  # neither present here nor a member: nothing to leave
            raise
    return bool(deleted) and not selectors.present_pairs(room_ids=[room_id], user_ids=[user.pk])


_CONNECTIONS = Connection._meta.db_table


def _count_and_insert_connection(*, channel_name: str, user: User, server_id: str, max_per_user: int | None) -> int:
    """PostgreSQL: the user's live connections before this one, and this one recorded unless that reaches the cap, in one statement."""
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


_PRESENCES = Presence._meta.db_table
_MEMBERS = Room.members.through._meta.db_table


def _insert_and_check(insert: str, insert_params: list[Any], check: str, check_params: list[Any], *more: Any) -> bool:
    """PostgreSQL: run the inserts and tell whether `check` found a row before them, in one statement (one round trip).

    The statement's data-modifying CTEs and its SELECT share one snapshot, so the check
    sees the state before the inserts, as a check run first would; in autocommit the
    statement is its own transaction, and a deferred foreign key fails at its end.
    """
    inserts, params = [insert, *more[::2]], [insert_params, *more[1::2]]
    ctes = ", ".join(f"i{n} AS ({sql})" for n, sql in enumerate(inserts))
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {ctes} SELECT EXISTS ({check})", [p for group in params for p in group] + check_params)
        row = cursor.fetchone()
    return bool(row and row[0])
