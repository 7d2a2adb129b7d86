"""The orchestrator's side of the client workers: start them, send a phase command, show progress, gather replies."""

import multiprocessing
import time
from array import array
from typing import Any

from tqdm import tqdm

from bench.client import COUNTER_SLOTS, ClientSpec, Options, worker_main


class PhaseTimeout(Exception):
    """A phase did not finish within its time bound: the scenario is abandoned, the run goes on."""


class Pool:
    """Worker processes (each an asyncio loop) sharing one scenario's clients round robin."""

    def __init__(self, specs: list[ClientSpec], options: Options, workers: int) -> None:
        # fork: workers start in milliseconds and inherit nothing but plain data (no sockets are open here).
        ctx = multiprocessing.get_context("fork")
        workers = max(1, min(workers, len(specs)))
        self.counters = ctx.Array("q", workers * COUNTER_SLOTS, lock=False)
        self.conns = []
        self.procs = []
        for slot in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, self.counters, slot, specs[slot::workers], options), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def counter(self, index: int) -> int:
        """The sum over workers of one counter slot (CONNECTED, RECEIVED, SENT or ACKED)."""
        return sum(self.counters[i] for i in range(index, len(self.counters), COUNTER_SLOTS))

    def call(
        self, command: str, payload: dict[str, Any], *, timeout: float, desc: str = "", total: int = 0,
        slot: int | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Send one command to every worker and wait for all replies, drawing a bar over counter `slot`."""
        for conn in self.conns:
            conn.send((command, payload))
        replies: list[dict[str, Any] | None] = [None] * len(self.conns)
        deadline = time.monotonic() + timeout
        start = self.counter(slot) if slot is not None else 0
        with tqdm(total=total or None, desc=desc, leave=False, unit="", dynamic_ncols=True, mininterval=0.5, disable=not desc) as bar:
            while any(reply is None for reply in replies):
                for i, conn in enumerate(self.conns):
                    if replies[i] is None and conn.poll(0.05):
                        replies[i] = conn.recv()
                if slot is not None:
                    bar.n = self.counter(slot) - start
                    bar.refresh()
                if time.monotonic() > deadline:
                    raise PhaseTimeout(f"{command} took longer than {timeout:.0f} s")
                if any(not proc.is_alive() for proc in self.procs):
                    raise RuntimeError(f"a client worker died during {command}")
        errors = [reply["error"] for reply in replies if reply and "error" in reply]
        if errors:
            raise RuntimeError(f"{command} failed in a worker: {errors[0]}")
        return replies  # type: ignore[return-value]

    def close(self) -> None:
        """Ask the workers to exit; kill those that do not (e.g. after a timeout)."""
        for conn in self.conns:
            try:
                conn.send(("exit", {}))
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()


def floats(chunks: list[bytes]) -> array:
    """Concatenate the float arrays the workers sent as bytes."""
    values = array("f")
    for chunk in chunks:
        values.frombytes(chunk)
    return values
