"""What waking another process costs on this machine: `python -m bench.wake_cost [count] [--pace-ms MS] [--same-cpu]`.

A post crosses processes in turn before its fan-out (client, server, Redis, PostgreSQL,
Redis again), and at a fixed rate each of them has gone idle in between. This sends one
byte to an echo process on the other CPU and waits for it back, `count` times, `--pace-ms`
apart (default 10: idle in between, as at 50 posts/s), and prints the round trip's
percentiles and how many took over 1 ms and 3 ms. A virtual machine whose idle CPUs halt
shows a tail here that a busy CPU never sees; on such a machine the slowest messages of a
fixed-rate phase are the ones that met it (bench/README.md, session 13).
"""

import argparse
import os
import socket
import time
from array import array

from bench.stats import latency_summary


def echo_forever(sock: socket.socket) -> None:
    while data := sock.recv(64):
        sock.send(data)


def round_trips_ms(sock: socket.socket, count: int, pace_s: float) -> array:
    trips = array("f")
    for _ in range(count):
        began = time.perf_counter()
        sock.send(b"x")
        sock.recv(64)
        trips.append((time.perf_counter() - began) * 1000)
        time.sleep(pace_s)
    return trips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, nargs="?", default=2000)
    parser.add_argument("--pace-ms", type=float, default=10.0, help="idle time between round trips (0: back to back)")
    parser.add_argument("--same-cpu", action="store_true", help="both processes on CPU 0 (default: CPUs 0 and 1)")
    args = parser.parse_args()
    echo_cpu = 0 if args.same_cpu else 1
    missing = {0, echo_cpu} - os.sched_getaffinity(0)
    if missing:
        parser.error(f"this process may not run on CPU {' and '.join(map(str, sorted(missing)))}")
    ours, theirs = socket.socketpair()
    child = os.fork()
    if child == 0:
        ours.close()
        os.sched_setaffinity(0, {echo_cpu})
        echo_forever(theirs)
        os._exit(0)
    theirs.close()
    os.sched_setaffinity(0, {0})
    try:
        trips = round_trips_ms(ours, args.count, args.pace_ms / 1000)
    finally:
        ours.close()
        os.waitpid(child, 0)
    summary = latency_summary(trips)
    slow = sum(trip > 1 for trip in trips)
    stalled = sum(trip > 3 for trip in trips)
    print(
        f"{args.count} round trips, CPU 0 to {echo_cpu}, {args.pace_ms:g} ms apart: p50 {summary['p50']} ms, p99 {summary['p99']} ms,"
        f" max {summary['max']} ms; over 1 ms: {slow} ({100 * slow / args.count:.2f}%), over 3 ms: {stalled}"
    )


if __name__ == "__main__":
    main()
