"""mysite.serve.InputQueue: the per-connection input queue that replaces daphne's asyncio.Queue."""

import asyncio

import pytest

from mysite.serve import InputQueue

pytestmark = pytest.mark.asyncio


async def test_items_come_out_in_order_and_a_waiting_reader_wakes() -> None:
    queue = InputQueue()
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert [await queue.get(), await queue.get()] == [1, 2]
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not reader.done()
    queue.put_nowait(3)
    assert await asyncio.wait_for(reader, 1) == 3


async def test_a_cancelled_reader_loses_nothing_and_two_readers_share_the_items() -> None:
    queue = InputQueue()
    cancelled = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    readers = [asyncio.ensure_future(queue.get()) for _ in range(2)]
    await asyncio.sleep(0)
    queue.put_nowait("a")
    queue.put_nowait("b")
    assert sorted(await asyncio.wait_for(asyncio.gather(*readers), 1)) == ["a", "b"]
