"""Live connections and presence: open, close, heartbeat, sweep, enter and leave rooms (api_docs/PROTOCOL.md §3)."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from chat.core import selectors
from chat.core.db import fetch_prepared
from chat.core.exceptions import (
    NotRoomMember,
    RoomNotFound,
    TooManyConnections,
)

# Package-private: presence and membership change together (one transaction per join).
from chat.core.services.rooms import _add_member, _check_join, _check_leave, room_leave
from chat.events import access
from chat.models import Connection, Membership, Presence, Role, Room, Server, User


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


def connection_open_by_token(*, key: str, channel_name: str, server_id: str, max_per_user: int | None = None) -> tuple[User | None, bool]:
    """Authenticate a handshake's API token and record its connection together (connection_open, for the token's user).

    Returns the active user owning the token, or None (no such token, or an inactive
    user: nothing is recorded), and whether this connection makes the user online.
    On PostgreSQL one statement: a handshake costs one round trip and one thread hop.
    """
    embedded = selectors.token_user_sql(key=key) if connection.vendor == "postgresql" else None
    if embedded is None:
        user = selectors.token_user(key=key)
        if user is None or not user.is_active:
            return None, False
        return user, connection_open(channel_name=channel_name, user=user, server_id=server_id, max_per_user=max_per_user)
    token_sql, token_params = embedded
    row = fetch_prepared(
        f"WITH u AS ({token_sql}), {_COUNT_AND_ADD} SELECT u.*, (SELECT n FROM live) FROM u",
        [*token_params, *_count_and_add_params(channel_name=channel_name, server_id=server_id, max_per_user=max_per_user)],
    )
    if row is None:
        return None, False
    user = selectors.token_user_from_row(row)
    if not user.is_active:
        return None, False
    live = int(row[-1])
    if max_per_user is not None and live >= max_per_user:
        raise TooManyConnections()
    return user, not live


def connections_close(*, channel_names: list[str]) -> tuple[list[int], list[int]]:
    """Forget connections and their presence, in a fixed number of queries however many there are.

    Returns the rooms whose set of present users changed, and the users left with no live connection.
    """
    presences = set(Presence.objects.filter(connection_id__in=channel_names).values_list("room_id", "user_id"))
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


def connection_heartbeat(*, server_id: str, held: dict[str, tuple[int | None, list[int]]], held_at: datetime | None = None) -> Heartbeat:
    """Mark this server process alive and make the database agree with the connections it really holds.

    `held`: channel name -> (user id, rooms present in), for every open consumer of the
    process; user id None: a handshake still authenticating, whose row is no ghost but
    is not re-created either. Rows of held connections that are missing (another process's sweep removed
    them while this one could not reach the database) are re-created with their
    presence; rows of this process that no consumer holds (a handshake that failed
    half-way) are removed. Also reports the held connections of deactivated users.
    `held_at`: when `held` was taken; rows written since (handshakes completing meanwhile)
    are not ghosts, whatever `held` says.
    """
    now = timezone.now()
    beat = Heartbeat()
    Server.objects.bulk_create(
        [Server(server_id=server_id, seen_at=now)], update_conflicts=True, unique_fields=["server_id"], update_fields=["seen_at"]
    )
    # Queries go by server_id, not by lists of channel names: a process may hold tens of
    # thousands of connections, more than one statement takes parameters.
    recorded = set(Connection.objects.filter(server_id=server_id).values_list("pk", flat=True))
    rows = Connection.objects.filter(server_id=server_id)
    older = set(rows.filter(seen_at__lt=held_at).values_list("pk", flat=True)) if held_at is not None else recorded
    ghosts = sorted(older - held.keys())
    if ghosts:
        beat.departed_rooms, beat.departed_user_ids = connections_close(channel_names=ghosts)
    if not held:
        return beat
    Connection.objects.filter(server_id=server_id).update(seen_at=now)
    missing = {name: user_id for name, (user_id, _) in held.items() if name not in recorded and user_id is not None}
    if missing:
        user_ids = set(missing.values())
        online_before = selectors.online_user_ids(user_ids=user_ids)
        Connection.objects.bulk_create(
            [Connection(channel_name=name, user_id=user_id, server_id=server_id, seen_at=now) for name, user_id in missing.items()],
            ignore_conflicts=True,
            batch_size=BULK_BATCH_SIZE,
        )
        beat.revived_user_ids = sorted(user_ids - online_before)
    # A connection without a user holds no room (it cannot join one).
    owners = {name: user_id for name, (user_id, _) in held.items() if user_id is not None}
    wanted = {(name, room_id) for name, (_, room_ids) in held.items() if name in owners for room_id in room_ids}
    if wanted:
        present = set(Presence.objects.filter(connection__server_id=server_id).values_list("connection_id", "room_id"))
        lost = wanted - present
        # Only where the user is still a member: a removal or ban deletes the presence at once, and the
        # consumer forgets the room only when its event arrives, maybe after this beat's snapshot.
        members = _still_members({(owners[name], room_id) for name, room_id in lost})
        revived = [
            Presence(connection_id=name, room_id=room_id, user_id=owners[name])
            for name, room_id in lost
            if (owners[name], room_id) in members
        ]
        Presence.objects.bulk_create(revived, ignore_conflicts=True, batch_size=BULK_BATCH_SIZE)
        beat.revived_rooms = sorted({presence.room_id for presence in revived})
    inactive = selectors.inactive_user_connections(server_id=server_id)
    beat.inactive_channels = sorted(name for name in inactive if name in held)
    return beat


def _still_members(pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The (user id, room id) pairs that are memberships."""
    if not pairs:
        return set()
    rows = Membership.objects.filter(user_id__in={user for user, _ in pairs}, room_id__in={room for _, room in pairs})
    return set(rows.values_list("user_id", "room_id")) & pairs


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


def presence_enter(*, channel_name: str, room_id: int, user: User) -> tuple[bool, Room]:
    """Join a room the user can see as a member and be present on this connection.

    Returns whether the set of present users changed, and the room as §1 gives it
    (host, member_count, last_message; current_users empty: the caller knows them).
    """
    # A crowd joining (or rejoining after a restart) is bound by this: on PostgreSQL one round
    # trip for a member (the state, the room and the presence in one statement), two for a
    # newcomer (then membership and presence in one statement).
    try:
        if connection.vendor == "postgresql":
            state, room, entered = _room_entered_if_member(channel_name=channel_name, room_id=room_id, user_id=user.pk)
            newcomer = _check_join(state)
            if not entered and _insert_member_and_presence(channel_name=channel_name, room_id=room_id, user_id=user.pk, newcomer=newcomer):
                room.member_count += 1  # type: ignore[attr-defined]
        else:
            with transaction.atomic():  # SQLite serialises writers: the state stays exact until commit
                state, room = _room_for_entering(room_id=room_id, user_id=user.pk)
                newcomer = _check_join(state)
                if newcomer:
                    _add_member(room_id=room_id, user_id=user.pk)
                    room.member_count += 1  # type: ignore[attr-defined]
                Presence.objects.bulk_create(
                    [Presence(connection_id=channel_name, room_id=room_id, user_id=user.pk)], ignore_conflicts=True
                )
    except IntegrityError as exc:  # a foreign key to a room that does not exist (checked at the latest on commit)
        raise RoomNotFound() from exc
    if newcomer:
        access.membership_changed(user_id=user.pk, room_id=room_id, role=Role.MEMBER)
    return not state["is_present"], room


def _room_for_entering(*, room_id: int, user_id: int) -> tuple[selectors.JoinState, Room]:
    found = selectors.room_for_entering(room_id=room_id, user_id=user_id)
    if found is None:
        raise RoomNotFound()
    return found


_MEMBERSHIPS, _PRESENCES, _ROOMS = Membership._meta.db_table, Presence._meta.db_table, Room._meta.db_table


def _room_entered_if_member(*, channel_name: str, room_id: int, user_id: int) -> tuple[selectors.JoinState, Room, bool]:
    """PostgreSQL: room_for_entering, and the presence recorded in the same statement if the user is a member
    (_check_join lets every member in); True if it was. Anyone else's join is judged first, then written."""
    embedded = selectors.room_for_entering_sql(room_id=room_id, user_id=user_id)
    if embedded is None:
        state, room = _room_for_entering(room_id=room_id, user_id=user_id)
        return state, room, False
    sql, params = embedded
    row = fetch_prepared(
        f"WITH r AS ({sql}), present AS (INSERT INTO {_PRESENCES} (connection_id, room_id, user_id)"
        " SELECT %s, r.id, %s FROM r WHERE r.is_member ON CONFLICT DO NOTHING) SELECT * FROM r",
        [*params, channel_name, user_id],
    )
    if row is None:
        raise RoomNotFound()
    state, room = selectors.room_for_entering_from_row(row)
    return state, room, state["is_member"]


def _insert_member_and_presence(*, channel_name: str, room_id: int, user_id: int, newcomer: bool) -> bool:
    """PostgreSQL: the membership (if newcomer, as _add_member makes it) and the presence in one statement; True if it added the member."""
    row = fetch_prepared(
        f"WITH member AS (INSERT INTO {_MEMBERSHIPS} (room_id, user_id, role, joined_at, last_read_seq)"
        f" SELECT id, %s, %s, %s, last_seq FROM {_ROOMS} WHERE id = %s AND %s ON CONFLICT DO NOTHING RETURNING 1),"
        f" present AS (INSERT INTO {_PRESENCES} (connection_id, room_id, user_id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING)"
        " SELECT count(*) FROM member",
        [user_id, Role.MEMBER.value, timezone.now(), room_id, newcomer, channel_name, room_id, user_id],
    )
    return bool(row and row[0])


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
# After a CTE `u` of one user (id, is_active): how many live connections the user has
# (`live`), and this one recorded unless the user is inactive or that reaches the cap.
# The count and the insert share the statement's snapshot, as the ORM's count-then-create
# (two round trips) would see it without a concurrent connection of the same user.
_COUNT_AND_ADD = (
    f"live AS (SELECT count(*) AS n FROM {_CONNECTIONS} WHERE user_id = (SELECT id FROM u) AND seen_at >= %s::timestamptz),"
    f" added AS (INSERT INTO {_CONNECTIONS} (channel_name, user_id, server_id, seen_at)"
    " SELECT %s::varchar, u.id, %s::varchar, %s::timestamptz FROM u WHERE u.is_active AND (SELECT n FROM live) < %s::bigint)"
)


def _count_and_add_params(*, channel_name: str, server_id: str, max_per_user: int | None) -> list[Any]:
    # No cap: a bound no count reaches, so that the prepared statement has one shape.
    cap = 2**62 if max_per_user is None else max_per_user
    return [selectors.live_connection_cutoff(), channel_name, server_id, timezone.now(), cap]


def _count_and_insert_connection(*, channel_name: str, user: User, server_id: str, max_per_user: int | None) -> int:
    """PostgreSQL: the user's live connections before this one, and this one recorded unless that reaches the cap, in one statement."""
    row = fetch_prepared(
        f"WITH u AS (SELECT %s::bigint AS id, true AS is_active), {_COUNT_AND_ADD} SELECT n FROM live",
        [user.pk, *_count_and_add_params(channel_name=channel_name, server_id=server_id, max_per_user=max_per_user)],
    )
    return int(row[0]) if row else 0
