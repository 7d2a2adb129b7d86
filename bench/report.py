"""The run's outputs: JSON result, the issue's targets checked against it, PNG plots and a console table."""

import copy
import json
from pathlib import Path
from typing import Any

from bench.stats import cdf_points


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """A copy with raw latency arrays replaced by CDF points, the same-run ratios computed and the targets checked."""
    document = copy.deepcopy(document)
    for config in document["configs"]:
        for scenario in config["scenarios"]:
            latencies = scenario.pop("_latencies", None)
            if latencies is not None:
                xs, ys = cdf_points(latencies)
                scenario["latency_cdf"] = {"ms": [round(x, 3) for x in xs], "fraction": [round(y, 5) for y in ys]}
    base = baseline(document)
    for config in document["configs"]:
        config["figures"] = figures(config)
        if base is not None and config is not base:
            config["vs_baseline"] = compare(config, base)
    document["targets"] = {config["name"]: check_targets(config, base) for config in document["configs"]
                           if config["processes"] == 1 and config["server"] != "raw"}  # fmt: skip
    return document


def baseline(document: dict[str, Any]) -> dict[str, Any] | None:
    """The run's raw-websockets ceiling (bench/raw.py), against which every ratio is taken."""
    return next((c for c in document["configs"] if c.get("server") == "raw" and c["scenarios"]), None)


def _find(config: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((s for s in config["scenarios"] if s["name"] == name and "error" not in s), None)


def _kind(config: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in config["scenarios"] if s["kind"] == kind and "error" not in s]


def _div(a: float | None, b: float | None, scale: float = 1.0, digits: int = 3) -> float | None:
    # Every figure is positive; a zero or negative baseline (a tiny run's RSS noise, CPU below one tick) has no ratio.
    return round(a / b * scale, digits) if a is not None and b is not None and b > 0 else None


def figures(config: dict[str, Any]) -> dict[str, Any]:
    """Issue 16's figures of one configuration (None where its scenario did not run)."""
    out: dict[str, Any] = {}
    processes = config.get("processes") or 1
    rooms = next((s for s in _kind(config, "rooms") if not s["name"].endswith("-hold")), None)
    hold = next((s for s in _kind(config, "rooms") if s["name"].endswith("-hold")), None)
    if rooms:
        out["posts_per_s_per_process"] = _div(rooms["messages_per_s"], processes, digits=1)
        out["server_cpu_ms_per_post"] = _div(rooms["server_cpu_s"], rooms["messages_acked"], 1000)
        out["posting_p99_ms_at_capacity"] = rooms["latency_ms"]["p99"]
    if hold:
        out["posting_p99_ms_at_hold_rate"] = hold["latency_ms"]["p99"]
    room_scenarios = [s for s in config["scenarios"] if s["kind"] in ("burst", "rate") and "error" not in s]
    if room_scenarios:
        # Joining: the biggest room's connect + join_room + subscribe phase.
        biggest = max(room_scenarios, key=lambda s: s["subscribers"])
        connect = biggest["connect"]
        out["join_clients"] = connect["clients"]
        out["join_seconds"] = connect["seconds"]
        out["join_server_cpu_ms_per_client"] = _div(connect["server_cpu_s"], connect["ok"], 1000)
    for s in _kind(config, "burst"):
        out[f"fanout_{s['subscribers']}_frames_per_server_cpu_s"] = s["frames_per_server_cpu_s"]
    for s in _kind(config, "rate"):
        out[f"rate_{s['subscribers']}_p99_ms"] = s["latency_ms"]["p99"]
        out[f"rate_{s['subscribers']}_p99_ms_runs"] = [r["latency_ms"]["p99"] for r in s.get("runs", [s])]
    for s in _kind(config, "idle"):
        out["idle_connections"] = s["connect"]["ok"]
        out["idle_kb_per_connection"] = s["server_rss_per_connection_kb"]
    for s in _kind(config, "storm"):
        out["storm_subscribers"] = s["subscribers"]
        out["storm_seconds"] = s["seconds"]
    for s in _kind(config, "http"):
        out["http_posts_per_s"] = s["messages_per_s"]
        out["http_server_cpu_ms_per_post"] = _div(s["server_cpu_s"], s["messages_acked"], 1000)
    return out


def compare(config: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Every issue-16 figure as a ratio to the same-run baseline's (see bench/README.md, "The ratios")."""
    mine, theirs = config.get("figures") or figures(config), base.get("figures") or figures(base)
    out: dict[str, Any] = {}
    for key, value in mine.items():
        other = theirs.get(key)
        if key.endswith("_runs"):
            # Each run's p99 as a multiple of the baseline's p99 pooled over all its runs.
            pooled = theirs.get(key[: -len("_runs")])
            out[key.replace("_ms_runs", "_multiple_runs")] = [_div(v, pooled, digits=2) for v in value] if pooled else None
        elif key.startswith("fanout_"):
            out[key.replace("_frames_per_server_cpu_s", "_pct_of_baseline")] = _div(value, other, 100, 1)
        elif isinstance(value, int | float) and not key.endswith(("_clients", "_connections", "_subscribers")):
            out[f"{key}_ratio"] = _div(value, other, digits=2)
    return out


def check_targets(config: dict[str, Any], base: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Issue 16's targets (one server process) against this configuration's figures and the same-run baseline's.

    A target whose scenario did not run is left out; one that needs the baseline says so when there is none.
    """
    checks: list[dict[str, Any]] = []
    mine = config.get("figures") or figures(config)
    theirs = (base.get("figures") or figures(base)) if base else {}

    def check(target: str, key: str, ok: Any, *, scale: float = 1.0) -> None:
        value, other = mine.get(key), theirs.get(key)
        checks.append({"target": target, "value": value, "baseline": other, "ratio": _div(value, other, scale, 2),
                       "ok": bool(ok(value) if value is not None else False)})  # fmt: skip

    if "posts_per_s_per_process" in mine:
        check(">= 600 accepted posts/s per process in many rooms", "posts_per_s_per_process", lambda v: v >= 600)
        check("<= 1.5 ms of server CPU per post, its fan-out included", "server_cpu_ms_per_post", lambda v: v <= 1.5)
        hold: dict[str, Any] = next((s for s in config["scenarios"] if s["name"].endswith("-hold")), {})
        target = f"posting p99 <= 100 ms at {hold.get('offered_per_s', 600):g} posts/s offered"
        if "posting_p99_ms_at_hold_rate" in mine:
            check(target, "posting_p99_ms_at_hold_rate", lambda v: v <= 100)
        elif hold:
            checks.append({"target": target, "value": hold.get("error"), "ok": False})
    if mine.get("join_clients", 0) >= 1000:
        check("connect + join_room + subscribe <= 3 ms of server CPU per client", "join_server_cpu_ms_per_client",
              lambda v: v <= 3)  # fmt: skip
        check("1,000 clients join one room in <= 5 s", "join_seconds", lambda v: v <= 5)
    for size, pct in ((1000, 50), (100, 30)):
        key = f"fanout_{size}_frames_per_server_cpu_s"
        if key in mine:
            target = f"fan-out to {size:,}: >= {pct}% of raw websockets' deliveries per server CPU-second"
            if key in theirs and theirs[key]:
                checks.append({"target": target, "value": _div(mine[key], theirs[key], 100, 1), "measured": mine[key],
                               "baseline": theirs[key], "ok": (mine[key] or 0) >= theirs[key] * pct / 100})  # fmt: skip
            else:
                checks.append({"target": target, "value": "no same-run baseline (add raw-memory-1)", "ok": False})
    if "rate_100_p99_ms_runs" in mine:
        target = "50 msg/s to 100 subscribers: p99 <= 3x raw websockets' p99, in every run"
        pooled = theirs.get("rate_100_p99_ms")
        runs = mine["rate_100_p99_ms_runs"]
        if pooled:
            multiples = [_div(v, pooled, digits=2) for v in runs]
            checks.append({"target": target, "value": multiples, "measured": runs, "baseline": pooled,
                           "ok": all(m is not None and m <= 3 for m in multiples)})  # fmt: skip
        else:
            checks.append({"target": target, "value": "no same-run baseline (add raw-memory-1)", "ok": False})
    if mine.get("idle_connections", 0) >= 10_000:
        check("10,000 idle authenticated connections at <= 20 KB each", "idle_kb_per_connection", lambda v: v <= 20)
    for storm in (s for s in config["scenarios"] if s["kind"] == "storm"):
        value = storm.get("seconds")
        checks.append({"target": f"reconnect storm of {storm.get('subscribers')}: all caught up gap-free in <= 10 s",
                       "value": value if "error" not in storm else storm["error"],
                       "ok": "error" not in storm and value is not None and value <= 10})  # fmt: skip
    flawed = {
        s["name"]: {k: s[k] for k in ("lost", "duplicates", "out_of_order", "drain_ended")}
        for s in config["scenarios"]
        if "lost" in s and (s["lost"] or s["duplicates"] or s["out_of_order"])
    }
    failed = [s["name"] for s in config["scenarios"] if "error" in s and not s["error"].startswith(("not run", "skipped"))]
    checks.append({"target": "zero lost, duplicate or out-of-order messages", "value": flawed or 0, "ok": not flawed})
    if failed:
        checks.append({"target": "every scenario completes", "value": failed, "ok": False})
    return checks


RATIO_ROWS = (
    ("posting: accepted posts/s per process (rooms)", "posts_per_s_per_process"),
    ("posting: server CPU ms per post", "server_cpu_ms_per_post"),
    ("posting: p99 ms at the hold rate", "posting_p99_ms_at_hold_rate"),
    ("joining: server CPU ms per client", "join_server_cpu_ms_per_client"),
    ("joining: seconds for the biggest room", "join_seconds"),
    ("fan-out to 1,000: frames per server CPU-s", "fanout_1000_frames_per_server_cpu_s"),
    ("fan-out to 100: frames per server CPU-s", "fanout_100_frames_per_server_cpu_s"),
    ("latency: 50 msg/s to 100, p99 ms (pooled)", "rate_100_p99_ms"),
    ("memory: KB per idle connection", "idle_kb_per_connection"),
    ("reconnect storm: seconds to all caught up", "storm_seconds"),
    ("HTTP posting: posts/s, 4 threads (no target)", "http_posts_per_s"),
    ("HTTP posting: server CPU ms per post (no target)", "http_server_cpu_ms_per_post"),
)


def ratios_table(document: dict[str, Any]) -> str:
    """Issue 16's figures per configuration, each with its ratio to the same-run raw-websockets baseline."""
    configs = [c for c in document["configs"] if c.get("figures")]
    if not configs:
        return ""
    base = baseline(document)
    lines = ["| figure | " + " | ".join(c["name"] for c in configs) + " |", "|---|" + "---|" * len(configs)]
    for label, key in RATIO_ROWS:
        cells = []
        for config in configs:
            value = config["figures"].get(key)
            other = base["figures"].get(key) if base else None
            ratio = _div(value, other, digits=2) if config is not base else None
            if key.startswith("fanout_") and ratio is not None:
                cells.append(f"{value:,.0f} ({ratio * 100:.0f}%)")
            elif value is None:
                cells.append("")
            else:
                cells.append(f"{value:,}" + (f" ({ratio}x)" if ratio is not None else ""))
        if any(cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n")


def plot(document: dict[str, Any], prefix: Path) -> list[Path]:
    """latency CDF per scenario (a line per configuration) and throughput against subscribers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    configs = document["configs"]
    names: list[str] = []
    for config in configs:
        for scenario in config["scenarios"]:
            if scenario.get("latency_cdf", {}).get("ms") and scenario["name"] not in names:
                names.append(scenario["name"])
    if names:
        cols = min(3, len(names))
        rows = -(-len(names) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names, strict=False):
            for config in configs:
                scenario = next((s for s in config["scenarios"] if s["name"] == name and "latency_cdf" in s), None)
                if scenario and scenario["latency_cdf"]["ms"]:
                    cdf = scenario["latency_cdf"]
                    ax.plot([max(x, 0.01) for x in cdf["ms"]], cdf["fraction"], label=config["name"])
            ax.set_xscale("log")
            ax.set_title(name)
            ax.set_xlabel("sender -> receiver latency (ms)")
            ax.set_ylabel("fraction of deliveries")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(names) :]:
            ax.set_visible(False)
        fig.suptitle(f"Latency CDF — run {document['meta']['run_id']}")
        fig.tight_layout()
        path = prefix.with_name(prefix.name + "-latency-cdf.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    drawn = False
    for config in configs:
        bursts = sorted((s for s in config["scenarios"] if s["kind"] == "burst" and "error" not in s),
                        key=lambda s: s["subscribers"])  # fmt: skip
        if not bursts:
            continue
        drawn = True
        xs = [s["subscribers"] for s in bursts]
        left.plot(xs, [s["frames_per_s"] or 0 for s in bursts], marker="o", label=config["name"])
        right.plot(xs, [s["frames_per_server_cpu_s"] or 0 for s in bursts], marker="o", label=config["name"])
    if drawn:
        for ax, label in ((left, "delivered frames / s"), (right, "delivered frames / server CPU-s")):
            ax.set_xscale("log")
            ax.set_xlabel("subscribers in the room")
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"Burst fan-out throughput — run {document['meta']['run_id']}")
        fig.tight_layout()
        path = prefix.with_name(prefix.name + "-throughput.png")
        fig.savefig(path, dpi=100)
        paths.append(path)
    plt.close(fig)
    return paths


def table(document: dict[str, Any]) -> str:
    """A plain-text summary of every configuration and scenario (Markdown table)."""
    lines = [
        "| config | scenario | frames/s | frames/server-CPU-s | p50 ms | p99 ms | max ms | lost | dup | ooo | join s | settle s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for config in document["configs"]:
        if "error" in config and not config["scenarios"]:
            lines.append(f"| {config['name']} | FAILED: {config['error']} |||||||||||")
        for s in config["scenarios"]:
            if "error" in s:
                lines.append(f"| {config['name']} | {s['name']}: FAILED ({s['error'][:80]}) |||||||||||")
            elif s["kind"] == "storm":
                lat = s["latency_ms"]
                lines.append(
                    f"| {config['name']} | {s['name']}: all caught up {s['seconds']} s after the restart "
                    f"({s['from_sigterm_s']} s from SIGTERM) | | | {lat['p50']} | {lat['p99']} | {lat['max']} | "
                    f"{s['lost']} | {s['duplicates']} | {s['out_of_order']} | {s['connect']['seconds']} | {s['leave']['settle_s']} |"
                )
            elif s["kind"] == "http":
                lines.append(
                    f"| {config['name']} | {s['name']}: {s['messages_acked']}/{s['messages_posted']} posts accepted over "
                    f"HTTP, {s['messages_per_s']}/s, server CPU {s['server_cpu_s']} s |||||||||||"
                )
            elif s["kind"] == "idle":
                c = s["connect"]
                lines.append(
                    f"| {config['name']} | {s['name']}: {c['ok']}/{c['clients']} open, "
                    f"{s['server_rss_per_connection_kb']} KB/conn | | | | | | | | | {c['seconds']} | {s['leave']['settle_s']} |"
                )
            else:
                lat = s["latency_ms"]
                lines.append(
                    f"| {config['name']} | {s['name']} | {s['frames_per_s']} | {s['frames_per_server_cpu_s']} | "
                    f"{lat['p50']} | {lat['p99']} | {lat['max']} | {s['lost']} | {s['duplicates']} | "
                    f"{s['out_of_order']} | {s['connect']['seconds']} | {s['leave']['settle_s']} |"
                )
    return "\n".join(lines)
