"""`python -m bench`: measure the chat server's fan-out, latency and connection capacity (see bench/README.md)."""

import argparse
import os
import shlex
import sys
from pathlib import Path
from urllib.parse import urlsplit

from bench.client import Options
from bench.report import finish, plot, ratios_table, table, write_json
from bench.run import run
from bench.scenarios import Plan
from bench.server import ServerConfig, parse_cpus, pin_to

# The standard set (`make bench`): the default deployment and the raw-websockets ceiling (the baseline
# of every issue-16 ratio) measured in full, then the comparisons (the stock-Channels floor, core layer,
# uvicorn, two processes) on the one-room scenarios only, all within STANDARD_BUDGET_S.
STANDARD_CONFIGS = "daphne-pubsub-1,raw-memory-1,stock-pubsub-1,daphne-core-1,uvicorn-pubsub-1,daphne-pubsub-2"
STANDARD_BUDGET_S = 900.0
HERE = Path(__file__).resolve().parent


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--configs",
        default=STANDARD_CONFIGS,
        help="comma-separated <daphne|uvicorn|stock>-<core|pubsub>-<processes>, or raw-memory-1; stock: the stock-Channels"
        " floor, bench/stock.py; raw: the raw-websockets ceiling, bench/raw.py (default: %(default)s)",
    )
    p.add_argument(
        "--full-first-only",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run idle, many-rooms and the storm only on the first configuration and the raw ceiling (default: on)",
    )
    p.add_argument(
        "--compare-subscribers",
        type=ints,
        default=[100, 1000],
        help="one-room sizes for the configurations after the first (default: 100,1000)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=STANDARD_BUDGET_S,
        help="seconds the whole run may take; what no longer fits is skipped and says so (default: %(default)s)",
    )
    p.add_argument("--scenarios", default="idle,room,rooms,storm,http", help="any of idle,room,rooms,storm,http (default: %(default)s)")
    p.add_argument("--subscribers", type=ints, default=[10, 100, 1000], help="one-room sizes (default: 10,100,1000)")
    p.add_argument(
        "--burst-frames",
        type=int,
        default=100_000,
        help="burst size in delivered frames; messages = this / subscribers (default: %(default)s)",
    )
    p.add_argument("--burst-min-messages", type=int, default=20)
    p.add_argument("--burst-max-messages", type=int, default=5_000)
    p.add_argument("--burst-seconds", type=float, default=10.0, help="time bound of a burst's sending")
    p.add_argument("--window", type=int, default=16, help="outstanding create_message requests in a burst")
    p.add_argument("--rate", type=float, default=50.0, help="fixed-rate phase: messages per second")
    p.add_argument("--rate-subscribers", type=ints, default=[100, 1000], help="room sizes with a fixed-rate phase")
    p.add_argument("--rate-seconds", type=float, default=5.0)
    p.add_argument("--rate-repeats", type=int, default=5, help="runs of the fixed-rate phase in rooms of <= 100 (default: 5)")
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--room-users", type=int, default=10)
    p.add_argument("--room-user-rate", type=float, default=1.0, help="messages per second per user (many rooms)")
    p.add_argument("--rooms-seconds", type=float, default=10.0)
    p.add_argument(
        "--rooms-hold-rate", type=float, default=600.0,
        help="many rooms, second phase: offer this many posts/s in all when the first accepted as many (0: off; default: 600)",
    )  # fmt: skip
    p.add_argument("--idle", type=int, default=10_000, help="idle authenticated connections")
    p.add_argument("--http-posts", type=int, default=1000, help="HTTP posting: posts, from 4 threads (default: 1000)")
    p.add_argument("--storm-subscribers", type=int, default=2000, help="reconnect storm: subscribers (default: 2000)")
    p.add_argument("--storm-messages", type=int, default=200, help="reconnect storm: messages posted meanwhile (default: 200)")
    p.add_argument("--storm-max-backoff", type=float, default=2.0, help="reconnect storm: clients' backoff cap (s)")
    p.add_argument(
        "--storm-kill-after", type=float, default=15.0, help="reconnect storm: SIGKILL a server SIGTERM has not ended by then (s)"
    )  # fmt: skip
    p.add_argument("--no-join", dest="join", action="store_false", help="subscribers only subscribe, no join_room")
    p.add_argument(
        "--pin", metavar="SERVER_CPUS:CLIENT_CPUS", default=None,
        help="pin the servers and the load generator to CPU sets (taskset), e.g. 0:1 as issue 16 measured",
    )  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="client worker processes")
    p.add_argument("--connect-concurrency", type=int, default=100, help="handshakes in flight per worker")
    p.add_argument("--connect-retries", type=int, default=2, help="reconnects of a client whose handshake failed")
    p.add_argument("--connect-timeout", type=float, default=120.0, help="bound of a connect/join phase (s)")
    p.add_argument("--drain-timeout", type=float, default=60.0, help="bound of waiting for deliveries (s)")
    p.add_argument("--drain-idle-timeout", type=float, default=10.0, help="give up after this long without progress")
    p.add_argument("--auth", choices=["header", "query"], default="header", help="token as header or ?token=")
    p.add_argument("--message-size", type=int, default=100, help="message text length (<= 500)")
    p.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "bench"))
    p.add_argument("--keep-db", action="store_true", help="reuse the database instead of recreating it")
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4"))
    p.add_argument("--out", type=Path, default=HERE / "results", help="directory for JSON, plots and server logs")
    p.add_argument(
        "--source", type=Path, default=None, help="serve the project in this directory instead of this checkout (e.g. an exported commit)"
    )
    p.add_argument("--no-plots", dest="plots", action="store_false")
    p.add_argument("--smoke", action="store_true", help="a tiny run of every scenario (seconds), for tests")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configs = [ServerConfig.parse(c) for c in args.configs.split(",") if c.strip()]
    # Only ever loopback: this tool opens thousands of connections as fast as it can (servers bind 127.0.0.1).
    for url in (args.postgres_url, args.redis_url):
        if urlsplit(url).hostname not in {"127.0.0.1", "localhost"}:
            raise SystemExit(f"bench only targets 127.0.0.1, not {urlsplit(url).hostname}")
    plan = Plan(
        room_subscribers=args.subscribers, compare_subscribers=args.compare_subscribers, burst_frames=args.burst_frames,
        burst_min_messages=args.burst_min_messages,
        burst_max_messages=args.burst_max_messages, burst_seconds=args.burst_seconds, window=args.window,
        rate=args.rate, rate_subscribers=args.rate_subscribers, rate_seconds=args.rate_seconds,
        rate_repeats=args.rate_repeats, rooms=args.rooms, room_users=args.room_users,
        room_user_rate=args.room_user_rate, rooms_seconds=args.rooms_seconds, rooms_hold_rate=args.rooms_hold_rate,
        idle=args.idle, storm_subscribers=args.storm_subscribers, storm_messages=args.storm_messages,
        storm_max_backoff=args.storm_max_backoff, storm_kill_after=args.storm_kill_after, join=args.join,
        http_posts=args.http_posts, connect_timeout=args.connect_timeout, drain_timeout=args.drain_timeout,
        drain_idle_timeout=args.drain_idle_timeout, workers=args.workers,
        scenarios=tuple(s.strip() for s in args.scenarios.split(",") if s.strip()),
    )  # fmt: skip
    if args.smoke:
        plan = Plan(room_subscribers=[3], burst_frames=15, burst_min_messages=5, burst_max_messages=5,
                    burst_seconds=5, window=4, rate=10, rate_subscribers=[3], rate_seconds=0.5, rate_repeats=2,
                    rooms=2, room_users=2, room_user_rate=2, rooms_seconds=1, rooms_hold_rate=4, idle=5,
                    storm_subscribers=6, storm_before=3, storm_messages=5, storm_max_backoff=0.5, storm_kill_after=3,
                    http_posts=8, connect_timeout=30,
                    drain_timeout=15, drain_idle_timeout=5, workers=2, scenarios=plan.scenarios,
                    join=plan.join)  # fmt: skip
    server_cpus = client_cpus = None
    if args.pin:
        server_text, _, client_text = args.pin.partition(":")
        server_cpus, client_cpus = parse_cpus(server_text), parse_cpus(client_text)
        if not server_cpus or not client_cpus or server_cpus & client_cpus:
            raise SystemExit("--pin SERVER_CPUS:CLIENT_CPUS: two disjoint, non-empty CPU sets, e.g. 0:1")
        pin_to(client_cpus)  # this orchestrator too: it is part of the load generator
    options = Options(
        auth=args.auth,
        message_size=args.message_size,
        connect_concurrency=args.connect_concurrency,
        connect_retries=args.connect_retries,
        cpus=sorted(client_cpus) if client_cpus else None,
    )
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    args.out.mkdir(parents=True, exist_ok=True)

    def checkpoint(partial: dict) -> None:
        write_json(finish(partial), args.out / f"{partial['meta']['run_id']}.json")

    document = run(configs=configs, plan=plan, options=options, postgres_url=args.postgres_url,
                   database=args.database, redis_url=args.redis_url, fresh_db=not args.keep_db, out_dir=args.out,
                   command=command.strip(), full_first_only=args.full_first_only,
                   source=args.source.resolve() if args.source else None, budget=args.budget, checkpoint=checkpoint,
                   server_cpus=server_cpus)  # fmt: skip
    document = finish(document)
    stem = args.out / document["meta"]["run_id"]
    write_json(document, stem.with_suffix(".json"))
    written = [stem.with_suffix(".json")]
    if args.plots:
        written += plot(document, stem)
    print(table(document))
    print(ratios_table(document))
    for name, checks in document["targets"].items():
        for c in checks:
            print(f"{'PASS' if c['ok'] else 'FAIL'}  {name}: {c['target']} (measured: {c['value']})")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
