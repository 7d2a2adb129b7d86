"""Pushes that are not model events: presence, typing, online status; and the presence heartbeat.

Everything here is async and talks to the channel layer; database work goes
through chat.core.services / chat.core.selectors behind `db_thread`.
"""

import asyncio
import contextlib
import json
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from django.utils import timezone

from chat.core import selectors, services
from chat.core.db import db_thread
from chat.core.jsonenc import RawJSON
from chat.core.serializers import UserSerializer, serialize_many
from chat.events import groups
from chat.events.fanout import local_fanout
from chat.events.presence_cache import PresenceCache, presence_cache
from chat.ops import metrics

logger = logging.getLogger(__name__)

# A fresh id per process start: a restarted process never revives its predecessor's presence.
SERVER_ID = uuid.uuid4().hex

# Presence pushes for a room are coalesced: at most one per PRESENCE_MIN_INTERVAL, and
# rarer for crowded rooms (the whole list goes to everyone, so a burst of R joins would
# otherwise cost R² user entries), but never later than PRESENCE_MAX_INTERVAL (§3: 5 s).
PRESENCE_MIN_INTERVAL = 0.2
PRESENCE_MAX_INTERVAL = 2.0
PRESENCE_USERS_PER_SECOND_OF_DELAY = 500


class RowGate:
    """A heartbeat runs alone; changes of this process's rows (leaves, batches of closes) run together.

    A beat compares the rows with a snapshot of the consumers the process holds: a change
    deleting a row between the snapshot and the beat's read made the beat take it for one
    another process's sweep removed, and write it back (a ghost connection or presence).
    Changes touch different rows and wait only for a beat, never for each other; a beat
    waiting for changes to end lets no new one start.
    """

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._changes = 0
        self._beating = False

    @contextlib.asynccontextmanager
    async def change(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._beating)
            self._changes += 1
        try:
            yield
        finally:
            async with self._changed:
                self._changes -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def beat(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._beating)
            self._beating = True
        try:
            async with self._changed:
                await self._changed.wait_for(lambda: self._changes == 0)
            yield
        finally:
            async with self._changed:
                self._beating = False
                self._changed.notify_all()


@dataclass
class _LoopState:
    """This process's background work, per event loop (tests run one loop per test)."""

    heartbeat: asyncio.Task[None] | None = None
    pending_presence: set[int] = field(default_factory=set)
    presence_flush: asyncio.Task[None] | None = None
    room_sizes: dict[int, int] = field(default_factory=dict)
    # Connections closed since the last cleanup, and the future their consumers await.
    closing: list[str] = field(default_factory=list)
    closed: asyncio.Future[None] | None = None
    # The consumers this process really holds, by channel name: what the heartbeat keeps
    # (and re-creates) in the database, and nothing else of this process.
    consumers: dict[str, Any] = field(default_factory=dict)
    # Heartbeats against changes of this process's rows (see RowGate).
    rows: RowGate = field(default_factory=RowGate)
    # When the heartbeat last started succeeding (monotonic); None while it fails.
    reachable_since: float | None = None
    # Online-status changes waiting to be sent, in order, and the task sending them.
    user_statuses: list[dict[str, Any]] = field(default_factory=list)
    user_status_sender: asyncio.Task[None] | None = None


_loop_states: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]" = weakref.WeakKeyDictionary()


def _state() -> _LoopState:
    return _loop_states.setdefault(asyncio.get_running_loop(), _LoopState())


async def _group_send(group: str, message: dict[str, Any]) -> None:
    """Best-effort push: a layer failure is counted and logged, never turned into an action error."""
    try:
        # Each process receives a group's events once; "group" tells its fan-out whose they are.
        await get_channel_layer().group_send(group, {**message, "group": group})
    except Exception:
        metrics.channel_layer_error("group_send")
        logger.exception("group send to %s failed", group)


@db_thread
def _present_users(room_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    present = selectors.present_users_by_room(room_ids)
    return {room_id: present.get(room_id, []) for room_id in room_ids}


def _presence_cache() -> PresenceCache:
    """This process's present-user lists, kept exact by other processes' presence pushes."""
    fanout = local_fanout()
    if groups.PRESENCE_EVENT not in fanout.listeners:
        fanout.listeners[groups.PRESENCE_EVENT] = _presence_pushed
    return presence_cache()


def _presence_pushed(message: dict[str, Any]) -> None:
    """A presence push reached this process: another process's means presence changed there."""
    if message.get("origin") != SERVER_ID:
        room_id = message.get("room")
        cache = presence_cache()
        cache.drop([room_id] if isinstance(room_id, int) else list(cache.entries))


@db_thread
def _present_users_of(room_id: int) -> list[dict[str, Any]]:
    return selectors.present_users_by_room([room_id]).get(room_id, [])


async def present_users_json(room_id: int) -> RawJSON:
    """The room's present users as encoded JSON, from the cache or one query."""
    cache = _presence_cache()
    encoded = cache.users_json(room_id)
    if encoded is None and (pending := cache.queries.get(room_id)) is not None:
        # Another join's query of the room is running: joins that miss the list together (after
        # a drop, say) share it rather than each query and encode the whole room. What it keeps
        # includes this join (recorded by presence_joined while it ran); if it keeps nothing
        # (a drop overtook it, or it failed), this join queries on its own below.
        await asyncio.shield(pending)
        encoded = cache.users_json(room_id)
    if encoded is None:
        build = cache.start_build(room_id)
        shared = None if room_id in cache.queries else cache.queries.setdefault(room_id, asyncio.get_running_loop().create_future())
        users: list[dict[str, Any]] | None = None
        try:
            users = await _present_users_of(room_id)
        finally:
            cache.store(room_id, build, users)
            if shared is not None:
                del cache.queries[room_id]
                shared.set_result(None)
        encoded = cache.users_json(room_id)
        if encoded is None:  # not kept (overtaken by a change, or not in the room group): this query's answer
            encoded = RawJSON(json.dumps(users))
    return encoded


async def presence_joined(room_id: int, user: Any, changed: bool) -> None:
    """The user is present in the room now, by a join on this process; push presence if that changed it."""
    _presence_cache().joined(room_id, user.pk, user.username)
    if changed:
        _schedule_presence([room_id])


async def push_presence(room_ids: list[int]) -> None:
    """Soon tell each room's audience who is present (coalesced with other changes to the same rooms)."""
    if not room_ids:
        return
    _presence_cache().drop(room_ids)
    _schedule_presence(room_ids)


def _schedule_presence(room_ids: list[int]) -> None:
    state = _state()
    state.pending_presence.update(room_ids)
    if state.presence_flush is None or state.presence_flush.done():
        state.presence_flush = asyncio.get_running_loop().create_task(_flush_presence(_flush_delay(state, room_ids)))


def _flush_delay(state: _LoopState, room_ids: Iterable[int]) -> float:
    """Big rooms wait longer between presence pushes: each push costs O(room size) per member."""
    largest = max((state.room_sizes.get(room_id, 0) for room_id in room_ids), default=0)
    return min(PRESENCE_MAX_INTERVAL, max(PRESENCE_MIN_INTERVAL, largest / PRESENCE_USERS_PER_SECOND_OF_DELAY))


async def _flush_presence(delay: float) -> None:
    state = _state()
    # Loop while changes keep coming: one that arrives during a flush's query would
    # otherwise wait in pending_presence for some later, unrelated change.
    while state.pending_presence:
        await asyncio.sleep(delay)
        room_ids, state.pending_presence = sorted(state.pending_presence), set()
        # Always a fresh query, never the cache: another process's change may not have
        # reached this one yet, and this push must not undo that process's own.
        cache = _presence_cache()
        builds = {room_id: cache.start_build(room_id) for room_id in room_ids}
        present: dict[int, list[dict[str, Any]]] = {}
        try:
            present = await _present_users(room_ids)
        except Exception:
            logger.exception("presence push failed")
            continue
        finally:
            for room_id, build in builds.items():
                cache.store(room_id, build, present.get(room_id))
        for room_id, users in present.items():
            state.room_sizes[room_id] = len(users)
            # Encoded once here; every connection sends the same text.
            frame = json.dumps({"action": groups.PUSH_PRESENCE, "room": room_id, "data": {"users": users}})
            # "origin" and "room" tell other processes' presence caches (chat.events.presence_cache) to drop the room.
            message = {"type": groups.PRESENCE_EVENT, "text": frame, "room": room_id, "origin": SERVER_ID}
            await _group_send(groups.room_group(room_id), message)
        delay = _flush_delay(state, state.pending_presence)


async def push_typing(room_id: int, user: Any) -> None:
    """Tell the room's audience that the user is typing (their own connections skip it)."""
    frame = json.dumps({"action": groups.PUSH_TYPING, "room": room_id, "data": {"user": UserSerializer(user).data}})
    await _group_send(groups.room_group(room_id), {"type": groups.TYPING_EVENT, "user_id": user.pk, "text": frame})


async def push_user_status(users: list[dict[str, Any]], online: bool) -> None:
    """Tell online-users subscribers that these users came online or went offline (sent next, in order)."""
    state = _state()
    state.user_statuses.extend({"user": user, "online": online} for user in users)
    if state.user_status_sender is None or state.user_status_sender.done():
        state.user_status_sender = asyncio.get_running_loop().create_task(_send_user_statuses(state))


async def _send_user_statuses(state: _LoopState) -> None:
    # One layer message for the changes of a moment, not one per user: a crowd connecting at
    # once (a reconnect storm, a room filling up) cost a channel-layer round trip per handshake.
    # One sender per loop keeps the changes of a process in order.
    while state.user_statuses:
        statuses, state.user_statuses = state.user_statuses, []
        await _group_send(groups.ONLINE_USERS_GROUP, {"type": groups.USER_STATUS_EVENT, "statuses": statuses})


async def push_credentials_revoked(user_id: int, token_key: str | None) -> None:
    """Close the user's connections that used this token (all of them when token_key is None)."""
    await _group_send(groups.user_group(user_id), {"type": groups.AUTH_REVOKED_EVENT, "token": token_key})


@db_thread
def _users_by_id(user_ids: list[int]) -> list[dict[str, Any]]:
    # DRF's stubs type `.data` as a dict even with many=True (a ReturnList at run time).
    return serialize_many(UserSerializer, selectors.users_by_id(user_ids=user_ids))


# Closed connections are forgotten in batches: 500 clients dropping at once cost a few
# queries, not a few thousand, and their presence is gone well within §3's 5 s.
CLOSE_BATCH_DELAY = 0.05


async def forget_connection(channel_name: str) -> None:
    """Remove a closed connection's presence and announce what changed; returns once that is done."""
    state = _state()
    if state.closed is None:
        loop = asyncio.get_running_loop()
        state.closed = loop.create_future()
        loop.create_task(_forget_closed_connections())
    state.closing.append(channel_name)
    await asyncio.shield(state.closed)


async def _forget_closed_connections() -> None:
    await asyncio.sleep(CLOSE_BATCH_DELAY)
    state = _state()
    channel_names, done = state.closing, state.closed
    state.closing, state.closed = [], None
    try:
        async with changing_rows():
            room_ids, offline_ids = await db_thread(services.connections_close)(channel_names=channel_names)
        await _announce_departures(room_ids, offline_ids)
    except Exception:  # the heartbeat's sweep removes what is left once it expires
        logger.exception("could not forget %d closed connections", len(channel_names))
    finally:
        if done is not None:
            done.set_result(None)


async def _announce_departures(room_ids: list[int], offline_ids: list[int]) -> None:
    await push_presence(room_ids)
    if offline_ids:
        await push_user_status(await _users_by_id(offline_ids), online=False)


def register(consumer: Any) -> None:
    """Count an accepted consumer among those this process holds (before its Connection row is written)."""
    _state().consumers[consumer.channel_name] = consumer


def changing_rows() -> contextlib.AbstractAsyncContextManager[None]:
    """Held while deleting rows of this process's connections or presences: no heartbeat meanwhile (RowGate)."""
    return _state().rows.change()


def unregister(consumer: Any) -> None:
    """Forget a consumer that closed or failed its handshake."""
    _state().consumers.pop(consumer.channel_name, None)


# After a failed beat the next comes this soon, so presence is exact within §3's 5 s of the database returning.
HEARTBEAT_RETRY_SECONDS = 1.0
CLOSE_USER_INACTIVE = 4401


async def heartbeat_once() -> None:
    """One beat: keep and repair this process's rows, close deactivated users, sweep dead processes' rows.

    Raises when the database does not answer; the caller retries soon.
    """
    state = _state()
    async with state.rows.beat():
        held_at = timezone.now()  # before the snapshot: a row written after it is never taken for a ghost
        # A consumer without a user yet is authenticating: its row may be written any moment (no ghost).
        held = {
            name: (None if consumer.user is None else consumer.user.pk, list(consumer.present_rooms))
            for name, consumer in state.consumers.items()
        }
        try:
            beat = await db_thread(services.connection_heartbeat)(server_id=SERVER_ID, held=held, held_at=held_at)
        except Exception:
            state.reachable_since = None
            raise
    recovered = state.reachable_since is None
    now = asyncio.get_running_loop().time()
    if recovered:
        state.reachable_since = now
    revived_rooms = set(beat.revived_rooms)
    if recovered:
        # Pushes computed while this process's rows looked stale may have left its users out.
        revived_rooms.update(room_id for _, room_ids in held.values() for room_id in room_ids)
    await _announce_departures(beat.departed_rooms, beat.departed_user_ids)
    await push_presence(sorted(revived_rooms))
    if beat.revived_user_ids:
        await push_user_status(await _users_by_id(beat.revived_user_ids), online=True)
    for name in beat.inactive_channels:
        consumer = state.consumers.get(name)
        if consumer is not None:
            await consumer.close(code=CLOSE_USER_INACTIVE)
    # Only once this process has reached the database for a whole expiry window does a
    # stale row mean its server missed beats while the database answered.
    if state.reachable_since is not None and now - state.reachable_since >= 3 * selectors.heartbeat_interval():
        room_ids, offline_ids = await db_thread(services.connection_sweep)()
        await _announce_departures(room_ids, offline_ids)


async def _heartbeat_forever() -> None:
    """Beat every heartbeat interval, and every second while the database does not answer."""
    delay = selectors.heartbeat_interval()
    while True:
        await asyncio.sleep(delay)
        try:
            await heartbeat_once()
            delay = selectors.heartbeat_interval()
        except Exception:  # keep beating: one failed round only delays expiry
            logger.exception("presence heartbeat failed")
            delay = min(HEARTBEAT_RETRY_SECONDS, selectors.heartbeat_interval())


def ensure_heartbeat() -> None:
    """Start this process's presence heartbeat once, on its event loop."""
    state = _state()
    if state.heartbeat is None or state.heartbeat.done():
        loop = asyncio.get_running_loop()
        # A connection just reached the database: count it as reachable from now on.
        state.reachable_since = loop.time()
        state.heartbeat = loop.create_task(_heartbeat_forever())
