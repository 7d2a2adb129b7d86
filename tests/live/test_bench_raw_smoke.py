"""The bench's raw-websockets ceiling and reconnect storm work end to end, in tiny runs (issue 16).

This checks the instrument, not performance: bench/README.md has the figures.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests import ROOT


def _bench(tmp_path: Path, *args: str, timeout: float = 60) -> dict[str, Any]:
    """Run `python -m bench --smoke` with `args`; return its result document."""
    command = [sys.executable, "-m", "bench", "--smoke", "--no-plots", "--out", str(tmp_path), *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    (result_file,) = tmp_path.glob("*.json")
    return dict(json.loads(result_file.read_text()))


def _scenarios(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in config["scenarios"]}


@pytest.mark.timeout(60)
def test_raw_ceiling_answers_the_bench_subset_and_loses_nothing(tmp_path: Path) -> None:
    # No database and no Redis: the ceiling keeps everything in memory.
    result = _bench(tmp_path, "--configs", "raw-memory-1", "--scenarios", "idle,room,rooms")
    (raw,) = result["configs"]
    assert raw["name"] == "raw-memory-1" and "error" not in raw
    assert result["meta"]["baseline"] == "raw-memory-1"
    scenarios = _scenarios(raw)
    assert set(scenarios) == {"idle-5", "rate-3", "burst-3", "rooms-2x2", "rooms-2x2-hold"}, scenarios
    assert scenarios["idle-5"]["connect"]["ok"] == 5
    for name in ("rate-3", "burst-3", "rooms-2x2", "rooms-2x2-hold"):
        s = scenarios[name]
        assert "error" not in s, s.get("error")
        assert s["delivered_frames"] == s["expected_frames"] > 0, name
        assert (s["lost"], s["duplicates"], s["out_of_order"]) == (0, 0, 0), name
        assert s["drain_ended"] == ["complete"], name
    # The fixed-rate phase runs repeatedly (the latency target holds per run); its latency is pooled.
    rate = scenarios["rate-3"]
    assert rate["repeats"] == 2 and len(rate["runs"]) == 2
    assert rate["latency_ms"]["count"] == sum(r["latency_ms"]["count"] for r in rate["runs"]) == rate["delivered_frames"]
    figures = raw["figures"]
    assert figures["posts_per_s_per_process"] > 0 and figures["posting_p99_ms_at_hold_rate"] is not None
    assert figures["fanout_3_frames_per_server_cpu_s"] is None or figures["fanout_3_frames_per_server_cpu_s"] > 0
    assert len(figures["rate_3_p99_ms_runs"]) == 2
    assert "raw-memory-1" not in result["targets"]  # the baseline is not measured against itself


@pytest.mark.live
@pytest.mark.timeout(90)
def test_reconnect_storm_catches_every_subscriber_up_and_ratios_use_the_same_run_baseline(tmp_path: Path) -> None:
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    if not database_url.startswith("postgres"):
        pytest.fail("the bench smoke test needs PostgreSQL: set DATABASE_URL (make test does)")
    redis_url = os.environ.get("REDIS_URL") or pytest.fail("the bench smoke test needs Redis: set REDIS_URL")
    postgres_url = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
    database = f"{os.environ.get('TEST_DATABASE_NAME') or 'test'}_bench_raw_smoke"
    result = _bench(
        tmp_path, "--configs", "daphne-pubsub-1,raw-memory-1", "--scenarios", "room,storm", "--postgres-url",
        postgres_url, "--database", database, "--redis-url", redis_url, timeout=80,
    )  # fmt: skip
    daphne, raw = result["configs"]
    assert "error" not in daphne and "error" not in raw
    assert "storm-6" not in _scenarios(raw)  # in memory: nothing to resume after a restart

    storm = _scenarios(daphne)["storm-6"]
    assert "error" not in storm, storm.get("error")
    # Every subscriber was dropped by the restart, came back, and holds every message exactly once, in order.
    assert storm["clients_dropped"] == storm["reconnected"] == storm["caught_up"] == 6
    assert storm["messages_before"] == 3 and storm["messages_acked"] == 5
    assert storm["delivered_frames"] == storm["expected_frames"] == 30
    assert (storm["lost"], storm["duplicates"], storm["out_of_order"], storm["unexpected"]) == (0, 0, 0, 0)
    assert storm["drain_ended"] == ["complete"] and storm["still_disconnected"] == 0
    assert storm["seconds"] is not None and 0 < storm["seconds"] <= storm["from_sigterm_s"]
    assert daphne["figures"]["storm_seconds"] == storm["seconds"]

    # Ratios: the project's figures against the raw ceiling of this very run.
    burst, raw_burst = _scenarios(daphne)["burst-3"], _scenarios(raw)["burst-3"]
    ratios = daphne["vs_baseline"]
    if burst["frames_per_server_cpu_s"] and raw_burst["frames_per_server_cpu_s"]:
        expected = round(burst["frames_per_server_cpu_s"] / raw_burst["frames_per_server_cpu_s"] * 100, 1)
        assert ratios["fanout_3_pct_of_baseline"] == expected
    raw_p99 = raw["figures"]["rate_3_p99_ms"]
    assert ratios["rate_3_p99_multiple_runs"] == [round(p / raw_p99, 2) for p in daphne["figures"]["rate_3_p99_ms_runs"]]
    checks = {c["target"]: c for c in result["targets"]["daphne-pubsub-1"]}
    assert checks["reconnect storm of 6: all caught up gap-free in <= 10 s"]["value"] == storm["seconds"]
    assert checks["zero lost, duplicate or out-of-order messages"]["ok"]
