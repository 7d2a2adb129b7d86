"""db_action: a sync action on a worker thread, and what its thread leaves for the loop (await_after_thread)."""

import asyncio
import threading
from typing import Any

import pytest

from chat.core.db import await_after_thread, db_action


class Consumer:
    """Just enough of a consumer: actions that record where and in which order things ran."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.thread_may_finish = threading.Event()

    async def record(self, what: str) -> None:
        self.log.append(f"{what} on {threading.current_thread().name}")

    @db_action()
    def post(self, **params: Any) -> str:
        await_after_thread(self.record, "event")
        self.log.append("stored")
        return "answer"

    @db_action()
    def post_then_fail(self, **params: Any) -> str:
        await_after_thread(self.record, "event")
        raise ValueError("refused after committing")

    @db_action()
    def slow_post(self, **params: Any) -> str:
        self.thread_may_finish.wait(5)
        await_after_thread(self.record, "event")
        return "answer"


@pytest.mark.asyncio
async def test_what_the_thread_leaves_runs_on_the_loop_before_the_action_answers() -> None:
    consumer = Consumer()
    assert await consumer.post() == "answer"
    assert consumer.log == ["stored", f"event on {threading.current_thread().name}"]


@pytest.mark.asyncio
async def test_a_failing_action_still_awaits_what_it_committed_then_raises() -> None:
    consumer = Consumer()
    with pytest.raises(ValueError, match="refused after committing"):
        await consumer.post_then_fail()
    assert consumer.log == [f"event on {threading.current_thread().name}"]


@pytest.mark.asyncio
async def test_a_connection_closing_mid_action_does_not_strand_its_events() -> None:
    consumer = Consumer()
    action = asyncio.ensure_future(consumer.slow_post())
    await asyncio.sleep(0.05)
    action.cancel()  # the connection went away while the thread was storing
    consumer.thread_may_finish.set()
    with pytest.raises(asyncio.CancelledError):
        await action
    for _ in range(100):
        if consumer.log:
            break
        await asyncio.sleep(0.01)
    assert consumer.log == [f"event on {threading.current_thread().name}"]


def test_outside_a_db_action_it_runs_at_once() -> None:
    ran: list[int] = []

    async def publish(value: int) -> None:
        ran.append(value)

    await_after_thread(publish, 1)
    assert ran == [1]
