"""MessageStream without ASGI: plain asyncio with a fake socket (`send`) and a fake database (`read_history`)."""

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

import pytest

from chat.ws.streams import Event, MessageStream

pytestmark = pytest.mark.asyncio

ROOM = 7


def stored(seq: int) -> dict[str, Any]:
    """A §1 Message as the database would return it."""
    return {"id": 100 + seq, "room": ROOM, "seq": seq, "text": f"m{seq}"}


def live(seq: int, action: str = "create") -> dict[str, Any]:
    """A message event's body, as chat.events.streams.message_event builds it."""
    return {"room": ROOM, "seq": seq, "pk": 100 + seq, "data_json": json.dumps(stored(seq))}


class Harness:
    """A stream over a fake database of `stored_seqs`, recording what it sends."""

    def __init__(self, stored_seqs: list[int], *, last_seq: int = 0, page: int = 2) -> None:
        self.database = [live(seq) for seq in stored_seqs]  # read back in the live events' shape
        self.page = page
        self.frames: list[dict[str, Any]] = []
        self.reads: list[tuple[int, int | None]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.failed = 0
        self.on_send: Any = None
        self.read_error: Exception | None = None
        self.stream = MessageStream(
            ROOM, "r", last_seq=last_seq, send=self.send, read_history=self.read_history, spawn=self.spawn, fail=self.fail
        )

    def send(self, *texts: str) -> None:
        for text in texts:
            self.frames.append(json.loads(text))
            if self.on_send is not None:
                self.on_send(self.frames[-1])

    async def read_history(self, room_id: int, after_seq: int, before_seq: int | None) -> tuple[list[Event], bool]:
        assert room_id == ROOM
        self.reads.append((after_seq, before_seq))
        await asyncio.sleep(0)  # a real read yields to the loop: events may arrive meanwhile
        if self.read_error is not None:
            raise self.read_error
        rows = [m for m in self.database if m["seq"] > after_seq and (before_seq is None or m["seq"] < before_seq)]
        return rows[: self.page], len(rows) > self.page

    def spawn(self, work: Coroutine[Any, Any, None]) -> object:
        task = asyncio.ensure_future(work)
        self.tasks.append(task)
        return task

    async def fail(self) -> None:
        self.failed += 1

    async def settle(self) -> None:
        while self.tasks:
            await self.tasks.pop(0)

    def sent(self) -> list[tuple[str, int]]:
        return [(frame["action"], frame["data"]["seq"]) for frame in self.frames]


async def test_replay_then_live_in_seq_order() -> None:
    h = Harness([1, 2, 3])
    await h.stream.catch_up(stored_up_to=3)
    assert h.stream.deliver(live(4), "create")
    assert h.sent() == [("create", 1), ("create", 2), ("create", 3), ("create", 4)]
    assert all(frame["request_id"] == "r" and frame["pk"] == 100 + frame["data"]["seq"] for frame in h.frames)


async def test_a_gap_is_filled_from_the_database_before_the_event_that_revealed_it() -> None:
    h = Harness([1, 2, 3, 4], last_seq=1)
    h.stream.backlog = None  # live
    assert not h.stream.deliver(live(4), "create")  # 2 and 3 never came over the layer
    assert h.stream.backlog is not None and len(h.tasks) == 1  # repair runs beside, not in the fan-out
    assert not h.stream.deliver(live(3), "update")  # held until the repair is done
    await h.settle()
    assert h.sent() == [("create", 2), ("create", 3), ("create", 4), ("update", 3)]
    assert h.reads == [(1, None), (3, None)] and h.stream.backlog is None  # pages of 2 after last_seq
    assert h.stream.deliver(live(5), "create")


async def test_reordered_events_are_sent_in_seq_order_once() -> None:
    h = Harness([1, 2, 3], last_seq=1)
    h.stream.backlog = None
    assert not h.stream.deliver(live(3), "create")
    assert not h.stream.deliver(live(2), "create")  # late: arrives while the repair runs
    await h.settle()
    assert h.sent() == [("create", 2), ("create", 3)]


async def test_a_duplicate_is_sent_once() -> None:
    h = Harness([1, 2])
    await h.stream.catch_up(stored_up_to=2)
    assert not h.stream.deliver(live(2), "create")  # the replay already sent it
    assert h.stream.deliver(live(3), "create")
    assert not h.stream.deliver(live(3), "create")
    assert h.sent() == [("create", 1), ("create", 2), ("create", 3)]


async def test_events_held_during_the_replay_follow_it_without_repeats() -> None:
    h = Harness([1, 2], page=1)
    replay = asyncio.ensure_future(h.stream.catch_up(stored_up_to=2))
    await asyncio.sleep(0)
    # Published while the first page is being read: seq 2 is also stored, seq 3 is newer.
    assert not h.stream.deliver(live(2), "create")
    assert not h.stream.deliver(live(2), "update")
    assert not h.stream.deliver(live(3), "create")
    await replay
    assert h.sent() == [("create", 1), ("create", 2), ("update", 2), ("create", 3)]


async def test_unsubscribing_in_the_middle_of_a_replay_stops_it() -> None:
    h = Harness([1, 2, 3, 4, 5, 6], page=2)

    def end_after_second(frame: dict) -> None:
        if frame["data"]["seq"] == 2:
            h.stream.end()

    h.on_send = end_after_second
    replay = asyncio.ensure_future(h.stream.catch_up(stored_up_to=6))
    await asyncio.sleep(0)
    h.stream.deliver(live(7), "create")  # waits in the backlog, never sent
    await replay
    assert h.sent() == [("create", 1), ("create", 2)]
    assert h.reads == [(0, None)] and h.failed == 0


async def test_a_failed_replay_fails_the_stream_and_sends_nothing() -> None:
    h = Harness([1, 2])
    h.read_error = RuntimeError("database down")
    await h.stream.catch_up(stored_up_to=2)
    assert h.failed == 1 and h.frames == []


async def test_a_failed_gap_repair_fails_the_stream() -> None:
    h = Harness([1, 2, 3], last_seq=1)
    h.stream.backlog = None
    h.read_error = RuntimeError("database down")
    assert not h.stream.deliver(live(3), "create")
    await h.settle()
    assert h.failed == 1 and h.frames == []


async def test_no_replay_when_nothing_was_stored_after_last_seq() -> None:
    h = Harness([1, 2], last_seq=2)
    await h.stream.catch_up(stored_up_to=2)
    assert h.reads == [] and h.frames == [] and h.stream.backlog is None


async def test_replays_take_turns_so_the_loop_serves_others_meanwhile() -> None:
    """After a restart many replays start at once (a shared history page wakes them together): between
    two turns of any other task the loop sends at most REPLAY_TURNS slices of frames, not every replay's page."""
    from chat.ws.streams import REPLAY_SLICE, REPLAY_TURNS

    harnesses = [Harness(list(range(1, 401)), page=200) for _ in range(20)]
    frames_since_turn, frames_between_turns, replaying = 0, [], True

    def count(frame: dict[str, Any]) -> None:
        nonlocal frames_since_turn
        frames_since_turn += 1

    async def other_work() -> None:  # an HTTP post, say, waiting for its turns
        nonlocal frames_since_turn
        while replaying:
            frames_between_turns.append(frames_since_turn)
            frames_since_turn = 0
            await asyncio.sleep(0)

    for h in harnesses:
        h.on_send = count
    other = asyncio.ensure_future(other_work())
    await asyncio.gather(*(h.stream.catch_up(stored_up_to=400) for h in harnesses))
    replaying = False
    await other
    assert all(h.sent() == [("create", seq) for seq in range(1, 401)] for h in harnesses)
    assert max(frames_between_turns) <= REPLAY_TURNS * REPLAY_SLICE
