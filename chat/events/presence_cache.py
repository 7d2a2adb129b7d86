"""This process's present-user list per room, encoded once per presence change and reused by every join.

`join_room` answers with the room's whole present-user list (§1 `current_users`), O(room)
to query and to encode; a crowd joining a room would pay that once per join. Here each
room's list is kept as encoded JSON, built by one query and then kept exact:

- a local join adds its user (it is present: it has just entered);
- any other local change (a leave, closed connections, the heartbeat's sweep) goes
  through `realtime.push_presence`, which drops the room's list;
- another process's change reaches this process as that process's presence push on the
  room group, which drops the list too. So a list is only kept while this process is
  in the room group, under the very membership it was built in (the fan-out's join
  task): a process that left the group in between would have missed such pushes.

A list built by a query that a drop overtook is thrown away; joins recorded while a
query ran are merged into its result. Another process's change shows in a join response
once its push arrives (it coalesces pushes for up to realtime.PRESENCE_MAX_INTERVAL),
as it does for the members already present.
"""

import asyncio
import bisect
import json
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chat.core.jsonenc import RawJSON
from chat.events import groups
from chat.events.fanout import local_fanout


@dataclass
class _Entry:
    """One room's present users, and the fan-out membership that keeps them exact."""

    users: dict[int, str]  # user id -> the encoded §1 User
    membership: "asyncio.Task[None]"
    encoded: RawJSON | None = None
    # Once encoded: the user ids in list order and their encoded Users, kept in step by joins, so
    # that a join inserts one user where sorting and encoding the room again was O(room) per join
    # (a crowd joining a room: O(room²)). None: not encoded since the last other change.
    order: list[int] | None = None
    parts: list[str] | None = None


@dataclass
class _Build:
    """What happened to a room while a query of its present users ran."""

    drops: int
    membership: "asyncio.Task[None] | None"
    joined: dict[int, str] = field(default_factory=dict)


def encode_user(user_id: int, username: str) -> str:
    """A §1 User as JSON."""
    return json.dumps({"id": user_id, "username": username})


class PresenceCache:
    """The present-user lists of the rooms whose group this process is in."""

    def __init__(self) -> None:
        self.entries: dict[int, _Entry] = {}
        self.drops: dict[int, int] = {}  # per room: how many times its list was dropped
        self.builds: dict[int, list[_Build]] = {}
        # Per room: a join's query of its present users in flight, which other joins wait for (realtime.present_users_json).
        self.queries: dict[int, asyncio.Future[None]] = {}

    def users_json(self, room_id: int) -> RawJSON | None:
        """The room's present users as an encoded JSON list, or None when not known exactly."""
        entry = self._valid_entry(room_id)
        if entry is None:
            return None
        if entry.encoded is None:
            if entry.parts is None or entry.order is None:
                entry.order = sorted(entry.users)
                entry.parts = [entry.users[user_id] for user_id in entry.order]
            entry.encoded = RawJSON("[" + ", ".join(entry.parts) + "]")
        return entry.encoded

    def start_build(self, room_id: int) -> _Build:
        """Call before querying the room's present users; pass the result to `store`."""
        build = _Build(drops=self.drops.get(room_id, 0), membership=local_fanout().joined.get(groups.room_group(room_id)))
        self.builds.setdefault(room_id, []).append(build)
        return build

    def store(self, room_id: int, build: _Build, users: Iterable[dict[str, Any]] | None) -> None:
        """Keep a queried list (None: the query failed), unless a drop overtook it."""
        builds = self.builds.get(room_id, [])
        if build in builds:
            builds.remove(build)
        if not builds:
            self.builds.pop(room_id, None)
        membership = local_fanout().joined.get(groups.room_group(room_id))
        if users is None or build.drops != self.drops.get(room_id, 0) or membership is not build.membership:
            return
        if membership is None or not _is_live(membership):
            return
        encoded = {user["id"]: encode_user(user["id"], user["username"]) for user in users}
        encoded.update(build.joined)
        self.entries[room_id] = _Entry(users=encoded, membership=membership)

    def joined(self, room_id: int, user_id: int, username: str) -> None:
        """A user is present in the room now (a local join just committed)."""
        encoded = encode_user(user_id, username)
        for build in self.builds.get(room_id, ()):
            build.joined[user_id] = encoded
        entry = self._valid_entry(room_id)
        if entry is None or entry.users.get(user_id) == encoded:
            return
        known = user_id in entry.users
        entry.users[user_id] = encoded
        if known or entry.order is None or entry.parts is None:  # a renamed user: encoded again from users
            entry.encoded = entry.order = entry.parts = None
            return
        position = bisect.bisect(entry.order, user_id)
        entry.order.insert(position, user_id)
        entry.parts.insert(position, encoded)
        if position == len(entry.order) - 1 and entry.encoded is not None:
            # The last in the list (joins in order of registration, often): the text is extended.
            text = entry.encoded.text
            entry.encoded = RawJSON(f"{text[:-1]}, {encoded}]" if len(entry.order) > 1 else f"[{encoded}]")
        else:
            entry.encoded = None

    def drop(self, room_ids: Iterable[int]) -> None:
        """Forget these rooms' lists: their presence changed in a way only a query can tell."""
        for room_id in room_ids:
            self.entries.pop(room_id, None)
            self.drops[room_id] = self.drops.get(room_id, 0) + 1

    def _valid_entry(self, room_id: int) -> _Entry | None:
        entry = self.entries.get(room_id)
        if entry is None:
            return None
        if local_fanout().joined.get(groups.room_group(room_id)) is not entry.membership or not _is_live(entry.membership):
            # This process left the room's group since: it may have missed other processes' pushes.
            self.drop([room_id])
            return None
        return entry


def _is_live(membership: "asyncio.Task[None] | None") -> bool:
    return membership is not None and membership.done() and not membership.cancelled() and membership.exception() is None


_caches: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PresenceCache]" = weakref.WeakKeyDictionary()


def presence_cache() -> PresenceCache:
    """The cache of this event loop (tests run one loop per test)."""
    loop = asyncio.get_running_loop()
    cache = _caches.get(loop)
    if cache is None:
        cache = _caches[loop] = PresenceCache()
    return cache
