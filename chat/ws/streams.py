"""One message-stream subscription (api_docs/PROTOCOL.md §2): replay, then live events, gap-free and in seq order.

The stream knows nothing of ASGI or the channel layer: it is given `send` (write one
text frame to the client) and `read_history` (a page of stored messages), so it can
be tested with plain asyncio.
"""

import asyncio
import contextlib
import json
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from chat.events.groups import PUSH_CREATE
from chat.ops import metrics

logger = logging.getLogger(__name__)

# Send text frames to the client, without waiting (ProtocolConsumer.push).
Send = Callable[..., None]
# A live event body, as chat.events.streams.message_event builds it: "seq", "pk" and the
# §1 Message encoded ("data_json"); stored messages are read back in the same shape.
Event = dict[str, Any]
# A page of the room's stored messages (seq ascending) with after_seq < seq (< before_seq
# when given), and whether more follow.
ReadHistory = Callable[[int, int, int | None], Awaitable[tuple[list[Event], bool]]]
# Run a coroutine beside the connection's frames (cancelled when the connection closes).
Spawn = Callable[[Coroutine[Any, Any, None]], object]
# What to do when catching up fails: the consumer closes the connection with 1011.
Fail = Callable[[], Awaitable[None]]


# A replay's frames go out without the loop getting a turn in between (a send only
# queues the frame), and a shared history page wakes all its subscribers at once: after
# a restart the loop ran thousands of frames per turn, and an HTTP post, waiting a few
# turns, took 400 ms. Replays now take turns: a few at a time, a slice each.
REPLAY_SLICE = 50
REPLAY_TURNS = 4
_replay_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _replay_turn() -> AsyncIterator[None]:
    """One slice of a replay: wait for one of the loop's REPLAY_TURNS, and let others run before it."""
    loop = asyncio.get_running_loop()
    turns = _replay_turns.get(loop)
    if turns is None:
        turns = _replay_turns[loop] = asyncio.Semaphore(REPLAY_TURNS)
    async with turns:
        await asyncio.sleep(0)
        yield


def message_push(action: str, request_id: Any, pk: int, data_json: str) -> str:
    """A message-stream push frame around already encoded message JSON."""
    return f'{{"action": "{action}", "request_id": {json.dumps(request_id)}, "pk": {pk}, "data": {data_json}}}'


class MessageStream:
    """Where one subscription to a room's messages stands, and how it moves on.

    While `backlog` is a deque the stream is catching up from the database (after
    `last_seq`, or across a gap the layer left) and live events wait in it; once
    `ended`, it sends nothing more.
    """

    def __init__(
        self, room_id: int, request_id: Any, *, last_seq: int, send: Send, read_history: ReadHistory, spawn: Spawn, fail: Fail
    ) -> None:
        self.room_id = room_id
        self.request_id = request_id
        self.last_seq = last_seq
        # Subscribed before the consumer reads where the room stands, so events wait here
        # until the first catch-up is done: nothing falls in between.
        self.backlog: deque[tuple[Event, str]] | None = deque()
        self.ended = False
        self.send = send  # public: the consumer also ends the subscription through it (subscription_ended)
        self._read_history = read_history
        self._spawn = spawn
        self._fail = fail
        self._create_head: str | None = None

    def end(self) -> None:
        """Stop sending: a replay or gap repair in progress stops at its next step."""
        self.ended = True

    async def catch_up(self, stored_up_to: int | None = None) -> None:
        """Send what the database has after last_seq, then the live events held meanwhile; then go live.

        If that fails the connection is closed: the client resumes with after_seq, whereas
        carrying on would leave a silent gap or a subscription stuck in catch-up.
        """
        try:
            await self._replay_then_go_live(stored_up_to)
        except Exception:
            logger.exception("catching up room %s for request_id %r failed", self.room_id, self.request_id)
            await self._fail()

    def deliver(self, event: Event, action: str) -> bool:
        """Forward one live event, keeping `create`s gap-free and in seq order; True if sent now.

        Called by the process's fan-out for every local subscriber in turn, so it never
        waits: a gap is filled by a task of the connection's own.
        """
        if self.backlog is not None:
            self.backlog.append((event, action))
            return False
        if action == PUSH_CREATE:
            if event["seq"] <= self.last_seq:
                return False  # already sent by a replay or a gap fill
            if event["seq"] > self.last_seq + 1:
                self.backlog = deque([(event, action)])
                self._spawn(self.catch_up())
                return False
            self.last_seq = event["seq"]
        self._send_event(event, action)
        return True

    async def _replay_then_go_live(self, stored_up_to: int | None) -> None:
        # stored_up_to: the room's last seq, read after subscribing; anything newer is in the backlog.
        if stored_up_to is None or self.last_seq < stored_up_to:
            await self._send_missed()
        backlog = self.backlog
        while backlog and not self.ended:
            event, action = backlog.popleft()
            if action == PUSH_CREATE:
                if event["seq"] <= self.last_seq:
                    continue  # the replay already sent it
                if event["seq"] > self.last_seq + 1:
                    # The layer dropped or reordered events: the database has what is missing.
                    metrics.events_recovered(await self._send_missed(before_seq=event["seq"]))
                self.last_seq = event["seq"]
            self._send_event(event, action)
        self.backlog = None  # no await since the loop's last check: nothing can slip in

    async def _send_missed(self, before_seq: int | None = None) -> int:
        """Send, as `create` events, the stored messages the stream has not sent (before before_seq)."""
        has_more, sent = True, 0
        while has_more and not self.ended:
            messages, has_more = await self._read_history(self.room_id, self.last_seq, before_seq)
            for start in range(0, len(messages), REPLAY_SLICE):
                replay_slice = messages[start : start + REPLAY_SLICE]
                async with _replay_turn():
                    if self.ended:
                        return sent
                    self.send(*[self._frame(message, PUSH_CREATE) for message in replay_slice])  # in one write
                    self.last_seq = replay_slice[-1]["seq"]
                    sent += len(replay_slice)
        return sent

    def _send_event(self, event: Event, action: str) -> None:
        self.send(self._frame(event, action))

    def _frame(self, event: Event, action: str) -> str:
        if action == PUSH_CREATE:  # the bulk of a stream: its frame's head is built once per subscription
            if self._create_head is None:
                self._create_head = f'{{"action": "{PUSH_CREATE}", "request_id": {json.dumps(self.request_id)}, "pk": '
            return f'{self._create_head}{event["pk"]}, "data": {event["data_json"]}}}'
        return message_push(action, self.request_id, event["pk"], event["data_json"])
