"""The scenarios: one busy room (burst and fixed rate), many rooms, idle connections."""

import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from websockets.sync.client import connect as sync_connect

from bench.client import ACKED, CONNECTED, RECEIVED, ClientSpec, Options
from bench.pool import Pool, floats
from bench.server import ServerGroup, machine_busy_cpu_seconds, redis_observation, safe_cpu_seconds
from bench.stats import latency_summary

# The latency target is "5 runs out of 5" at 100 subscribers; bigger rooms' fixed-rate phase runs once.
REPEAT_MAX_SUBSCRIBERS = 100
CORRECTNESS_KEYS = ("lost", "duplicates", "out_of_order", "unexpected", "stale_deliveries", "closed_by_server")


@dataclass
class Plan:
    """The sizes and time bounds of one run's scenarios."""

    room_subscribers: list[int] = field(default_factory=lambda: [10, 100, 1000])
    compare_subscribers: list[int] | None = None  # room sizes for the configurations after the first
    burst_frames: int = 100_000  # messages per burst = this / subscribers (bounded below by burst_min_messages)
    burst_min_messages: int = 20
    burst_max_messages: int = 5_000
    burst_seconds: float = 10.0
    window: int = 16
    rate: float = 50.0
    rate_subscribers: list[int] = field(default_factory=lambda: [100, 1000])
    rate_seconds: float = 5.0
    rate_repeats: int = 5  # the fixed-rate phase runs this many times in rooms of <= REPEAT_MAX_SUBSCRIBERS
    rooms: int = 100
    room_users: int = 10
    room_user_rate: float = 1.0
    rooms_seconds: float = 10.0
    rooms_hold_rate: float = 600.0  # then offer this many posts/s in all (if it accepted that many), for p99
    idle: int = 10_000
    storm_subscribers: int = 2_000
    storm_before: int = 10  # messages everyone has before the restart (so after_seq > 0)
    storm_messages: int = 200  # posted over HTTP to the restarted server while its clients reconnect
    storm_initial_backoff: float = 0.1  # a dropped client's first reconnect waits 0.5-1.5x this, then doubles
    storm_max_backoff: float = 2.0
    storm_kill_after: float = 15.0  # SIGKILL the server if SIGTERM has not ended it by then
    http_posts: int = 1_000  # posted over HTTP by http_threads at once, as integrations post
    http_threads: int = 4
    join: bool = True  # subscribers also join_room (presence), as a chat client does
    connect_timeout: float = 120.0
    drain_timeout: float = 60.0
    drain_idle_timeout: float = 10.0
    workers: int = 2
    scenarios: tuple[str, ...] = ("idle", "room", "rooms", "storm", "http")

    def users_needed(self) -> int:
        need = 0
        if "room" in self.scenarios and self.room_subscribers:
            need = max(need, max(self.room_subscribers) + 1)
        if "rooms" in self.scenarios:
            need = max(need, self.rooms * self.room_users)
        if "idle" in self.scenarios or "http" in self.scenarios:
            need = max(need, 1)
        if "storm" in self.scenarios:
            # Subscribers beyond the users' number share users (up to 50 connections each: contract §3).
            need = max(need, 1 + min(self.storm_subscribers, max(need - 1, -(-self.storm_subscribers // 40))))
        return need


@dataclass
class Context:
    """What every scenario of one configuration needs."""

    servers: ServerGroup
    tokens: list[str]
    options: Options
    plan: Plan
    tag: str  # unique per run and configuration, for room names
    redis_url: str
    redis_prefix: str
    deadline: float = float("inf")  # time.monotonic() by which this configuration's scenarios must end
    layer_seen: dict[str, Any] = field(default_factory=dict)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def bound(self, seconds: float) -> float:
        """A phase's time bound, shortened so the configuration keeps to its share of the run's budget."""
        return max(3.0, min(seconds, self.remaining() - 5.0))

    def port(self, index: int) -> int:
        """Clients are spread round robin over the server processes, as a load balancer would."""
        return self.servers.ports[index % len(self.servers.ports)]


def create_rooms(ctx: Context, host_token: str, names: list[str]) -> list[int]:
    """Create rooms over the WebSocket API (`create`) as their host would, returning their pks."""
    pks = []
    url = f"ws://127.0.0.1:{ctx.port(0)}/ws/chat/room/"
    with sync_connect(url, additional_headers={"Authorization": f"Token {host_token}"}, compression=None,
                      max_size=2**24, open_timeout=30) as ws:  # fmt: skip
        for i, name in enumerate(names):
            ws.send(json.dumps({"action": "create", "request_id": i, "data": {"name": name}}))
            while True:
                frame = json.loads(ws.recv(timeout=30))
                if frame.get("request_id") == i and "response_status" in frame:
                    break
            if frame["response_status"] != 201:
                raise RuntimeError(f"create room answered {frame['response_status']}: {frame.get('errors')}")
            pks.append(frame["data"]["pk"])
    return pks


class Measurement:
    """CPU time over one phase: the servers', our clients', and the rest of the machine's (Redis, PostgreSQL,
    anything else running: a large `rest` means the figures were taken on a busy machine)."""

    def __init__(self, servers: ServerGroup, pool: Pool | None = None) -> None:
        self.servers = servers
        self.client_pids = [proc.pid for proc in pool.procs if proc.pid is not None] if pool else []
        self.server0 = servers.cpu_seconds()
        self.client0 = safe_cpu_seconds(self.client_pids)
        self.machine0 = machine_busy_cpu_seconds()
        self.t0 = time.monotonic()

    def done(self) -> tuple[float, float]:
        """Server CPU seconds and wall seconds since the start."""
        self.server = self.servers.cpu_seconds() - self.server0
        self.client = safe_cpu_seconds(self.client_pids) - self.client0
        self.machine = machine_busy_cpu_seconds() - self.machine0
        self.wall = time.monotonic() - self.t0
        return self.server, self.wall

    def breakdown(self) -> dict[str, float | None]:
        return {
            "wall_s": round(self.wall, 3),
            "server_cpu_s": round(self.server, 3),
            "client_cpu_s": round(self.client, 3),
            "rest_of_machine_cpu_s": round(max(0.0, self.machine - self.server - self.client), 3),
            "machine_busy_share": round(self.machine / self.wall / (os.cpu_count() or 1), 3) if self.wall else None,
        }


def connect_phase(ctx: Context, pool: Pool, total: int, desc: str) -> dict[str, Any]:
    """Open, join and subscribe every client; return timing, failures and server cost."""
    rss0 = ctx.servers.rss_bytes()
    meter = Measurement(ctx.servers, pool)
    bound = ctx.bound(ctx.plan.connect_timeout)
    replies = pool.call("connect", {"deadline_in": bound}, timeout=bound + 30, desc=desc, total=total, slot=CONNECTED)
    cpu, wall = meter.done()
    if not ctx.layer_seen and replies and sum(r["ok"] for r in replies):
        # While clients are connected, Redis shows which channel layer the servers really use.
        ctx.layer_seen.update(redis_observation(ctx.redis_url, ctx.redis_prefix))
    errors: Counter = Counter()
    for reply in replies:
        errors.update(reply["errors"])
    ok = sum(r["ok"] for r in replies)
    rss1 = ctx.servers.rss_bytes()
    return {
        "clients": total,
        "ok": ok,
        "complete": ok == total,
        "posters": sum(r["posters"] for r in replies),
        "subscribers": sum(r["subscribers"] for r in replies),
        "failed": sum(r["failed"] for r in replies),
        "errors": dict(errors),
        "retries": sum(r["retries"] for r in replies),
        "retried_errors": dict(sum((Counter(r["retried_errors"]) for r in replies), Counter())),
        "seconds": round(wall, 3),
        "server_cpu_s": round(cpu, 3),
        "cpu": meter.breakdown(),
        "server_rss_before_mb": round(rss0 / 2**20, 1),
        "server_rss_after_mb": round(rss1 / 2**20, 1),
        "server_rss_per_connection_kb": round((rss1 - rss0) / ok / 1024, 1) if ok else None,
    }


def leave_phase(ctx: Context, pool: Pool) -> dict[str, Any]:
    """Close every client, then time how long the servers take to go quiet."""
    replies = pool.call("close", {}, timeout=ctx.bound(ctx.plan.connect_timeout) + 30, desc="")
    settle = ctx.servers.settle(limit=max(2.0, min(30.0, ctx.remaining())))
    return {"seconds": round(max(r["seconds"] for r in replies), 3), "settle_s": round(settle, 2)}


def post_phase(
    ctx: Context, pool: Pool, post: dict[str, Any], *, expected_before: Counter, lost_before: int, receivers: int,
    expected_messages: int, label: str,
) -> tuple[dict[str, Any], int]:  # fmt: skip
    """Send as `post` says, wait for delivery, and measure; `expected_before` (cumulative acks) is updated."""
    plan = ctx.plan
    pool.call("begin_phase", {}, timeout=30)  # outside the measurement: a round trip to the workers
    send_bound = ctx.bound(post.get("duration", plan.burst_seconds))
    redis0 = redis_observation(ctx.redis_url, ctx.redis_prefix)["redis_cpu_s"]
    meter = Measurement(ctx.servers, pool)
    post = dict(post, ack_grace=ctx.bound(plan.drain_timeout))
    posted = pool.call("post", {"post": post, "deadline_in": send_bound}, timeout=send_bound + post["ack_grace"] + 30,
                       desc=f"{label} send", total=expected_messages, slot=ACKED)  # fmt: skip
    for reply in posted:
        expected_before.update({int(room): n for room, n in reply["acked"].items()})
    acked = sum(sum(r["acked"].values()) for r in posted)
    # A progress estimate; the workers count exactly: every acknowledged message of its room, per subscriber.
    estimated_frames = acked * receivers
    drain_bound = ctx.bound(plan.drain_timeout)
    drained = pool.call(
        "drain",
        {"expected": dict(expected_before), "timeout": drain_bound, "idle_timeout": plan.drain_idle_timeout},
        timeout=drain_bound + 30, desc=f"{label} deliver", total=estimated_frames, slot=RECEIVED,
    )  # fmt: skip
    cpu, _ = meter.done()
    redis_cpu = redis_observation(ctx.redis_url, ctx.redis_prefix)["redis_cpu_s"] - redis0
    statuses: Counter = Counter()
    for reply in posted:
        statuses.update(reply["statuses"])
    delivered = sum(r["delivered"] for r in drained)
    expected_frames = sum(r["expected"] for r in drained)
    lost_total = sum(r["lost"] for r in drained)
    first_send = min(r["first_send"] for r in posted)
    last_receive = max((r["last_receive"] for r in drained if r["last_receive"]), default=None)
    span = (last_receive - first_send) if last_receive else None
    last_ack = max(r["last_ack"] for r in posted)
    return {
        "messages_sent": sum(statuses.values()),
        "messages_acked": acked,
        "response_statuses": dict(statuses),
        "send_seconds": round(last_ack - first_send, 3),
        "messages_per_s": round(acked / (last_ack - first_send), 1) if last_ack > first_send else None,
        "expected_frames": expected_frames,
        "delivered_frames": delivered,
        "lost": lost_total - lost_before,
        # "deadline": the time bound cut the wait while messages were still arriving (an overloaded server),
        # so `lost` counts messages not delivered in time; "no progress": nothing arrived for a while.
        "drain_ended": sorted({r["drain_ended"] for r in drained}),
        "unexpected": sum(r["unexpected"] for r in drained),
        "stale_deliveries": sum(r["stale"] for r in drained),
        # Requests answered after the bench stopped waiting may still be delivered: then `lost` can be too low.
        "lost_is_lower_bound": bool(statuses.get("unanswered")),
        "duplicates": sum(r["duplicates"] for r in drained),
        "out_of_order": sum(r["out_of_order"] for r in drained),
        "closed_by_server": sum(r["closed_by_server"] for r in drained),
        "other_frames": sum(r["other_frames"] for r in drained),
        "seconds": round(span, 3) if span else None,
        "frames_per_s": round(delivered / span, 1) if span else None,
        "server_cpu_s": round(cpu, 3),
        "frames_per_server_cpu_s": round(delivered / cpu, 1) if cpu > 0 else None,
        "redis_cpu_s": round(redis_cpu, 3),
        "cpu": meter.breakdown(),
        "latency_ms": latency_summary(floats([r["latencies_ms"] for r in drained])),
        "ack_latency_ms": latency_summary(floats([r["ack_latencies_ms"] for r in posted])),
        "_latencies": floats([r["latencies_ms"] for r in drained]),
    }, lost_total


def scenario_room(ctx: Context, subscribers: int) -> list[dict[str, Any]]:
    """One room with N subscribers: joining, a fixed-rate phase (if planned), a burst, then leaving."""
    plan = ctx.plan
    sender_token, subscriber_tokens = ctx.tokens[0], ctx.tokens[1 : subscribers + 1]
    (room,) = create_rooms(ctx, sender_token, [f"{ctx.tag}-room-{subscribers}"])
    specs = [ClientSpec(index=0, token=sender_token, port=ctx.port(0), room=room, join=True, poster=True)]
    specs += [
        ClientSpec(index=i, token=token, port=ctx.port(i), room=room, join=plan.join, subscribe=True)
        for i, token in enumerate(subscriber_tokens, start=1)
    ]
    results: list[dict[str, Any]] = []
    base = {"subscribers": subscribers, "room_users": subscribers + 1, "join": plan.join}
    pool = Pool(specs, ctx.options, plan.workers)
    try:
        connect = connect_phase(ctx, pool, len(specs), f"room-{subscribers} join")
        if not connect["posters"] or not connect["subscribers"]:
            raise RuntimeError(f"only {connect['ok']} of {len(specs)} clients connected: {connect['errors']}")
        # With a partial join (see connect.complete) the room is measured with the subscribers that made it.
        receivers = connect["subscribers"]
        expected: Counter = Counter()
        lost = 0
        if subscribers in plan.rate_subscribers:
            post = {"mode": "rate", "rate": plan.rate, "duration": plan.rate_seconds}
            label = f"rate-{subscribers}"
            repeats = max(1, plan.rate_repeats) if subscribers <= REPEAT_MAX_SUBSCRIBERS else 1
            runs: list[dict[str, Any]] = []
            for _ in range(repeats):
                if runs and ctx.remaining() < 3 * plan.rate_seconds + 10:
                    break  # the budget: report the runs measured so far (`runs` says how many)
                measured, lost = post_phase(ctx, pool, post, expected_before=expected, lost_before=lost,
                                            receivers=receivers, expected_messages=int(plan.rate * plan.rate_seconds),
                                            label=label)  # fmt: skip
                runs.append(measured)
            # One result: latency pooled over the runs, and each run's own figures (the target holds per run).
            first = runs[0]
            pooled = floats([r["_latencies"].tobytes() for r in runs])
            merged = dict(first, _latencies=pooled, latency_ms=latency_summary(pooled))
            for key in CORRECTNESS_KEYS + ("delivered_frames", "expected_frames", "messages_acked"):
                merged[key] = sum(r[key] for r in runs)
            merged["drain_ended"] = sorted({e for r in runs for e in r["drain_ended"]})
            merged["runs"] = [{"latency_ms": r["latency_ms"], "frames_per_s": r["frames_per_s"],
                               "frames_per_server_cpu_s": r["frames_per_server_cpu_s"],
                               **{k: r[k] for k in CORRECTNESS_KEYS}} for r in runs]  # fmt: skip
            results.append({"name": label, "kind": "rate", **base, "rate": plan.rate, "repeats": len(runs),
                            "connect": connect, **merged})  # fmt: skip
        count = max(plan.burst_min_messages, min(plan.burst_max_messages, plan.burst_frames // max(1, subscribers)))
        post = {"mode": "window", "count": count, "window": plan.window}
        label = f"burst-{subscribers}"
        measured, lost = post_phase(ctx, pool, post, expected_before=expected, lost_before=lost, receivers=receivers,
                                    expected_messages=count, label=label)  # fmt: skip
        results.append({"name": label, "kind": "burst", **base, "window": plan.window, "connect": connect, **measured})
        leave = leave_phase(ctx, pool)
        for result in results:
            result["leave"] = leave
    finally:
        pool.close()
    return results


def scenario_rooms(ctx: Context) -> list[dict[str, Any]]:
    """Many rooms: R rooms of U users, every user subscribed to its room and posting at a fixed rate."""
    plan = ctx.plan
    hosts = [ctx.tokens[r * plan.room_users] for r in range(plan.rooms)]
    names = [f"{ctx.tag}-rooms-{r}" for r in range(plan.rooms)]
    # One host creates every room: creating is not what this scenario measures.
    rooms = create_rooms(ctx, hosts[0], names)
    specs = [
        ClientSpec(index=i, token=ctx.tokens[i], port=ctx.port(i), room=rooms[i // plan.room_users], join=True,
                   subscribe=True, poster=True)
        for i in range(plan.rooms * plan.room_users)
    ]  # fmt: skip
    pool = Pool(specs, ctx.options, plan.workers)
    name = f"rooms-{plan.rooms}x{plan.room_users}"
    try:
        connect = connect_phase(ctx, pool, len(specs), f"{name} join")
        if not connect["posters"]:
            raise RuntimeError(f"only {connect['ok']} of {len(specs)} clients connected: {connect['errors']}")
        base = {"kind": "rooms", "rooms": plan.rooms, "users_per_room": plan.room_users, "connect": connect}
        post = {"mode": "rate", "rate": plan.room_user_rate, "duration": plan.rooms_seconds}
        expected_messages = int(plan.room_user_rate * plan.rooms_seconds * len(specs))
        expected: Counter = Counter()
        measured, lost = post_phase(ctx, pool, post, expected_before=expected, lost_before=0,
                                    receivers=plan.room_users, expected_messages=expected_messages, label=name)  # fmt: skip
        offered = plan.room_user_rate * len(specs)
        results = [{"name": name, **base, "rate_per_user": plan.room_user_rate, "offered_per_s": offered, **measured}]
        # The posting target's latency half: p99 at an offered rate the server can hold. Offered only when the
        # capacity phase accepted at least that many posts/s (else the target is missed anyway, and it would queue).
        hold = plan.rooms_hold_rate
        accepted = measured["messages_per_s"] or 0
        if hold > 0 and accepted >= hold and ctx.remaining() > 2 * plan.rooms_seconds + 15:
            post = {"mode": "rate", "rate": hold / len(specs), "duration": plan.rooms_seconds}
            measured, lost = post_phase(ctx, pool, post, expected_before=expected, lost_before=lost,
                                        receivers=plan.room_users, expected_messages=int(hold * plan.rooms_seconds),
                                        label=f"{name}-hold")  # fmt: skip
            results.append({"name": f"{name}-hold", **base, "rate_per_user": hold / len(specs), "offered_per_s": hold,
                            **measured})  # fmt: skip
        elif hold > 0:
            results.append({"name": f"{name}-hold", **base, "offered_per_s": hold,
                            "error": f"not run: the capacity phase accepted {accepted} posts/s < {hold:g}"})  # fmt: skip
        leave = leave_phase(ctx, pool)
        for result in results:
            result["leave"] = leave
    finally:
        pool.close()
    return results


def scenario_idle(ctx: Context) -> list[dict[str, Any]]:
    """N idle authenticated connections: time to open them and the server memory each costs."""
    plan = ctx.plan
    # A few connections first, so one-off costs (imports, caches, pools) stay out of the per-connection figure.
    warmup = [ClientSpec(index=i, token=ctx.tokens[i % len(ctx.tokens)], port=ctx.port(i)) for i in range(20)]
    pool = Pool(warmup, ctx.options, 1)
    try:
        pool.call("connect", {"deadline_in": ctx.bound(30)}, timeout=ctx.bound(30) + 30)
        pool.call("close", {}, timeout=ctx.bound(30) + 30)
    finally:
        pool.close()
    ctx.servers.settle()
    # Fewer users than connections: each user then holds several connections, each authenticated on its own.
    specs = [ClientSpec(index=i, token=ctx.tokens[i % len(ctx.tokens)], port=ctx.port(i)) for i in range(plan.idle)]
    pool = Pool(specs, ctx.options, plan.workers)
    try:
        connect = connect_phase(ctx, pool, len(specs), f"idle-{plan.idle} open")
        time.sleep(1.0)  # let the servers finish what the handshakes started before reading memory again
        rss = ctx.servers.rss_bytes()
        held_kb = (rss / 1024 - connect["server_rss_before_mb"] * 1024) / connect["ok"] if connect["ok"] else None
        leave = leave_phase(ctx, pool)
    finally:
        pool.close()
    return [{
        "name": f"idle-{plan.idle}", "kind": "idle", "connections": plan.idle,
        "users": min(plan.idle, len(ctx.tokens)), "connect": connect,
        "opened_per_s": round(connect["ok"] / connect["seconds"], 1) if connect["seconds"] else None,
        "server_rss_per_connection_kb": round(held_kb, 1) if held_kb is not None else None,
        "leave": leave,
    }]  # fmt: skip


def post_over_http(ctx: Context, *, port: int, token: str, room: int, phase: int, count: int, threads: int = 4,
                   deadline: float) -> dict[str, Any]:  # fmt: skip
    """Post `count` messages with `POST /api/rooms/{room}/messages/`, as an integration would; return statuses.

    A failed request is retried with the same client_id (a 200 answers a retry whose first attempt was stored).
    """
    url = f"http://127.0.0.1:{port}/api/rooms/{room}/messages/"
    headers = {"Authorization": f"Token {token}"}
    size = ctx.options.message_size
    statuses: Counter = Counter()

    def one(session: requests.Session, n: int) -> int | str:
        body = {"client_id": f"storm-{phase}-{n}"}
        for attempt in range(5):
            head = f"b:http:{phase}:{n}:{time.monotonic_ns()}:"
            body["text"] = head + "x" * max(0, size - len(head))
            try:
                status = session.post(url, json=body, headers=headers, timeout=max(1.0, deadline - time.monotonic())).status_code
            except requests.RequestException:
                status = 0
            if status in (200, 201) or (status and status < 500 and status != 429) or time.monotonic() > deadline:
                return status or "error"
            time.sleep(0.1 * 2**attempt)
        return status or "error"

    def chunk(numbers: range) -> Counter:
        with requests.Session() as session:
            return Counter(str(one(session, n)) for n in numbers)

    step = -(-count // threads)
    with ThreadPoolExecutor(threads) as pool:
        for part in pool.map(chunk, [range(i, min(i + step, count)) for i in range(0, count, step)]):
            statuses.update(part)
    return {"statuses": dict(statuses), "acked": statuses.get("201", 0) + statuses.get("200", 0)}


def scenario_storm(ctx: Context) -> list[dict[str, Any]]:
    """Reconnect storm: N subscribers, the server restarts (SIGTERM, then started again on its port), M messages are
    posted to it over HTTP meanwhile, and every client reconnects with after_seq; time until all caught up gap-free."""
    plan = ctx.plan
    n = plan.storm_subscribers
    name = f"storm-{n}"
    host = ctx.tokens[0]
    users = ctx.tokens[1:] or ctx.tokens
    (room,) = create_rooms(ctx, host, [f"{ctx.tag}-{name}"])
    # Only process 0 restarts: with more processes, their clients stay connected and must see the same messages.
    specs = [ClientSpec(index=i, token=users[(i - 1) % len(users)], port=ctx.port(i), room=room, join=plan.join,
                        subscribe=True) for i in range(1, n + 1)]  # fmt: skip
    pool = Pool(specs, ctx.options, plan.workers)
    try:
        connect = connect_phase(ctx, pool, len(specs), f"{name} join")
        if not connect["subscribers"]:
            raise RuntimeError(f"only {connect['ok']} of {len(specs)} clients connected: {connect['errors']}")
        port = ctx.servers.ports[0]
        expected: Counter = Counter()
        # Everyone holds a few messages first, so the resumption's after_seq is not 0.
        before = post_over_http(ctx, port=port, token=host, room=room, phase=0, count=plan.storm_before,
                                deadline=time.monotonic() + ctx.bound(30))  # fmt: skip
        expected[room] += before["acked"]
        pool.call("drain", {"expected": dict(expected), "timeout": ctx.bound(plan.drain_timeout),
                            "idle_timeout": plan.drain_idle_timeout}, timeout=ctx.bound(plan.drain_timeout) + 30)  # fmt: skip
        phase = 10_000  # the storm's messages: beyond any phase number the workers used
        policy = {"initial_backoff": plan.storm_initial_backoff, "max_backoff": plan.storm_max_backoff}
        pool.call("storm", {"policy": policy, "phase": phase}, timeout=30)
        clients_on_restarted = sum(1 for spec in specs if ctx.port(spec.index) == port)
        t_term = time.monotonic()
        shutdown_s, killed = ctx.servers.terminate(0, timeout=plan.storm_kill_after)
        t_exit = time.monotonic()
        ctx.servers.start_again(0)
        t_ready = time.monotonic()
        meter = Measurement(ctx.servers, pool)
        posted = post_over_http(ctx, port=port, token=host, room=room, phase=phase, count=plan.storm_messages,
                                deadline=t_ready + ctx.bound(plan.drain_timeout))  # fmt: skip
        t_posted = time.monotonic()
        expected[room] += posted["acked"]
        bound = ctx.bound(plan.connect_timeout)
        caught = pool.call("catch_up", {"expected": dict(expected), "timeout": bound, "idle_timeout": plan.drain_idle_timeout},
                           timeout=bound + 30, desc=f"{name} catch up", total=posted["acked"] * len(specs), slot=RECEIVED)  # fmt: skip
        cpu, _ = meter.done()
        last_receive = max((r["last_receive"] for r in caught if r["last_receive"]), default=None)
        last_reconnect = max((r["last_reconnected"] for r in caught if r["last_reconnected"]), default=None)
        errors: Counter = Counter()
        for reply in caught:
            errors.update(reply["reconnect_errors"])
        complete = all(r["drain_ended"] == "complete" for r in caught)
        result = {
            "name": name, "kind": "storm", "subscribers": n, "join": plan.join, "connect": connect,
            "messages_before": before["acked"], "messages_posted": plan.storm_messages,
            "messages_acked": posted["acked"], "response_statuses": posted["statuses"],
            "clients_dropped": clients_on_restarted,
            # The headline: from the restarted server answering /healthz until every subscriber holds every message.
            "seconds": round(last_receive - t_ready, 3) if complete and last_receive else None,
            "from_sigterm_s": round(last_receive - t_term, 3) if complete and last_receive else None,
            "shutdown_s": round(shutdown_s, 3),
            # Still running storm_kill_after seconds after SIGTERM: SIGKILLed (a shutdown that hangs).
            "shutdown_killed": killed,
            "startup_s": round(t_ready - t_exit, 3),
            "post_seconds": round(t_posted - t_ready, 3),
            "last_reconnect_s": round(last_reconnect - t_ready, 3) if last_reconnect else None,
            "reconnected": sum(r["reconnected"] for r in caught),
            "still_disconnected": sum(r["still_disconnected"] for r in caught),
            "reconnect_attempts": sum(r["reconnect_attempts"] for r in caught),
            "reconnect_errors": dict(errors),
            "caught_up": sum(r["caught_up"] for r in caught),
            "expected_frames": posted["acked"] * sum(r["subscribers"] for r in caught),
            "delivered_frames": sum(r["delivered"] for r in caught),
            "lost": sum(r["lost"] for r in caught),
            "duplicates": sum(r["duplicates"] for r in caught),
            "out_of_order": sum(r["out_of_order"] for r in caught),
            "unexpected": sum(r["unexpected"] for r in caught),
            "stale_deliveries": sum(r["stale"] for r in caught),
            "drain_ended": sorted({r["drain_ended"] for r in caught}),
            "server_cpu_s": round(cpu, 3),
            "cpu": meter.breakdown(),
            "latency_ms": latency_summary(floats([r["latencies_ms"] for r in caught])),
            "_latencies": floats([r["latencies_ms"] for r in caught]),
        }  # fmt: skip
        result["leave"] = leave_phase(ctx, pool)
    finally:
        pool.close()
    return [result]


def scenario_http(ctx: Context) -> list[dict[str, Any]]:
    """HTTP posting: `POST /api/rooms/{room}/messages/` from a few threads at once, each as fast as it is answered
    (as integrations post), into a room nobody subscribes to: the HTTP path's own cost per post."""
    plan = ctx.plan
    host = ctx.tokens[0]
    (room,) = create_rooms(ctx, host, [f"{ctx.tag}-http"])
    port = ctx.servers.ports[0]
    # A first few posts open the server's pooled connections and caches, as a running server has them.
    post_over_http(ctx, port=port, token=host, room=room, phase=20_000, count=20, deadline=time.monotonic() + ctx.bound(30))
    meter = Measurement(ctx.servers)
    posted = post_over_http(ctx, port=port, token=host, room=room, phase=20_001, count=plan.http_posts,
                            threads=plan.http_threads, deadline=time.monotonic() + ctx.bound(plan.drain_timeout))  # fmt: skip
    cpu, wall = meter.done()
    return [{
        "name": f"http-{plan.http_posts}", "kind": "http", "threads": plan.http_threads,
        "messages_posted": plan.http_posts, "messages_acked": posted["acked"], "response_statuses": posted["statuses"],
        "seconds": round(wall, 3), "messages_per_s": round(posted["acked"] / wall, 1) if wall else None,
        "server_cpu_s": round(cpu, 3), "cpu": meter.breakdown(),
    }]  # fmt: skip


def run_scenario(ctx: Context, kind: str, *args: Any) -> list[dict[str, Any]]:
    """Run one scenario; a failure or timeout is recorded in the result, never aborts the run."""
    name = f"{kind}-{args[0]}" if args else kind
    started = time.monotonic()
    try:
        if kind == "room":
            results = scenario_room(ctx, *args)
        elif kind == "rooms":
            results = scenario_rooms(ctx)
        elif kind == "storm":
            results = scenario_storm(ctx)
        elif kind == "http":
            results = scenario_http(ctx)
        else:
            results = scenario_idle(ctx)
    except Exception as exc:  # a broken scenario is a result too; the run goes on
        results = [{"name": name, "kind": kind, "error": f"{type(exc).__name__}: {exc}"}]
    for result in results:
        result["wall_s"] = round(time.monotonic() - started, 1)
        result["server_alive"] = ctx.servers.alive()
    return results
