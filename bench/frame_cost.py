"""Per-frame server CPU of this process's fan-out alone: `python -m bench.frame_cost [subscribers] [events]`.

One create event after another goes through `LocalFanout.deliver` to N local RoomConsumers,
each with one message-stream subscription and a socket that only counts frames; prints the
best of 5 rounds in microseconds of process CPU per frame. No daphne, autobahn or network:
this is the Python the project adds per delivered frame. Needs the channel layer the
settings name (Redis unless CHANNEL_LAYER says otherwise), for the subscriptions' group_add.
"""

import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any


async def measure(subscribers: int, events: int) -> float:
    """Best-of-5 microseconds of process CPU per delivered frame."""
    from chat.events import groups
    from chat.events.fanout import local_fanout
    from chat.events.streams import message_observer
    from chat.ws.consumer import RoomConsumer
    from chat.ws.streams import MessageStream

    sent = [0]

    def count(texts: Sequence[str]) -> bool:  # as mysite.serve's WebSocketSend.text_frames: written
        sent[0] += len(texts)
        return True

    async def no_history(room_id: int, after_seq: int, before_seq: int | None) -> tuple[list[dict[str, Any]], bool]:
        return [], False

    async def no_fail() -> None:
        return None

    for n in range(subscribers):
        consumer = RoomConsumer()
        consumer.scope, consumer._text_frames, consumer.groups, consumer.user = {"type": "websocket"}, count, set(), None
        stream = MessageStream(1, f"r{n}", last_seq=0, send=consumer.push, read_history=no_history, spawn=consumer.detach, fail=no_fail)
        stream.backlog = None  # live at once: no replay
        consumer.message_streams[(1, f"r{n}")] = stream
        await message_observer.subscribe(consumer, room_id=1, request_id=f"r{n}")
    data = json.dumps({"id": 1, "room": 1, "seq": 1, "user": {"id": 1, "username": "u"}, "text": "x" * 100, "client_id": None})
    fanout, best, seq = local_fanout(), float("inf"), 0
    for _ in range(5):
        started, before = time.process_time(), sent[0]
        for _ in range(events):
            seq += 1
            body = {"room": 1, "seq": seq, "pk": seq, "data_json": data}
            message = {
                "type": groups.MESSAGE_EVENT,
                "group": groups.room_messages_group(1),
                "action": "create",
                "committed_at": time.time(),
                "body": body,
            }
            await fanout.deliver(message)
        best = min(best, (time.process_time() - started) / (sent[0] - before) * 1e6)
    return best


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    import django

    django.setup()
    subscribers, events = (int(arg) for arg in (sys.argv[1:] + ["1000", "20"][len(sys.argv) - 1 :])[:2])
    print(f"{subscribers} subscribers: {asyncio.run(measure(subscribers, events)):.2f} us of CPU per frame (best of 5 x {events} events)")


if __name__ == "__main__":
    main()
