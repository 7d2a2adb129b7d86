"""The run's outputs: JSON result, the issue's targets checked against it, PNG plots and a console table."""

import copy
import json
from pathlib import Path
from typing import Any

from bench.stats import cdf_points


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """A copy with raw latency arrays replaced by CDF points, and the targets checked."""
    document = copy.deepcopy(document)
    for config in document["configs"]:
        for scenario in config["scenarios"]:
            latencies = scenario.pop("_latencies", None)
            if latencies is not None:
                xs, ys = cdf_points(latencies)
                scenario["latency_cdf"] = {"ms": [round(x, 3) for x in xs], "fraction": [round(y, 5) for y in ys]}
    document["targets"] = {config["name"]: check_targets(config) for config in document["configs"]
                           if config["processes"] == 1}  # fmt: skip
    return document


def _find(config: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((s for s in config["scenarios"] if s["name"] == name and "error" not in s), None)


def check_targets(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 8's targets (one server process) against this configuration's figures; absent ones are skipped."""
    checks: list[dict[str, Any]] = []

    def check(target: str, value: Any, ok: bool) -> None:
        checks.append({"target": target, "value": value, "ok": bool(ok)})

    if burst := _find(config, "burst-1000"):
        value = burst["frames_per_server_cpu_s"]
        check(">= 20,000 delivered frames per server CPU-second to 1,000 subscribers", value, (value or 0) >= 20_000)
    if rate := _find(config, "rate-1000"):
        value = rate["latency_ms"]["p99"]
        check("p99 <= 50 ms at 1,000 subscribers and 50 msg/s", value, value is not None and value <= 50)
    if rate := _find(config, "rate-100"):
        value = rate["latency_ms"]["p99"]
        check("p99 <= 20 ms at 100 subscribers and 50 msg/s", value, value is not None and value <= 20)
    idle = next((s for s in config["scenarios"] if s["kind"] == "idle" and "error" not in s), None)
    if idle and idle["connections"] >= 10_000:
        value = idle["server_rss_per_connection_kb"]
        ok = idle["connect"]["ok"] == idle["connections"] and value is not None and value <= 30
        check("10,000 idle authenticated connections at <= 30 KB each", value, ok)
    room = _find(config, "burst-1000") or _find(config, "rate-1000")
    if room:
        check("1,000 clients joining one room finish in <= 5 s", room["connect"]["seconds"], room["connect"]["seconds"] <= 5)
        check("server settles in <= 2 s after they all leave", room["leave"]["settle_s"], room["leave"]["settle_s"] <= 2)
    flawed = {
        s["name"]: {k: s[k] for k in ("lost", "duplicates", "out_of_order", "drain_ended")}
        for s in config["scenarios"]
        if "lost" in s and (s["lost"] or s["duplicates"] or s["out_of_order"])
    }
    failed = [s["name"] for s in config["scenarios"] if "error" in s]
    check("zero lost, duplicate or out-of-order messages", flawed or 0, not flawed)
    if failed:
        check("every scenario completes", failed, False)
    return checks


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
        right.axhline(20_000, color="grey", linestyle="--", linewidth=1, label="target (1,000 subscribers)")
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
