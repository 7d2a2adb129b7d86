"""One benchmark run: prepare the database, then for each configuration start its servers and run the scenarios."""

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.client import Options
from bench.scenarios import Context, Plan, run_scenario
from bench.server import (
    REPORTED_ENV,
    ROOT,
    ServerConfig,
    ServerGroup,
    drop_redis_keys,
    lock_database,
    maintain_database,
    prepare_database,
    raise_nofile_limit,
    server_env,
)
from bench.users import register_users

# Seconds kept for writing the result and plots; a configuration or scenario starts only with this much left.
FINISH_RESERVE_S = 10.0
MIN_CONFIG_S = 30.0
MIN_SCENARIO_S = 15.0


def run(
    *, configs: list[ServerConfig], plan: Plan, options: Options, postgres_url: str, database: str, redis_url: str,
    fresh_db: bool, out_dir: Path, command: str, full_first_only: bool = False, source: Path | None = None,
    budget: float | None = None, checkpoint: Callable[[dict[str, Any]], None] | None = None,
    server_cpus: set[int] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Measure every configuration with the plan, within `budget` seconds; return the result document.

    `checkpoint` gets the document so far after every scenario, so a run cut short still leaves its figures.
    `server_cpus` pins every server process (and `options.cpus` the client workers), as `taskset` would.
    """
    django = any(config.django for config in configs)
    # The budget starts once no other run holds the database (the raw ceiling alone needs none).
    lock = lock_database(postgres_url, database) if django else None
    started = datetime.now(UTC)
    t0 = time.monotonic()
    end = t0 + budget if budget else float("inf")
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    loadavg_start = list(os.getloadavg())
    if loadavg_start[0] > 1.0:
        tqdm.write(f"bench: warning: load average {loadavg_start[0]:.1f} before starting: other work skews the figures",
                   file=sys.stderr)  # fmt: skip
    nofile = raise_nofile_limit()
    if "idle" in plan.scenarios and plan.idle + 100 > nofile:
        raise SystemExit(f"open-file limit {nofile} is too low for {plan.idle} idle connections")
    source = source or ROOT
    db_url = ""
    if django:
        tqdm.write(f"bench: preparing database {database!r}", file=sys.stderr)
        db_url = prepare_database(postgres_url, database, fresh=fresh_db, source=source)
    # Pub/sub channel names are global to the Redis server: a per-run prefix keeps runs and test suites apart.
    redis_prefix = f"bench{os.getpid()}x{int(time.time())}"
    tokens: list[str] = []
    results: list[dict[str, Any]] = []
    maintenance: str | None = None

    def document() -> dict[str, Any]:
        finished = datetime.now(UTC)
        return {
            "meta": {
                "run_id": run_id,
                "started": started.isoformat(timespec="seconds"),
                "finished": finished.isoformat(timespec="seconds"),
                "duration_s": round((finished - started).total_seconds(), 1),
                "budget_s": budget,
                # Other work on the machine skews latency and rates (frames per server CPU-second much less).
                "loadavg_at_start": loadavg_start,
                "loadavg_at_end": list(os.getloadavg()),
                "command": command,
                "host": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "machine": platform.machine(),
                    "kernel": platform.release(),
                },  # fmt: skip
                "database": database,
                "database_maintenance": maintenance,
                "source": str(source),
                "source_commit": git_commit(source),
                "plan": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(plan).items()},
                "options": vars(options),
                "pinned": {"server_cpus": sorted(server_cpus) if server_cpus else None, "client_cpus": options.cpus},
                "baseline": next((c.name for c in configs if c.server == "raw"), None),
                "users": len(tokens),
            },
            "configs": results,
        }

    def plan_of(position: int, config: ServerConfig) -> tuple[tuple[str, ...], list[int]]:
        """The scenarios and room sizes of one configuration: the first and the raw ceiling (the baseline of
        every ratio) in full, the others the one-room comparison only (with --full-first-only)."""
        scenarios, subscribers = plan.scenarios, plan.room_subscribers
        if full_first_only and position > 0:
            if config.server == "raw":
                subscribers = plan.compare_subscribers or subscribers
            else:
                scenarios = tuple(s for s in scenarios if s == "room")
                subscribers = plan.compare_subscribers or subscribers
        if config.server in {"raw", "stock"}:
            # No after_seq across a restart: the raw ceiling forgets everything, the stock baseline has no replay;
            # neither has the HTTP API.
            scenarios = tuple(s for s in scenarios if s not in ("storm", "http"))
        return scenarios, subscribers

    def weight(position: int, config: ServerConfig) -> float:
        """A configuration's share of the budget: roughly what its scenarios cost (idle and storm most)."""
        scenarios, subscribers = plan_of(position, config)
        cost = {"idle": 3.0, "rooms": 2.0, "storm": 3.0}
        return sum(cost.get(s, 0.0) for s in scenarios) + ("room" in scenarios) * len(subscribers) or 1.0

    weights = [weight(i, c) for i, c in enumerate(configs)]
    for position, config in enumerate(configs):
        scenarios, subscribers = plan_of(position, config)
        # Each configuration gets the time left in proportion to what its scenarios cost.
        remaining = end - time.monotonic() - FINISH_RESERVE_S
        share = remaining * weights[position] / sum(weights[position:])
        config_started = time.monotonic()
        env = server_env(config=config, database_url=db_url, redis_url=redis_url, redis_prefix=redis_prefix)
        servers = ServerGroup(config, env, out_dir / "logs" / run_id, source=source, cpus=server_cpus)
        entry: dict[str, Any] = {
            "name": config.name, "server": config.server, "layer": config.layer, "processes": config.processes,
            "env": {key: env[key] for key in REPORTED_ENV if key in env}, "scenarios": [],
        }  # fmt: skip
        results.append(entry)
        if remaining < MIN_CONFIG_S:
            entry["error"] = "skipped: the run's time budget is spent"
            continue
        tqdm.write(f"bench: {config.name}: starting {config.processes} {config.server} process(es)", file=sys.stderr)
        try:
            servers.start()
        except RuntimeError as exc:
            entry["error"] = str(exc)
            servers.stop()
            continue
        try:
            need = max(plan.users_needed(), 1)
            if not tokens and config.django:
                with tqdm(total=need, desc="register users", leave=False, file=sys.stderr, mininterval=0.5) as bar:
                    tokens = register_users(f"http://127.0.0.1:{servers.ports[0]}", f"b{run_id[2:8]}{run_id[9:15]}",
                                            need, progress=bar.update)  # fmt: skip
            # The raw ceiling takes any token; one per user, as the project's servers get.
            config_tokens = tokens or [f"raw-{i}" for i in range(need)]
            ctx = Context(servers=servers, tokens=config_tokens, options=options, plan=plan,
                          tag=f"{run_id}-{config.name}", redis_url=redis_url, redis_prefix=redis_prefix)  # fmt: skip
            ctx.deadline = min(end - FINISH_RESERVE_S, config_started + share)
            steps: list[tuple[Any, ...]] = []
            if "idle" in scenarios:
                steps.append(("idle",))
            if "room" in scenarios:
                steps += [("room", n) for n in subscribers]
            # The storm before many rooms: that one's queue (offered more than is accepted) takes what is left.
            if "storm" in scenarios:
                steps.append(("storm",))
            if "http" in scenarios:
                steps.append(("http",))
            if "rooms" in scenarios:
                steps.append(("rooms",))
            config_deadline = ctx.deadline
            for left, step in zip(range(len(steps), 0, -1), steps, strict=True):
                # Each scenario may take up to 1.5x its even share of the time left, so one slow phase
                # (e.g. 10,000 handshakes) cannot starve the rest.
                now = time.monotonic()
                ctx.deadline = config_deadline if left == 1 else min(config_deadline, now + (config_deadline - now) * 1.5 / left)
                if ctx.remaining() < MIN_SCENARIO_S:
                    name = f"{step[0]}-{step[1]}" if len(step) > 1 else step[0]
                    entry["scenarios"].append({"name": name, "kind": step[0], "error": "skipped: time budget spent"})
                    continue
                if db_url:
                    maintenance = maintain_database(db_url) or maintenance
                for result in run_scenario(ctx, *step):
                    entry["scenarios"].append(result)
                    tqdm.write(f"bench: {config.name}: {one_line(result)}", file=sys.stderr)
                if checkpoint:
                    checkpoint(document())
                if not servers.alive():
                    entry["error"] = "a server process died: see its log"
                    break
            entry["layer_observed"] = observed_layer(ctx.layer_seen)
            entry["redis_observation"] = ctx.layer_seen
        finally:
            servers.stop()
            drop_redis_keys(redis_url, redis_prefix)
    if lock is not None:
        lock.close()
    return document()


def git_commit(source: Path) -> str | None:
    """The commit the served tree is at, with `+dirty` when it has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=source, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=source,
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def observed_layer(seen: dict[str, Any]) -> str | None:
    """Which layer the servers really used, judged from Redis while clients were connected."""
    if not seen:
        return None
    if seen.get("pubsub_channels"):
        return "pubsub"
    return "core" if seen.get("keys") else "unknown"


def one_line(result: dict[str, Any]) -> str:
    """A scenario's headline figures, for the console."""
    if "error" in result:
        return f"{result['name']}: FAILED {result['error']}"
    if result["kind"] == "storm":
        return (f"{result['name']}: caught up in {result['seconds']} s after the restart ({result['from_sigterm_s']} s "
                f"from SIGTERM), {result['reconnected']} reconnected, {result['caught_up']}/{result['subscribers']} "
                f"caught up, lost {result['lost']} dup {result['duplicates']} ooo {result['out_of_order']}")  # fmt: skip
    if result["kind"] == "http":
        return (f"{result['name']}: {result['messages_acked']}/{result['messages_posted']} accepted, "
                f"{result['messages_per_s']}/s, server CPU {result['server_cpu_s']} s")  # fmt: skip
    if result["kind"] == "idle":
        c = result["connect"]
        return (f"{result['name']}: {c['ok']}/{c['clients']} open in {c['seconds']} s, "
                f"{result['server_rss_per_connection_kb']} KB/conn, settle {result['leave']['settle_s']} s")  # fmt: skip
    lat = result["latency_ms"]
    return (
        f"{result['name']}: {result['delivered_frames']}/{result['expected_frames']} frames, "
        f"{result['frames_per_s']}/s, {result['frames_per_server_cpu_s']}/server-CPU-s, "
        f"p50 {lat['p50']} p99 {lat['p99']} max {lat['max']} ms, lost {result['lost']} dup {result['duplicates']} "
        f"ooo {result['out_of_order']} (drain: {'/'.join(result['drain_ended'])}), "
        f"join {result['connect']['seconds']} s, settle {result['leave']['settle_s']} s"
    )
