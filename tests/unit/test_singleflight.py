"""SingleFlight: concurrent callers of a key share a call, but never one that began before they asked."""

import asyncio

import pytest

from chat.core.singleflight import SingleFlight

pytestmark = pytest.mark.asyncio


class Store:
    """A value that changes, read by calls that each take until `release` lets them finish."""

    def __init__(self) -> None:
        self.value = 0
        self.calls = 0
        self.gates: list[asyncio.Event] = []
        self.error: Exception | None = None

    async def read(self, key: str) -> tuple[str, int]:
        self.calls += 1
        seen = self.value  # what the read sees is fixed when it begins
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        if self.error is not None:
            raise self.error
        return key, seen

    async def begun(self, index: int) -> None:
        while len(self.gates) <= index:
            await asyncio.sleep(0)

    async def release(self, index: int) -> None:
        await self.begun(index)
        self.gates[index].set()


async def started(*coroutines: object) -> list[asyncio.Task[tuple[str, int]]]:
    tasks = [asyncio.ensure_future(c) for c in coroutines]  # type: ignore[call-overload]
    await asyncio.sleep(0)
    return tasks


async def test_callers_arriving_while_a_call_runs_share_the_next_one() -> None:
    store = Store()
    shared = SingleFlight(store.read)
    [first] = await started(shared("a"))
    waiting = await started(*(shared("a") for _ in range(50)))
    await store.release(0)
    await store.release(1)
    assert await first == ("a", 0)
    assert await asyncio.gather(*waiting) == [("a", 0)] * 50
    assert store.calls == 2


async def test_a_caller_never_gets_a_call_that_began_before_it_asked() -> None:
    store = Store()
    shared = SingleFlight(store.read)
    [early] = await started(shared("a"))
    await store.begun(0)
    store.value = 1  # stored after the first call began: the later callers must see it
    late = await started(shared("a"), shared("a"))
    await store.release(0)
    assert await early == ("a", 0)
    assert not any(task.done() for task in late)  # they wait for a call of their own...
    await store.release(1)
    assert await asyncio.gather(*late) == [("a", 1), ("a", 1)]  # ...one, shared
    assert store.calls == 2


async def test_keys_do_not_share() -> None:
    store = Store()
    shared = SingleFlight(store.read)
    tasks = await started(shared("a"), shared("b"))
    await store.release(0)
    await store.release(1)
    assert sorted(await asyncio.gather(*tasks)) == [("a", 0), ("b", 0)]
    assert store.calls == 2


async def test_a_caller_going_away_does_not_cancel_the_others_call() -> None:
    store = Store()
    shared = SingleFlight(store.read)
    [first] = await started(shared("a"))
    leaving, staying = await started(shared("a"), shared("a"))
    leaving.cancel()
    await store.release(0)
    await store.release(1)
    assert await first == ("a", 0)
    assert await staying == ("a", 0)
    assert leaving.cancelled()
    assert store.calls == 2


async def test_a_failed_call_fails_its_callers_and_the_next_call_starts_afresh() -> None:
    store = Store()
    shared = SingleFlight(store.read)
    [first] = await started(shared("a"))
    failing = await started(shared("a"), shared("a"))
    await store.release(0)
    assert await first == ("a", 0)
    store.error = RuntimeError("database down")
    await store.release(1)
    for task in failing:
        with pytest.raises(RuntimeError, match="database down"):
            await task
    store.error = None
    [again] = await started(shared("a"))
    await store.release(2)
    assert await again == ("a", 0)
    assert store.calls == 3
